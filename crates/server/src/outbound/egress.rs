//! The egress proxy (`CAREHOOK_EGRESS_PROXY`): every outbound request —
//! deliveries, test sends, token requests — goes through one HTTP proxy.
//! HTTPS destinations go through a `CONNECT` tunnel (the proxy sees only the
//! host and port); plain HTTP ones are forwarded by the proxy.
//!
//! The proxy must not become a way around the destination policy: the proxy
//! resolves the destination, not carehook, so before sending carehook
//! resolves it too and refuses it when any address it has is refused
//! ([`check_destination`]). The proxy's own address is allowed as given.

use std::net::SocketAddr;
use std::time::Duration;

use super::{DestinationPolicy, SendError};

/// The proxy: its URL without credentials, and basic auth if given.
#[derive(Clone)]
pub struct EgressProxy {
    url: url::Url,
    auth: Option<(String, String)>,
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EgressProxy({})", self.describe())
    }
}

impl EgressProxy {
    /// Parses `http://[user:password@]host:port`. The error names what is
    /// wrong and never repeats the password.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut url = url::Url::parse(text.trim()).map_err(|e| {
            format!("CAREHOOK_EGRESS_PROXY is not a URL like http://proxy.clinic.lan:3128 ({e})")
        })?;
        if url.scheme() != "http" {
            return Err(format!(
                "CAREHOOK_EGRESS_PROXY must be an http:// proxy URL (HTTP CONNECT), not {}://",
                url.scheme()
            ));
        }
        if url.host().is_none() || url.port_or_known_default().is_none() {
            return Err(
                "CAREHOOK_EGRESS_PROXY needs a host and port, e.g. http://proxy.clinic.lan:3128"
                    .into(),
            );
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err("CAREHOOK_EGRESS_PROXY is host and port only: no path or query".into());
        }
        let auth = if url.username().is_empty() {
            None
        } else {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            };
            Some((decode(url.username()), decode(url.password().unwrap_or(""))))
        };
        let _ = url.set_username("");
        let _ = url.set_password(None);
        Ok(EgressProxy { url, auth })
    }

    /// For the log: the URL, and whether basic auth is used (never the password).
    pub fn describe(&self) -> String {
        match &self.auth {
            Some((user, _)) => format!("{} (basic auth as {user})", self.url),
            None => self.url.to_string(),
        }
    }

    /// The proxy's host name, when it is a name rather than an address.
    pub fn host_name(&self) -> Option<String> {
        match self.url.host() {
            Some(url::Host::Domain(d)) => Some(d.to_string()),
            _ => None,
        }
    }

    pub(crate) fn reqwest(&self) -> anyhow::Result<reqwest::Proxy> {
        let mut proxy = reqwest::Proxy::all(self.url.as_str())?;
        if let Some((user, password)) = &self.auth {
            proxy = proxy.basic_auth(user, password);
        }
        Ok(proxy)
    }
}

/// Resolves `host` as the proxy would and refuses it when the policy
/// refuses any of its addresses (the proxy may pick any of them).
pub async fn check_destination(
    policy: &DestinationPolicy,
    host: &str,
    timeout: Duration,
) -> Result<(), SendError> {
    let addrs: Vec<SocketAddr> =
        match tokio::time::timeout(timeout, tokio::net::lookup_host((host, 0))).await {
            Err(_) => return Err(SendError::Timeout(timeout.as_millis() as u64)),
            Ok(Err(e)) => return Err(SendError::Connect(format!("cannot resolve {host}: {e}"))),
            Ok(Ok(a)) => a.collect(),
        };
    if addrs.is_empty() {
        return Err(SendError::Refused(format!("{host} has no address")));
    }
    for a in addrs {
        if let Some(why) = policy.refusal(a.ip()) {
            return Err(SendError::Refused(format!(
                "{host} resolves to {}, {why}; carehook does not send there (not through the egress proxy either) unless CAREHOOK_ALLOWED_DESTINATIONS allows it",
                a.ip()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_are_parsed_and_the_password_never_shown() {
        let p = EgressProxy::parse("http://clinic:s3cr%40t@proxy.lan:3128").unwrap();
        assert_eq!(p.auth, Some(("clinic".to_string(), "s3cr@t".to_string())));
        assert_eq!(p.host_name().as_deref(), Some("proxy.lan"));
        assert!(!p.describe().contains("s3cr"), "{}", p.describe());
        assert!(!format!("{p:?}").contains("s3cr"));
        let p = EgressProxy::parse("http://10.0.0.5:8080").unwrap();
        assert_eq!(p.host_name(), None);
        assert!(p.auth.is_none());
        for bad in ["socks5://p:1080", "not a url", "http://p:3128/path"] {
            let e = EgressProxy::parse(bad).unwrap_err();
            assert!(e.contains("CAREHOOK_EGRESS_PROXY"), "{e}");
        }
    }
}
