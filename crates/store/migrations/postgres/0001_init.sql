-- carehook schema, PostgreSQL dialect. Released migrations are never edited: add 0002_….sql.
-- Times are unix milliseconds (BIGINT); ids are UUID v7 text; JSON is TEXT the store never
-- looks inside. Keep this file in step with ../sqlite/0001_init.sql.
-- Id columns use the "C" collation: byte order (UUID v7 text sorts by time) and cheaper compares.

CREATE TABLE webhooks (
    id              TEXT COLLATE "C" PRIMARY KEY,
    name            TEXT NOT NULL,
    enabled         BOOLEAN NOT NULL,
    events          TEXT NOT NULL,            -- JSON array of event names
    config          TEXT NOT NULL,            -- JSON, the server's whole webhook spec
    version         BIGINT NOT NULL,
    disabled_reason TEXT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    -- Failure streak for auto-disable, kept by record_attempts (see Store::webhooks_failing_since).
    last_success_at BIGINT,
    failing_since   BIGINT,
    last_failure_at BIGINT
);

CREATE TABLE events (
    id              TEXT COLLATE "C" PRIMARY KEY,
    event_type      TEXT NOT NULL,
    vars            TEXT NOT NULL,            -- JSON object, string -> string
    idempotency_key TEXT UNIQUE,
    created_at      BIGINT NOT NULL
);
CREATE INDEX events_by_time ON events (created_at, id);

-- No foreign key to webhooks: the delivery log outlives a deleted webhook.
CREATE TABLE deliveries (
    id              TEXT COLLATE "C" PRIMARY KEY,
    event_id        TEXT COLLATE "C" NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    webhook_id      TEXT COLLATE "C" NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until     BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    last_status     BIGINT,
    last_error      TEXT,
    is_test         BOOLEAN NOT NULL DEFAULT FALSE
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
    id               TEXT COLLATE "C" PRIMARY KEY,
    delivery_id      TEXT COLLATE "C" NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt_no       BIGINT NOT NULL,
    started_at       BIGINT NOT NULL,
    duration_ms      BIGINT NOT NULL,
    request          TEXT NOT NULL,           -- JSON, secrets already masked by the server
    response_status  BIGINT,
    response_headers TEXT,                    -- JSON
    response_body    TEXT,
    error            TEXT,
    outcome          TEXT NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'retry', 'gave_up'))
);
CREATE INDEX attempts_by_delivery ON attempts (delivery_id, attempt_no);

CREATE TABLE api_tokens (
    id           TEXT COLLATE "C" PRIMARY KEY,
    name         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE kv (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
