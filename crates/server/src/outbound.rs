//! Outbound HTTP: the one client every delivery goes through, and the
//! destination policy that keeps carehook from being turned against the
//! clinic's own network (SSRF).
//!
//! The policy is applied to the address the client actually connects to: a
//! hostname is resolved by our resolver, which drops refused addresses before
//! the connector sees them, so a DNS answer that changes between a check and
//! the connection (rebinding) cannot slip through. A URL whose host is an IP
//! literal never reaches a resolver, so it is checked before sending.
//! Redirects are never followed.
//!
//! With an egress proxy (`CAREHOOK_EGRESS_PROXY`) the proxy resolves the
//! destination, so our resolver never sees it: [`Outbound::send`] resolves
//! the destination itself first and refuses it when any of its addresses is
//! refused (see `egress`). The proxy's own address is allowed as configured.
//! A webhook with mutual TLS or extra CAs gets a client of its own
//! ([`Outbound::send_tls`], cached by its certificates).

pub mod egress;
pub mod oauth;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// The largest response body kept for the log.
pub const MAX_LOGGED_BODY: usize = 64 * 1024;
/// Bytes read past the logged part before giving up on a body (so a 10 MB
/// answer neither fills memory nor keeps a worker busy).
const MAX_READ_BODY: usize = 256 * 1024;

/// Which destinations carehook may send to.
#[derive(Debug, Clone, Default)]
pub struct DestinationPolicy {
    /// Networks allowed even though they are private (from
    /// `CAREHOOK_ALLOWED_DESTINATIONS`).
    pub allowed: Vec<IpNet>,
}

impl DestinationPolicy {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        DestinationPolicy { allowed }
    }

    /// `None` when the address may be used, else why not. The rules follow
    /// IANA's IPv4 and IPv6 special-purpose address registries (see
    /// `tests/destinations.rs`, which walks them row by row): an IPv6 form
    /// that carries an IPv4 address is judged by that address too.
    pub fn refusal(&self, ip: IpAddr) -> Option<&'static str> {
        if self.allowed.iter().any(|net| net.contains(&ip)) {
            return None;
        }
        match ip {
            // `::ffff:a.b.c.d` is the IPv4 host itself (the socket connects
            // over IPv4): judged as that address, allowed list included.
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => {
                self.refusal(IpAddr::V4(v6.to_ipv4_mapped()?))
            }
            IpAddr::V6(v6) => match embedded_ipv4(v6) {
                Some(v4) if special_range(IpAddr::V4(v4)).is_some() => {
                    Some("an IPv6 form (NAT64, 6to4 or SIIT) of a refused IPv4 address")
                }
                _ => special_range(ip),
            },
            IpAddr::V4(_) => special_range(ip),
        }
    }
}

/// The IPv4 address an IPv6 address of a translation or tunnelling form
/// carries: NAT64's well-known prefix `64:ff9b::/96` (RFC 6052), SIIT's
/// IPv4-translated `::ffff:0:a.b.c.d` (RFC 2765) and 6to4's
/// `2002:AABB:CCDD::/48` (RFC 3056). IPv4-mapped addresses are judged as
/// IPv4; the other forms (IPv4-compatible, Teredo, local-use NAT64) are
/// refused outright.
fn embedded_ipv4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let o = v6.octets();
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || s[..6] == [0, 0, 0, 0, 0xffff, 0] {
        Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]))
    } else if s[0] == 0x2002 {
        Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]))
    } else {
        None
    }
}

/// Whether `ip` lies in `net`/`len`.
fn within(ip: Ipv6Addr, net: u128, len: u32) -> bool {
    let mask = u128::MAX.checked_shl(128 - len).unwrap_or(0);
    u128::from(ip) & mask == net & mask
}

/// The kind of special-purpose address `ip` is, if any.
fn special_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                Some("a loopback address")
            } else if v4.is_unspecified() || o[0] == 0 {
                Some("an unspecified address")
            } else if v4.is_private() {
                Some("a private address")
            } else if v4.is_link_local() {
                // 169.254.169.254 is where cloud metadata services live.
                Some("a link-local or cloud metadata address")
            } else if o[0] == 100 && (64..128).contains(&o[1]) {
                Some("a carrier-grade NAT address")
            } else if v4.is_multicast() {
                Some("a multicast address")
            } else if v4.is_broadcast() || o[0] >= 240 {
                Some("a reserved address")
            } else if o[0] == 192 && o[1] == 0 && o[2] == 0 {
                Some("an IETF protocol address")
            } else if o[0] == 192 && o[1] == 88 && o[2] == 99 {
                Some("a deprecated 6to4 relay address")
            } else if (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                || (o[0] == 192 && o[1] == 0 && o[2] == 2)
                || (o[0] == 198 && o[1] == 51 && o[2] == 100)
                || (o[0] == 203 && o[1] == 0 && o[2] == 113)
            {
                Some("a benchmarking or documentation address")
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = |n: u128, len| within(v6, n, len);
            if v6.is_loopback() {
                Some("a loopback address")
            } else if v6.is_unspecified() {
                Some("an unspecified address")
            } else if net(0, 96) {
                // `::a.b.c.d`: deprecated (RFC 4291), and `::127.0.0.2`
                // reaches loopback on some stacks.
                Some("an IPv4-compatible address (deprecated)")
            } else if net(0x0064_ff9b_0001 << 80, 48) {
                Some("a local-use NAT64 address")
            } else if net(0x0100 << 112, 64) || net((0x0100 << 112) | (1 << 64), 64) {
                Some("a discard-only or dummy address")
            } else if net(0x2001 << 112, 23) {
                // Teredo (2001::/32) tunnels to an IPv4 host through a relay;
                // the rest are protocol and benchmarking assignments.
                Some("an IETF protocol address (Teredo, benchmarking…)")
            } else if v6.is_multicast() {
                Some("a multicast address")
            } else if (s[0] & 0xffc0) == 0xfe80 {
                Some("a link-local address")
            } else if (s[0] & 0xfe00) == 0xfc00 {
                Some("a private (unique local) address")
            } else if (s[0] & 0xffc0) == 0xfec0 {
                Some("a site-local address")
            } else if net(0x2001_0db8 << 96, 32) || net(0x3fff << 112, 20) {
                Some("a documentation address")
            } else if net(0x5f00 << 112, 16) {
                Some("a segment-routing (SRv6) address")
            } else {
                None
            }
        }
    }
}

/// Resolves names with the system resolver, then keeps only the addresses
/// the policy allows.
#[derive(Debug)]
struct PolicyResolver {
    policy: Arc<DestinationPolicy>,
    /// The egress proxy's host name, resolved without the policy: the
    /// operator named it, and it is usually on the private network.
    exempt: Option<String>,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy.clone();
        let host = name.as_str().to_string();
        let exempt = self.exempt.as_deref() == Some(host.as_str());
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if exempt {
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            let mut refused = None;
            let allowed: Vec<SocketAddr> = addrs
                .into_iter()
                .filter(|a| match policy.refusal(a.ip()) {
                    None => true,
                    Some(why) => {
                        refused.get_or_insert((a.ip(), why));
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let err: Box<dyn std::error::Error + Send + Sync> = match refused {
                    Some((ip, why)) => Box::new(Refused(format!(
                        "{host} resolves to {ip}, {why}; carehook does not send there unless CAREHOOK_ALLOWED_DESTINATIONS allows it"
                    ))),
                    None => Box::new(Refused(format!("{host} has no address"))),
                };
                return Err(err);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Refused(String);

/// Why a send produced no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("destination refused: {0}")]
    Refused(String),
    #[error("timed out after {0} ms")]
    Timeout(u64),
    #[error("could not connect: {0}")]
    Connect(String),
    #[error("{0}")]
    Request(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The OAuth 2.0 access token could not be had (see `oauth`).
    #[error("token request failed: {0}")]
    Token(String),
}

/// An HTTP answer, as much of it as the log keeps.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The first 64 KiB, lossily decoded as UTF-8.
    pub body: String,
    pub retry_after: Option<String>,
}

/// A request ready to go out.
#[derive(Debug)]
pub struct Outgoing<'a> {
    pub method: &'a str,
    pub url: &'a str,
    pub headers: &'a [(String, String)],
    pub body: String,
    pub timeout: Duration,
}

/// The pooled client and its policy.
#[derive(Debug, Clone)]
pub struct Outbound {
    client: reqwest::Client,
    policy: Arc<DestinationPolicy>,
    proxy: Option<egress::EgressProxy>,
    /// Clients of webhooks with mutual TLS or extra CAs, by their certificates.
    tls_clients: Arc<std::sync::Mutex<std::collections::HashMap<[u8; 32], reqwest::Client>>>,
    /// OAuth 2.0 access tokens, when the server set them up.
    tokens: Option<Arc<oauth::Tokens>>,
}

/// Most webhook TLS clients kept; past it the cache starts over.
const MAX_TLS_CLIENTS: usize = 256;

/// rustls needs one process-wide crypto provider; ring keeps the build free
/// of C toolchains beyond what `cc` already needs.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Outbound {
    pub fn new(policy: DestinationPolicy) -> anyhow::Result<Self> {
        Self::with_proxy(policy, None)
    }

    /// Every request through `proxy`, when one is given.
    pub fn with_proxy(
        policy: DestinationPolicy,
        proxy: Option<egress::EgressProxy>,
    ) -> anyhow::Result<Self> {
        install_crypto_provider();
        let policy = Arc::new(policy);
        let mut out = Outbound {
            client: reqwest::Client::new(),
            policy,
            proxy,
            tls_clients: Default::default(),
            tokens: None,
        };
        out.client = out.builder()?.build()?;
        Ok(out)
    }

    /// The settings every client shares.
    fn builder(&self) -> anyhow::Result<reqwest::ClientBuilder> {
        let mut builder = reqwest::Client::builder()
            .dns_resolver(Arc::new(PolicyResolver {
                policy: self.policy.clone(),
                exempt: self.proxy.as_ref().and_then(|p| p.host_name()),
            }))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("carehook/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            // No cap on idle connections per host: a busy endpoint with 200
            // requests in flight would otherwise reconnect for most of them.
            .tcp_nodelay(true);
        if let Some(proxy) = &self.proxy {
            builder = builder.proxy(proxy.reqwest()?);
        }
        Ok(builder)
    }

    /// This outbound with OAuth 2.0 access tokens fetched (and shared between nodes) by `tokens`.
    pub fn with_tokens(mut self, tokens: Arc<oauth::Tokens>) -> Self {
        self.tokens = Some(tokens);
        self
    }

    pub fn tokens(&self) -> Option<&Arc<oauth::Tokens>> {
        self.tokens.as_ref()
    }

    pub fn policy(&self) -> &DestinationPolicy {
        &self.policy
    }

    /// The client for a webhook's TLS settings: the shared one without them.
    fn client_for(
        &self,
        tls: Option<&carehook_core::webhook::ClientTls>,
    ) -> Result<reqwest::Client, SendError> {
        let Some(tls) = tls.filter(|t| !t.is_empty()) else {
            return Ok(self.client.clone());
        };
        let key = crate::client_tls::fingerprint(tls);
        let mut clients = self.tls_clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let builder = self
            .builder()
            .map_err(|e| SendError::Invalid(format!("{e:#}")))?;
        let client = crate::client_tls::apply(builder, tls)
            .and_then(|b| b.build().map_err(|e| error_chain(&e)))
            .map_err(|e| SendError::Invalid(format!("the webhook's TLS settings: {e}")))?;
        if clients.len() >= MAX_TLS_CLIENTS {
            clients.clear();
        }
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// Sends one request and reads at most the logged part of the answer.
    pub async fn send(&self, req: Outgoing<'_>) -> Result<Answer, SendError> {
        self.send_tls(req, None).await
    }

    /// [`Outbound::send`] with a webhook's client certificate and trusted CAs.
    pub async fn send_tls(
        &self,
        req: Outgoing<'_>,
        tls: Option<&carehook_core::webhook::ClientTls>,
    ) -> Result<Answer, SendError> {
        let url = reqwest::Url::parse(req.url)
            .map_err(|e| SendError::Invalid(format!("bad URL: {e}")))?;
        match url.scheme() {
            "http" | "https" => {}
            other => return Err(SendError::Invalid(format!("scheme {other} is not allowed"))),
        }
        // IP literals never reach the resolver: check them here.
        let literal = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            Some(url::Host::Domain(_)) => None,
            None => return Err(SendError::Invalid("the URL has no host".into())),
        };
        if let Some(ip) = literal
            && let Some(why) = self.policy.refusal(ip)
        {
            return Err(SendError::Refused(format!(
                "{ip} is {why}; carehook does not send there unless CAREHOOK_ALLOWED_DESTINATIONS allows it"
            )));
        }
        // Through a proxy our resolver never sees the destination: check it here.
        if self.proxy.is_some()
            && let Some(url::Host::Domain(host)) = url.host()
        {
            egress::check_destination(&self.policy, host, req.timeout).await?;
        }
        let method = reqwest::Method::from_bytes(req.method.as_bytes())
            .map_err(|_| SendError::Invalid(format!("bad method {}", req.method)))?;
        let client = self.client_for(tls)?;
        let mut builder = client.request(method, url).timeout(req.timeout);
        for (name, value) in req.headers {
            let value =
                reqwest::header::HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
                    SendError::Invalid(format!("header {name} has a value HTTP cannot carry"))
                })?;
            builder = builder.header(name.as_str(), value);
        }
        if !req.body.is_empty() {
            builder = builder.body(req.body);
        }
        let started = Instant::now();
        let timeout_ms = req.timeout.as_millis() as u64;
        let mut response = builder.send().await.map_err(|e| classify(e, timeout_ms))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = Vec::new();
        let mut read = 0usize;
        loop {
            let left = req.timeout.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, response.chunk()).await {
                Err(_) => return Err(SendError::Timeout(timeout_ms)),
                Ok(Err(e)) => return Err(classify(e, timeout_ms)),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(chunk))) => {
                    read += chunk.len();
                    let room = MAX_LOGGED_BODY.saturating_sub(body.len());
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    // Enough for the log; dropping the response closes the
                    // connection instead of draining megabytes.
                    if read >= MAX_READ_BODY {
                        break;
                    }
                }
            }
        }
        Ok(Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
            retry_after,
        })
    }
}

/// Turns a client error into words, keeping our resolver's refusal intact.
fn classify(e: reqwest::Error, timeout_ms: u64) -> SendError {
    // The URL's path and query carry the event's values: never in a message.
    let e = e.without_url();
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<Refused>() {
            return SendError::Refused(refused.0.clone());
        }
        source = s.source();
    }
    if e.is_timeout() {
        return SendError::Timeout(timeout_ms);
    }
    let chain = error_chain(&e);
    if e.is_connect() {
        SendError::Connect(chain)
    } else {
        SendError::Request(chain)
    }
}

pub use crate::domain::error_chain;

/// Parses `CAREHOOK_ALLOWED_DESTINATIONS`: CIDRs or single addresses,
/// separated by commas or spaces.
pub fn parse_allowed(text: &str) -> Result<Vec<IpNet>, String> {
    text.split([',', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("\"{s}\" is not a CIDR like 10.0.0.0/8 or an address like 127.0.0.1")
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(ip: &str) -> bool {
        DestinationPolicy::default()
            .refusal(ip.parse().unwrap())
            .is_some()
    }

    #[test]
    fn special_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "100.128.0.1",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn allowed_networks_override_the_refusal() {
        let policy = DestinationPolicy::new(parse_allowed("127.0.0.1/32, 10.0.0.0/8").unwrap());
        assert!(policy.refusal("127.0.0.1".parse().unwrap()).is_none());
        assert!(
            policy
                .refusal("::ffff:127.0.0.1".parse().unwrap())
                .is_none()
        );
        assert!(policy.refusal("127.0.0.2".parse().unwrap()).is_some());
        assert!(policy.refusal("10.200.0.1".parse().unwrap()).is_none());
        assert!(parse_allowed("10.0.0.0/33").is_err());
        assert_eq!(parse_allowed("::1").unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_loopback_name_is_refused_at_resolution() {
        let out = Outbound::new(DestinationPolicy::default()).unwrap();
        let err = out
            .send(Outgoing {
                method: "POST",
                url: "http://localhost:9/",
                headers: &[],
                body: String::new(),
                timeout: Duration::from_secs(2),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Refused(_)), "{err}");
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = out
            .send(Outgoing {
                method: "POST",
                url: "http://[::ffff:127.0.0.1]:9/",
                headers: &[],
                body: String::new(),
                timeout: Duration::from_secs(2),
            })
            .await
            .unwrap_err();
        assert!(matches!(err, SendError::Refused(_)), "{err}");
    }
}
