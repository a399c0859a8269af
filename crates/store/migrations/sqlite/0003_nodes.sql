-- Nodes: each carehook process that claims deliveries, with a heartbeat, and the owner of each
-- lease. A process that starts releases the leases its earlier incarnation held (on SQLite one
-- process owns the file: all of them), and a node whose heartbeat is stale has its leases
-- released by any live node, so a crash costs seconds rather than a whole lease.
-- Keep this file in step with ../postgres/0003_nodes.sql.

CREATE TABLE nodes (
    id           TEXT PRIMARY KEY NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);

-- Set by a claim, cleared with lease_until.
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT;
CREATE INDEX deliveries_by_lease_owner ON deliveries (lease_owner)
    WHERE status = 'pending' AND lease_until IS NOT NULL;
