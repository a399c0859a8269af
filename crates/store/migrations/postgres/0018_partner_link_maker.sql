-- What a partner link was made under, so it stops working when that no longer holds; and the
-- last TOTP step each account logged in with, so a code is not taken twice. PostgreSQL dialect;
-- keep in step with ../sqlite/0018_partner_link_maker.sql.
--
-- `maker`: who made the link, as the server finds them again: `admin` (the admin token),
-- `user:<id>` or `token:<id>`. `clinics_at_creation`: the webhook's clinics when the link was
-- made, a JSON array (`[]`: every clinic). Links made before this migration have neither and
-- no longer open (fail closed).
ALTER TABLE partner_links ADD COLUMN maker TEXT;
ALTER TABLE partner_links ADD COLUMN clinics_at_creation TEXT;
-- The TOTP time step (unix seconds / 30) of the last code accepted; NULL: none yet.
ALTER TABLE users ADD COLUMN totp_last_step BIGINT;
