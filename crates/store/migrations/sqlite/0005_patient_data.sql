-- Patient data: payload metadata that outlives the payload (retention, erasure), the link from
-- an event to its patient, and the audit trail. SQLite dialect; keep in step with
-- ../postgres/0005_patient_data.sql.

-- The event's patient (`patient_id` in its data), stored at intake so an erasure finds the
-- events without reading (sealed) snapshots. Size and SHA-256 of the snapshot as written;
-- `purged_at`/`purge_reason` ('retention', 'erasure') once the snapshot is gone.
ALTER TABLE events ADD COLUMN patient_id TEXT;
ALTER TABLE events ADD COLUMN vars_bytes INTEGER;
ALTER TABLE events ADD COLUMN vars_sha256 TEXT;
ALTER TABLE events ADD COLUMN purged_at INTEGER;
ALTER TABLE events ADD COLUMN purge_reason TEXT;
CREATE INDEX events_by_patient ON events (patient_id) WHERE patient_id IS NOT NULL;
CREATE INDEX events_unpurged ON events (created_at, id) WHERE purged_at IS NULL;

-- Size and SHA-256 of the request body sent and the response body received; the bodies
-- themselves go when retention ends, on erasure, or are never stored ('not_stored').
ALTER TABLE attempts ADD COLUMN request_bytes INTEGER;
ALTER TABLE attempts ADD COLUMN request_sha256 TEXT;
ALTER TABLE attempts ADD COLUMN response_bytes INTEGER;
ALTER TABLE attempts ADD COLUMN response_sha256 TEXT;
ALTER TABLE attempts ADD COLUMN purged_at INTEGER;
ALTER TABLE attempts ADD COLUMN purge_reason TEXT;
CREATE INDEX attempts_unpurged ON attempts (started_at, id) WHERE purged_at IS NULL;

-- The audit trail: append-only, each row's hash covers its fields and the previous row's
-- hash (see carehook-store's `audit`). Never a PHI value in any column.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY NOT NULL,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    client_addr TEXT,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    details     TEXT NOT NULL,            -- JSON object
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit_log (at, seq);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
