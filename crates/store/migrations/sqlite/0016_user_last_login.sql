-- When each account last logged in to the admin UI (the users page shows it). SQLite dialect;
-- keep in step with ../postgres/0016_user_last_login.sql. NULL: never.
ALTER TABLE users ADD COLUMN last_login_at INTEGER;
