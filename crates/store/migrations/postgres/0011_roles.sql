-- Roles for API tokens (issue 17): what a token may do, and which clinics it sees. postgres
-- dialect; keep in step with ../sqlite/0011_roles.sql.
-- Tokens made before roles existed keep doing everything they did: they become `owner`.
ALTER TABLE api_tokens ADD COLUMN role TEXT NOT NULL DEFAULT 'owner';
-- A JSON array of clinic ids (text); NULL: every clinic.
ALTER TABLE api_tokens ADD COLUMN clinics TEXT;
-- Whether the token sees request and response bodies and event data in the log (a viewer
-- may be refused them); true for every token made before.
ALTER TABLE api_tokens ADD COLUMN bodies BOOLEAN NOT NULL DEFAULT TRUE;
