-- The delivery log's blind index: keyed hashes (HMAC, the server's search key derived from the
-- master key) of the words of an event's patient name and of its appointment id, so the log
-- can be searched by name while the snapshots themselves are sealed. Written at intake in the
-- event's transaction; gone with the snapshot (retention purge, erasure). The hashes say
-- nothing without the key. Keep this file in step with ../sqlite/0013_event_search_terms.sql.

CREATE TABLE event_search_terms (
    term     TEXT COLLATE "C" NOT NULL,
    event_id TEXT COLLATE "C" NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (term, event_id)
);
CREATE INDEX event_search_terms_by_event ON event_search_terms (event_id);
