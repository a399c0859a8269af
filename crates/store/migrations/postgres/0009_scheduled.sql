-- Scheduled webhooks (reminders). PostgreSQL dialect; keep in step with ../sqlite/0009_scheduled.sql.
-- A scheduled delivery is an ordinary pending row whose next_attempt_at is its due time; what
-- is new is a status for a delivery withdrawn before it was sent, and the appointment a
-- reminder belongs to, so a later event for that appointment finds it.

-- `superseded`: withdrawn (the appointment was cancelled, moved into the past, or a later event
-- replaced it), never sent.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'succeeded', 'failed', 'superseded'));

-- The appointment (`appointment_id` of the event) of a scheduled webhook's delivery; NULL for
-- every other delivery, so the index below holds only reminders still waiting.
ALTER TABLE deliveries ADD COLUMN appointment_id TEXT;
CREATE INDEX deliveries_pending_by_appointment ON deliveries (appointment_id, webhook_id)
    WHERE status = 'pending' AND appointment_id IS NOT NULL;
