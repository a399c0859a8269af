-- The dispatcher claims each busy webhook's deliveries by name (as many as its free slots and
-- prefetch): this index reads one webhook's pending deliveries in due order, so a claim costs
-- the same however long another webhook's backlog.
CREATE INDEX deliveries_pending_by_webhook ON deliveries (webhook_id, next_attempt_at)
    WHERE status = 'pending';
