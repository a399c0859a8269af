-- The claim's rule "no earlier delivery of this key is pending" (src/ordering.rs) looks a
-- delivery's key up by one expression, the webhook's id followed by the key (ids are UUIDs of
-- one length, so the pair reads back unambiguously). Only this index holds that expression,
-- so the planner cannot answer the rule from `deliveries_pending_by_webhook` instead: it did on
-- a new database (no statistics yet, both indexes looked equally cheap), and each ordered row
-- of a claim then read all of its webhook's pending deliveries.
CREATE INDEX deliveries_pending_by_webhook_key ON deliveries ((webhook_id || ordering_key), ordering_seq)
    WHERE status = 'pending' AND ordering_key IS NOT NULL;
