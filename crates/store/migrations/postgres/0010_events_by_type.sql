-- Events of some types in time order: a replay reads a webhook's events of a time range
-- (`ReplayStore::replay_candidates`), and the dashboard the latest operational events
-- (`carehook_*`), without walking every other event. Keep in step with the other dialect.
CREATE INDEX events_by_type ON events (event_type, created_at, id);
