//! Cross-check against the `standardwebhooks` crate, an implementation we did
//! not write: it must accept our signatures, and we must accept its.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use carehook_core::signing::{self, SigningSecret};
use proptest::prelude::*;
use standardwebhooks::Webhook;

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Verifies with the reference crate. Its `verify` takes an `http::HeaderMap`;
/// core has no `http` dependency, so the map is built through `http`'s
/// `TryFrom<&HashMap>` with the type inferred from `verify`'s signature.
fn reference_verify(
    webhook: &Webhook,
    headers: &signing::SignedHeaders,
    body: &[u8],
) -> Result<(), standardwebhooks::WebhookError> {
    let map: HashMap<String, String> = headers
        .pairs()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let header_map = (&map).try_into().expect("valid header values");
    webhook.verify(body, &header_map)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn the_reference_crate_accepts_our_signatures(
        body in ".{0,512}",
        msg_id in "msg_[A-Za-z0-9]{1,32}",
        old in any::<bool>(),
    ) {
        let secret = SigningSecret::generate();
        let other = SigningSecret::generate();
        // With `old`, ours signs under two secrets as during a rotation; the
        // reference crate must still find the one it knows.
        let secrets: Vec<&SigningSecret> = if old { vec![&other, &secret] } else { vec![&secret] };
        let headers = signing::signed_headers(&secrets, &msg_id, now_unix(), body.as_bytes());
        let webhook = Webhook::new(&secret.to_whsec()).unwrap();
        prop_assert!(reference_verify(&webhook, &headers, body.as_bytes()).is_ok());

        let tampered = format!("{body}x");
        prop_assert!(reference_verify(&webhook, &headers, tampered.as_bytes()).is_err());
    }

    #[test]
    fn we_accept_the_reference_crates_signatures(
        body in ".{0,512}",
        msg_id in "msg_[A-Za-z0-9]{1,32}",
        timestamp in 1_000_000_000i64..4_000_000_000,
    ) {
        let secret = SigningSecret::generate();
        let webhook = Webhook::new(&secret.to_whsec()).unwrap();
        let theirs = webhook.sign(&msg_id, timestamp, body.as_bytes()).unwrap();
        prop_assert_eq!(&theirs, &signing::sign(&secret, &msg_id, timestamp, body.as_bytes()));
        let ts = timestamp.to_string();
        prop_assert!(
            signing::verify(&secret, &msg_id, &ts, &theirs, body.as_bytes(), timestamp, 300).is_ok()
        );
    }
}

#[test]
fn the_reference_crate_reads_the_specification_secret_as_we_do() {
    let whsec = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let ours = SigningSecret::parse(whsec).unwrap();
    let theirs = Webhook::new(whsec).unwrap();
    let body = br#"{"test": 2432232314}"#;
    let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    assert_eq!(
        theirs.sign(id, 1614265330, body).unwrap(),
        signing::sign(&ours, id, 1614265330, body)
    );
}
