-- Patient data: payload metadata that outlives the payload (retention, erasure), the link from
-- an event to its patient, and the audit trail. PostgreSQL dialect; keep in step with
-- ../sqlite/0005_patient_data.sql.

ALTER TABLE events ADD COLUMN patient_id TEXT;
ALTER TABLE events ADD COLUMN vars_bytes BIGINT;
ALTER TABLE events ADD COLUMN vars_sha256 TEXT;
ALTER TABLE events ADD COLUMN purged_at BIGINT;
ALTER TABLE events ADD COLUMN purge_reason TEXT;
CREATE INDEX events_by_patient ON events (patient_id) WHERE patient_id IS NOT NULL;
CREATE INDEX events_unpurged ON events (created_at, id) WHERE purged_at IS NULL;

ALTER TABLE attempts ADD COLUMN request_bytes BIGINT;
ALTER TABLE attempts ADD COLUMN request_sha256 TEXT;
ALTER TABLE attempts ADD COLUMN response_bytes BIGINT;
ALTER TABLE attempts ADD COLUMN response_sha256 TEXT;
ALTER TABLE attempts ADD COLUMN purged_at BIGINT;
ALTER TABLE attempts ADD COLUMN purge_reason TEXT;
CREATE INDEX attempts_unpurged ON attempts (started_at, id) WHERE purged_at IS NULL;

CREATE TABLE audit_log (
    seq         BIGINT PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    client_addr TEXT,
    action      TEXT NOT NULL,
    resource    TEXT NOT NULL,
    outcome     TEXT NOT NULL,
    details     TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX audit_by_time ON audit_log (at, seq);
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'the audit trail is append-only'; END $$;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
