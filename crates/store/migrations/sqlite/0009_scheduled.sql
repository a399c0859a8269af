-- Scheduled webhooks (reminders). SQLite dialect; keep in step with ../postgres/0009_scheduled.sql.
-- A scheduled delivery is an ordinary pending row whose next_attempt_at is its due time; what
-- is new is a status for a delivery withdrawn before it was sent, and the appointment a
-- reminder belongs to, so a later event for that appointment finds it.

-- `superseded`: withdrawn (the appointment was cancelled, moved into the past, or a later event
-- replaced it), never sent. SQLite cannot alter a CHECK constraint; widening one is the change
-- its documentation allows by editing the schema text (lang_altertable.html, "Making Other
-- Kinds Of Table Schema Changes"): every row that passed the old check passes the new one, and
-- the file format is unchanged. `writable_schema = RESET` makes this connection read the new
-- schema at once; the index created below bumps the schema version for every other connection.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql,
    'CHECK (status IN (''pending'', ''succeeded'', ''failed''))',
    'CHECK (status IN (''pending'', ''succeeded'', ''failed'', ''superseded''))')
WHERE type = 'table' AND name = 'deliveries';
PRAGMA writable_schema = RESET;

-- The appointment (`appointment_id` of the event) of a scheduled webhook's delivery; NULL for
-- every other delivery, so the index below holds only reminders still waiting.
ALTER TABLE deliveries ADD COLUMN appointment_id TEXT;
CREATE INDEX deliveries_pending_by_appointment ON deliveries (appointment_id, webhook_id)
    WHERE status = 'pending' AND appointment_id IS NOT NULL;
