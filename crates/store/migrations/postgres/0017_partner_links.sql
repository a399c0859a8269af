-- Partner links (issue 17): a read-only, expiring, revocable link that shows one webhook's
-- delivery log to the team that runs the receiving service. PostgreSQL dialect; keep in step
-- with ../sqlite/0017_partner_links.sql.
--
-- `secret_hash` is the SHA-256 (hex) of the link's secret: the link itself is shown once, when
-- it is made, and a copy of this table opens nothing. `show_bodies`: TRUE shows request and
-- response bodies and patient names (only a creator allowed bodies may set it).
CREATE TABLE partner_links (
    id          TEXT COLLATE "C" PRIMARY KEY,
    secret_hash TEXT COLLATE "C" NOT NULL UNIQUE,
    webhook_id  TEXT COLLATE "C" NOT NULL,
    label       TEXT,
    show_bodies BOOLEAN NOT NULL DEFAULT FALSE,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX partner_links_by_webhook ON partner_links (webhook_id, created_at);
