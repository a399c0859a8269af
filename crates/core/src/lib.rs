//! carehook's pure core: everything that decides *what* to send, with no I/O.
//!
//! - [`catalog`]: the events a clinic fires and the variables each one carries.
//! - [`clinic`]: clinic records (fields, validation) and the variables their events carry.
//! - [`clinics`]: which clinics a webhook serves and a caller sees.
//! - [`template`]: `{{ variable }}` templates compiled once, rendered per context
//!   (JSON body, form body, URL, header, text) so no value can break the request.
//! - [`conditions`]: per-webhook filters evaluated against an event's variables.
//! - [`signing`]: Standard Webhooks signatures.
//! - [`retry`]: when to try a failed delivery again, and when to stop.
//! - [`schedule`]: scheduled webhooks (reminders): due times, and what a later event does.
//! - [`webhook`]: a webhook as written, validated and compiled.
//! - [`ordering`]: ordering keys (deliveries of one key sent one at a time, in order).
//! - [`presets`]: the user guide's 15 integrations, ready to fill in.
//! - [`privacy`]: which patient data a webhook sends, its data policy, pseudonyms.
//! - [`search`]: the words a patient's name is searched by (the log's blind index).
//! - [`totp`]: one-time codes (RFC 6238), the admin UI's second factor.
//! - [`ids`]: typed ids (`WebhookId`, `DeliveryId`, …) and [`ids::Millis`], the time type.
//!
//! The server and the store build on these; nothing here touches the network,
//! the clock (callers pass `now`) or the disk.

pub mod catalog;
pub mod clinic;
pub mod clinics;
pub mod conditions;
pub mod ids;
pub mod ordering;
pub mod presets;
pub mod privacy;
pub mod pseudonym;
pub mod retry;
pub mod schedule;
pub mod search;
pub mod signing;
pub mod template;
pub mod totp;
pub mod webhook;

use std::collections::BTreeMap;

/// An event's snapshot: every variable's value as text, taken when the event
/// happened. Values are text because every destination receives text; the
/// catalog says how a value may be compared (number, date…).
pub type Vars = BTreeMap<String, String>;
