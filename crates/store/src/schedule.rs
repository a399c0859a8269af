//! Scheduled deliveries (reminders), inside the transaction that writes an event: what the
//! event does to a scheduled webhook's deliveries still pending for its appointment
//! ([`apply`]), and the appointment of its own scheduled deliveries ([`mark`]).
//!
//! A scheduled delivery is an ordinary pending row whose `next_attempt_at` is its due time, so
//! the claim needs nothing new; only the rows of scheduled webhooks carry `appointment_id`, and
//! a partial index holds the pending ones (migration 0009). Rows leased to a worker are being
//! sent right now and are left alone.

use crate::dialect::{Conn, Dialect};
use crate::error::Result;
use crate::sql::args;
use crate::types::{NewEvent, ScheduleChange};

/// `$1` appointment, `$2` webhook, `$3` reason, `$4` now.
const WITHDRAW: &str = "UPDATE deliveries SET status = 'superseded', last_error = $3, \
    updated_at = $4, lease_until = NULL, lease_owner = NULL \
    WHERE appointment_id = $1 AND webhook_id = $2 AND status = 'pending' \
    AND (lease_until IS NULL OR lease_until < $4)";

/// `$1` appointment, `$2` webhook, `$3` new due time, `$4` now.
const RETIME: &str = "UPDATE deliveries SET next_attempt_at = $3, updated_at = $4 \
    WHERE appointment_id = $1 AND webhook_id = $2 AND status = 'pending' \
    AND lease_until IS NULL";

/// `$1` delivery, `$2` appointment.
const MARK: &str = "UPDATE deliveries SET appointment_id = $2 WHERE id = $1";

/// `$1` delivery, `$2` appointment, `$3` reason.
const MARK_WITHDRAWN: &str = "UPDATE deliveries SET appointment_id = $2, \
    status = 'superseded', last_error = $3 WHERE id = $1";

/// Applies `ev.reschedule`. Answers whether a due time moved (the dispatcher should look).
pub(crate) async fn apply<D: Dialect>(conn: &mut Conn<D>, ev: &NewEvent) -> Result<bool> {
    let mut moved = false;
    for r in &ev.reschedule {
        let (sql, value) = match &r.change {
            ScheduleChange::Withdraw(reason) => (WITHDRAW, crate::sql::Arg::from(reason.as_str())),
            ScheduleChange::Retime(at) => {
                moved = true;
                (RETIME, crate::sql::Arg::from(*at))
            }
        };
        let mut a = args![r.appointment_id.as_str(), r.webhook_id.to_string()];
        a.push(value);
        a.push(ev.created_at.into());
        D::execute(conn, sql, a).await?;
    }
    Ok(moved)
}

/// Writes the appointment of `ev`'s scheduled deliveries, and withdraws those written late.
pub(crate) async fn mark<D: Dialect>(conn: &mut Conn<D>, ev: &NewEvent) -> Result<()> {
    for d in &ev.deliveries {
        let Some(s) = &d.scheduled else { continue };
        if s.appointment_id.is_none() && s.withdrawn.is_none() {
            continue;
        }
        let id = d.id.to_string();
        let appointment = s.appointment_id.clone();
        match &s.withdrawn {
            None => D::execute(conn, MARK, args![id, appointment]).await?,
            Some(reason) => {
                D::execute(
                    conn,
                    MARK_WITHDRAWN,
                    args![id, appointment, reason.as_str()],
                )
                .await?
            }
        };
    }
    Ok(())
}
