-- People and their admin-UI sessions (issue 17). PostgreSQL dialect; keep in step with
-- ../sqlite/0012_accounts.sql.

-- Named accounts for the admin UI. `email` is kept lower-case (one account per address);
-- `password_hash` is an argon2id PHC string; `totp_secret` is sealed by the server (NULL: no
-- second factor). `role`, `clinics` and `bodies` as on api_tokens.
CREATE TABLE users (
    id            TEXT COLLATE "C" PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    totp_secret   TEXT,
    role          TEXT NOT NULL,
    clinics       TEXT,
    bodies        BOOLEAN NOT NULL DEFAULT TRUE,
    disabled_at   BIGINT,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);

-- Admin-UI sessions, so they survive a restart and work on every node. The key is the
-- SHA-256 of the cookie's value (a stolen table opens no session). A session belongs to a
-- user or, for a login with an API token, to that token (by its hash). `flashes` is a JSON
-- list of messages for the next page; `reveal` a sealed signing secret shown once.
CREATE TABLE ui_sessions (
    key        TEXT COLLATE "C" PRIMARY KEY,
    user_id    TEXT,
    token_hash TEXT,
    csrf       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen  BIGINT NOT NULL,
    flashes    TEXT NOT NULL DEFAULT '[]',
    reveal     TEXT
);
CREATE INDEX ui_sessions_by_user ON ui_sessions (user_id) WHERE user_id IS NOT NULL;
CREATE INDEX ui_sessions_by_age ON ui_sessions (created_at);

-- Failed logins, per account (`account:EMAIL`) and per client address (`addr:IP`): the
-- count in the current streak and until when logins are refused.
CREATE TABLE login_failures (
    key          TEXT COLLATE "C" PRIMARY KEY,
    failures     BIGINT NOT NULL,
    last_at      BIGINT NOT NULL,
    locked_until BIGINT
);
