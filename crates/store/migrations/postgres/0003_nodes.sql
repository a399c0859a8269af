-- Nodes: each carehook process that claims deliveries, with a heartbeat, and the owner of each
-- lease. A process that starts releases the leases its earlier incarnation held, and a node
-- whose heartbeat is stale has its leases released by any live node, so a crash costs seconds
-- rather than a whole lease. Keep this file in step with ../sqlite/0003_nodes.sql.

CREATE TABLE nodes (
    id           TEXT COLLATE "C" PRIMARY KEY,
    started_at   BIGINT NOT NULL,
    heartbeat_at BIGINT NOT NULL
);

-- Set by a claim, cleared with lease_until.
ALTER TABLE deliveries ADD COLUMN lease_owner TEXT COLLATE "C";
CREATE INDEX deliveries_by_lease_owner ON deliveries (lease_owner)
    WHERE status = 'pending' AND lease_until IS NOT NULL;
