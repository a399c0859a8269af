-- carehook schema, SQLite dialect. Released migrations are never edited: add 0002_….sql.
-- Times are unix milliseconds (INTEGER); ids are UUID v7 text; JSON is TEXT the store never
-- looks inside. Keep this file in step with ../postgres/0001_init.sql.

CREATE TABLE webhooks (
    id              TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    enabled         INTEGER NOT NULL,
    events          TEXT NOT NULL,            -- JSON array of event names
    config          TEXT NOT NULL,            -- JSON, the server's whole webhook spec
    version         INTEGER NOT NULL,
    disabled_reason TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    -- Failure streak for auto-disable, kept by record_attempts (see Store::webhooks_failing_since).
    last_success_at INTEGER,
    failing_since   INTEGER,
    last_failure_at INTEGER
);

CREATE TABLE events (
    id              TEXT PRIMARY KEY NOT NULL,
    event_type      TEXT NOT NULL,
    vars            TEXT NOT NULL,            -- JSON object, string -> string
    idempotency_key TEXT UNIQUE,
    created_at      INTEGER NOT NULL
);
CREATE INDEX events_by_time ON events (created_at, id);

-- No foreign key to webhooks: the delivery log outlives a deleted webhook.
CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY NOT NULL,
    event_id        TEXT NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    webhook_id      TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until     INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    is_test         INTEGER NOT NULL DEFAULT 0
);
-- The claim reads two small ranges instead of filtering leased rows out of one: unleased due
-- work in due order, and expired leases in expiry order. A backlog of in-flight (leased) rows
-- therefore costs a claim nothing.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status = 'pending' AND lease_until IS NULL;
CREATE INDEX deliveries_leased ON deliveries (lease_until)
    WHERE status = 'pending' AND lease_until IS NOT NULL;
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at, id);
CREATE INDEX deliveries_by_time ON deliveries (created_at, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

CREATE TABLE attempts (
    id               TEXT PRIMARY KEY NOT NULL,
    delivery_id      TEXT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt_no       INTEGER NOT NULL,
    started_at       INTEGER NOT NULL,
    duration_ms      INTEGER NOT NULL,
    request          TEXT NOT NULL,           -- JSON, secrets already masked by the server
    response_status  INTEGER,
    response_headers TEXT,                    -- JSON
    response_body    TEXT,
    error            TEXT,
    outcome          TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'retry', 'gave_up'))
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, attempt_no);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE kv (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);
