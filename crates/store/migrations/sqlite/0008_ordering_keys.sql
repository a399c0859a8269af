-- Ordering keys (a webhook's `ordering_key`; see src/ordering.rs). Each ordered delivery has
-- its key's id and its number in that key; unordered ones leave both NULL.
ALTER TABLE deliveries ADD COLUMN ordering_key TEXT;
ALTER TABLE deliveries ADD COLUMN ordering_seq INTEGER;
-- The claim's rule "no earlier delivery of this key is pending" reads this index: a key's
-- pending deliveries in number order. Unordered deliveries are not in it.
CREATE INDEX deliveries_pending_by_key ON deliveries (webhook_id, ordering_key, ordering_seq)
    WHERE status = 'pending' AND ordering_key IS NOT NULL;
-- The last number given in each key of each webhook.
CREATE TABLE ordering_keys (
    webhook_id   TEXT NOT NULL,
    ordering_key TEXT NOT NULL,
    last_seq     INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, ordering_key)
);
