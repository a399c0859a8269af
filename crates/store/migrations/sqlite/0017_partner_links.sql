-- Partner links (issue 17): a read-only, expiring, revocable link that shows one webhook's
-- delivery log to the team that runs the receiving service. SQLite dialect; keep in step with
-- ../postgres/0017_partner_links.sql.
--
-- `secret_hash` is the SHA-256 (hex) of the link's secret: the link itself is shown once, when
-- it is made, and a copy of this table opens nothing. `show_bodies`: 1 shows request and
-- response bodies and patient names (only a creator allowed bodies may set it).
CREATE TABLE partner_links (
    id          TEXT PRIMARY KEY NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    webhook_id  TEXT NOT NULL,
    label       TEXT,
    show_bodies INTEGER NOT NULL DEFAULT 0,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX partner_links_by_webhook ON partner_links (webhook_id, created_at);
