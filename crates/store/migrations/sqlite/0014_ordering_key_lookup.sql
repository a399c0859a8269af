-- PostgreSQL only (an index its claim's ordering rule reads; see ../postgres/0014_…). SQLite's
-- planner already answers the rule from `deliveries_pending_by_key` (0008), so nothing here.
SELECT 1;
