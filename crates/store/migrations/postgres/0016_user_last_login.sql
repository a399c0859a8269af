-- When each account last logged in to the admin UI (the users page shows it). PostgreSQL
-- dialect; keep in step with ../sqlite/0016_user_last_login.sql. NULL: never.
ALTER TABLE users ADD COLUMN last_login_at BIGINT;
