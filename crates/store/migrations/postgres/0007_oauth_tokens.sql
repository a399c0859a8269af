-- OAuth 2.0 access tokens, one row per webhook that uses an OAuth 2.0 auth kind, shared by every
-- node: the node holding the lease (lease_owner until lease_until) is the one asking the
-- provider for a new token, the others wait for it or keep using the current one, so a
-- cluster makes one token request per expiry. Tokens are sealed by the server (never plain).
-- generation counts the tokens saved, so a 401 answered to an older token asks for no second
-- new one. Keep this file in step with ../sqlite/0007_oauth_tokens.sql.

CREATE TABLE oauth_tokens (
    webhook_id    TEXT COLLATE "C" PRIMARY KEY,
    access_token  TEXT,                 -- sealed
    expires_at    BIGINT,
    refresh_at    BIGINT,              -- ask for a new one from here on
    refresh_token TEXT,                 -- sealed: the provider's rotated one; NULL: the webhook's
    generation    BIGINT NOT NULL DEFAULT 0,
    lease_owner   TEXT,
    lease_until   BIGINT,
    last_error    TEXT,                 -- the last token request's failure, secrets masked
    failed_at     BIGINT,
    blocked_until BIGINT,              -- no token request before this (after a refusal)
    requests      BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL
);
