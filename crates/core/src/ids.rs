//! Typed ids and the time type that cross crate boundaries.
//!
//! A webhook id and a delivery id are both UUIDs, and a function taking two bare `Uuid`s
//! takes them in either order; these newtypes make such a mix-up a compile error. Each is a
//! UUID v7 (it sorts by time), written as its usual hyphenated text in JSON, URLs and the
//! database, so the types change nothing on the wire.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = Uuid))]
        pub struct $name(Uuid);

        impl $name {
            /// A new id: UUID v7, so ids made later sort later.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

id_type!(
    /// A webhook.
    WebhookId
);
id_type!(
    /// One delivery: one event to one webhook, however many attempts it takes. Sent as
    /// `webhook-id`, the same on every retry, so a receiver can drop repeats.
    DeliveryId
);
id_type!(
    /// One event, as recorded.
    EventId
);
id_type!(
    /// An API token (its id, never the token).
    TokenId
);

/// A point in time: milliseconds since the Unix epoch, UTC. What the store keeps and what the
/// scheduler computes with; callers pass it in, so tests control the clock.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    /// The system clock, now.
    pub fn now() -> Self {
        Self(chrono::Utc::now().timestamp_millis())
    }

    /// This time, later by `d` (saturating: no overflow, however long `d` is).
    pub fn plus(self, d: std::time::Duration) -> Self {
        let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        Self(self.0.saturating_add(ms))
    }

    /// How long after `earlier` this is; zero if it is not after it.
    pub fn since(self, earlier: Millis) -> std::time::Duration {
        std::time::Duration::from_millis(
            u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0),
        )
    }

    /// RFC 3339 in UTC with milliseconds, as the API writes times; `None` out of chrono's range.
    pub fn to_rfc3339(self) -> Option<String> {
        chrono::DateTime::from_timestamp_millis(self.0)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
    }
}

impl From<chrono::DateTime<chrono::Utc>> for Millis {
    fn from(t: chrono::DateTime<chrono::Utc>) -> Self {
        Self(t.timestamp_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ids_are_uuids_on_the_wire() {
        let id = WebhookId::new();
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<WebhookId>().unwrap(), id);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        assert_eq!(
            serde_json::from_str::<WebhookId>(&format!("\"{text}\"")).unwrap(),
            id
        );
        assert!("not-a-uuid".parse::<DeliveryId>().is_err());
        assert_eq!(format!("{id:?}"), format!("WebhookId({text})"));
    }

    #[test]
    fn ids_made_later_sort_later() {
        let a = DeliveryId::new();
        let b = DeliveryId::new();
        assert!(a < b, "{a} then {b}");
    }

    #[test]
    fn time_arithmetic_saturates() {
        let t = Millis(1_000);
        assert_eq!(t.plus(Duration::from_millis(500)), Millis(1_500));
        assert_eq!(Millis(i64::MAX - 1).plus(Duration::MAX), Millis(i64::MAX));
        assert_eq!(Millis(1_500).since(t), Duration::from_millis(500));
        assert_eq!(t.since(Millis(1_500)), Duration::ZERO);
        assert_eq!(
            Millis(0).to_rfc3339().as_deref(),
            Some("1970-01-01T00:00:00.000Z")
        );
        assert_eq!(Millis(i64::MAX).to_rfc3339(), None);
    }
}
