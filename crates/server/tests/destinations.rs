//! The destination policy, row by row against its sources: IANA's IPv4
//! Special-Purpose Address Registry
//! (<https://www.iana.org/assignments/iana-ipv4-special-registry>) and IPv6
//! Special-Purpose Address Registry
//! (<https://www.iana.org/assignments/iana-ipv6-special-registry>), plus the
//! multicast blocks and the IPv6 forms that carry an IPv4 address (RFC 4291
//! IPv4-compatible and -mapped, RFC 2765 SIIT, RFC 3056 6to4, RFC 6052 and
//! 8215 NAT64, RFC 4380 Teredo). For each row: an address inside it and
//! whether carehook may send there with the default policy.
//!
//! A row is refused unless the registry marks it "Globally Reachable" and it
//! is a place a clinic's webhook could mean (AS112 and AMT relays are
//! global, and allowed like any public address).

use std::net::IpAddr;

use carehook::outbound::{DestinationPolicy, parse_allowed};

/// (registry row, an address in it, refused?)
const IPV4_REGISTRY: &[(&str, &str, bool)] = &[
    ("0.0.0.0/8 \"This network\" (RFC 791)", "0.1.2.3", true),
    ("0.0.0.0/32 \"This host on this network\"", "0.0.0.0", true),
    ("10.0.0.0/8 Private-Use (RFC 1918)", "10.200.3.4", true),
    (
        "100.64.0.0/10 Shared Address Space (RFC 6598)",
        "100.127.255.254",
        true,
    ),
    ("127.0.0.0/8 Loopback (RFC 1122)", "127.0.0.2", true),
    (
        "169.254.0.0/16 Link Local (RFC 3927)",
        "169.254.169.254",
        true,
    ),
    ("172.16.0.0/12 Private-Use (RFC 1918)", "172.31.0.1", true),
    (
        "192.0.0.0/24 IETF Protocol Assignments (RFC 6890)",
        "192.0.0.200",
        true,
    ),
    (
        "192.0.0.0/29 IPv4 Service Continuity Prefix (RFC 7335)",
        "192.0.0.1",
        true,
    ),
    (
        "192.0.0.8/32 IPv4 dummy address (RFC 7600)",
        "192.0.0.8",
        true,
    ),
    (
        "192.0.0.9/32 Port Control Protocol Anycast (RFC 7723)",
        "192.0.0.9",
        true,
    ),
    ("192.0.0.10/32 TURN Anycast (RFC 8155)", "192.0.0.10", true),
    (
        "192.0.0.170/32 NAT64/DNS64 Discovery (RFC 7050)",
        "192.0.0.170",
        true,
    ),
    (
        "192.0.0.171/32 NAT64/DNS64 Discovery (RFC 7050)",
        "192.0.0.171",
        true,
    ),
    (
        "192.0.2.0/24 Documentation TEST-NET-1 (RFC 5737)",
        "192.0.2.7",
        true,
    ),
    (
        "192.31.196.0/24 AS112-v4 (RFC 7535), globally reachable",
        "192.31.196.1",
        false,
    ),
    (
        "192.52.193.0/24 AMT (RFC 7450), globally reachable",
        "192.52.193.1",
        false,
    ),
    (
        "192.88.99.0/24 Deprecated 6to4 Relay Anycast (RFC 7526)",
        "192.88.99.1",
        true,
    ),
    ("192.168.0.0/16 Private-Use (RFC 1918)", "192.168.1.1", true),
    (
        "192.175.48.0/24 Direct Delegation AS112 (RFC 7534), globally reachable",
        "192.175.48.1",
        false,
    ),
    (
        "198.18.0.0/15 Benchmarking (RFC 2544)",
        "198.19.255.1",
        true,
    ),
    (
        "198.51.100.0/24 Documentation TEST-NET-2 (RFC 5737)",
        "198.51.100.9",
        true,
    ),
    (
        "203.0.113.0/24 Documentation TEST-NET-3 (RFC 5737)",
        "203.0.113.9",
        true,
    ),
    ("240.0.0.0/4 Reserved (RFC 1112)", "250.1.2.3", true),
    (
        "255.255.255.255/32 Limited Broadcast (RFC 919)",
        "255.255.255.255",
        true,
    ),
    // Not in the special-purpose registry: the multicast block.
    ("224.0.0.0/4 Multicast (RFC 5771)", "239.1.1.1", true),
    // Ordinary public addresses, just outside refused blocks.
    ("public, below 100.64.0.0/10", "100.63.255.255", false),
    ("public, above 100.64.0.0/10", "100.128.0.1", false),
    ("public, next to 172.16.0.0/12", "172.32.0.1", false),
    ("public", "93.184.216.34", false),
];

const IPV6_REGISTRY: &[(&str, &str, bool)] = &[
    ("::1/128 Loopback Address (RFC 4291)", "::1", true),
    ("::/128 Unspecified Address (RFC 4291)", "::", true),
    (
        "::ffff:0:0/96 IPv4-mapped Address (RFC 4291), loopback inside",
        "::ffff:127.0.0.1",
        true,
    ),
    (
        "::ffff:0:0/96 IPv4-mapped Address, metadata inside",
        "::ffff:169.254.169.254",
        true,
    ),
    (
        "::ffff:0:0/96 IPv4-mapped Address, public inside",
        "::ffff:93.184.216.34",
        false,
    ),
    (
        "64:ff9b::/96 IPv4-IPv6 Translat. (RFC 6052), loopback inside",
        "64:ff9b::127.0.0.1",
        true,
    ),
    (
        "64:ff9b::/96 IPv4-IPv6 Translat., metadata inside",
        "64:ff9b::a9fe:a9fe",
        true,
    ),
    (
        "64:ff9b::/96 IPv4-IPv6 Translat., private inside",
        "64:ff9b::10.0.0.1",
        true,
    ),
    (
        "64:ff9b::/96 IPv4-IPv6 Translat., public inside",
        "64:ff9b::93.184.216.34",
        false,
    ),
    (
        "64:ff9b:1::/48 IPv4-IPv6 Translat., local use (RFC 8215)",
        "64:ff9b:1::5db8:d822",
        true,
    ),
    (
        "64:ff9b:1::/48 IPv4-IPv6 Translat., local use, loopback at /96",
        "64:ff9b:1::7f00:2",
        true,
    ),
    (
        "100::/64 Discard-Only Address Block (RFC 6666)",
        "100::1",
        true,
    ),
    (
        "100:0:0:1::/64 Dummy IPv6 Prefix (RFC 9780)",
        "100::1:0:0:1",
        true,
    ),
    (
        "2001::/23 IETF Protocol Assignments (RFC 2928)",
        "2001:1ff::1",
        true,
    ),
    (
        "2001::/32 TEREDO (RFC 4380)",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
        true,
    ),
    (
        "2001:1::1/128 Port Control Protocol Anycast (RFC 7723)",
        "2001:1::1",
        true,
    ),
    ("2001:1::2/128 TURN Anycast (RFC 8155)", "2001:1::2", true),
    (
        "2001:1::3/128 DNS-SD Service Registration Protocol Anycast (RFC 9665)",
        "2001:1::3",
        true,
    ),
    ("2001:2::/48 Benchmarking (RFC 5180)", "2001:2::1", true),
    ("2001:3::/32 AMT (RFC 7450)", "2001:3::1", true),
    ("2001:4:112::/48 AS112-v6 (RFC 7535)", "2001:4:112::1", true),
    (
        "2001:10::/28 Deprecated ORCHID (RFC 4843)",
        "2001:10::1",
        true,
    ),
    ("2001:20::/28 ORCHIDv2 (RFC 7343)", "2001:20::1", true),
    (
        "2001:30::/28 Drone Remote ID Protocol Entity Tags (RFC 9374)",
        "2001:30::1",
        true,
    ),
    (
        "2001:db8::/32 Documentation (RFC 3849)",
        "2001:db8::1",
        true,
    ),
    (
        "2002::/16 6to4 (RFC 3056), loopback inside",
        "2002:7f00:1::1",
        true,
    ),
    ("2002::/16 6to4, private inside", "2002:c0a8:101::1", true),
    ("2002::/16 6to4, metadata inside", "2002:a9fe:a9fe::1", true),
    ("2002::/16 6to4, public inside", "2002:5db8:d822::1", false),
    (
        "2620:4f:8000::/48 Direct Delegation AS112 Service (RFC 7534)",
        "2620:4f:8000::1",
        false,
    ),
    ("3fff::/20 Documentation (RFC 9637)", "3fff:fff::1", true),
    (
        "5f00::/16 Segment Routing (SRv6) SIDs (RFC 9602)",
        "5f00::1",
        true,
    ),
    ("fc00::/7 Unique-Local (RFC 4193)", "fd12:3456::1", true),
    ("fc00::/7 Unique-Local, AWS metadata", "fd00:ec2::254", true),
    ("fe80::/10 Link-Local Unicast (RFC 4291)", "fe80::1", true),
    // Outside the registry, refused all the same.
    (
        "::/96 IPv4-compatible (deprecated, RFC 4291), loopback inside",
        "::127.0.0.2",
        true,
    ),
    (
        "::/96 IPv4-compatible (deprecated), public inside",
        "::93.184.216.34",
        true,
    ),
    (
        "::ffff:0:0:0/96 SIIT IPv4-translated (RFC 2765), loopback inside",
        "::ffff:0:127.0.0.1",
        true,
    ),
    (
        "::ffff:0:0:0/96 SIIT IPv4-translated, private inside",
        "::ffff:0:10.1.1.1",
        true,
    ),
    (
        "fec0::/10 Site-Local (deprecated, RFC 3879)",
        "fec0::1",
        true,
    ),
    ("ff00::/8 Multicast (RFC 4291)", "ff02::1", true),
    ("public", "2606:4700:4700::1111", false),
    ("public, next to 2001::/23", "2001:200::1", false),
];

fn check(rows: &[(&str, &str, bool)]) {
    let policy = DestinationPolicy::default();
    let mut wrong = Vec::new();
    for (row, addr, refused) in rows {
        let ip: IpAddr = addr.parse().unwrap_or_else(|_| panic!("{row}: {addr}"));
        let why = policy.refusal(ip);
        if why.is_some() != *refused {
            wrong.push(format!(
                "{row}: {addr} should be {}, the policy says {why:?}",
                if *refused { "refused" } else { "allowed" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_ipv4_special_purpose_registry_row_by_row() {
    check(IPV4_REGISTRY);
}

#[test]
fn the_ipv6_special_purpose_registry_row_by_row() {
    check(IPV6_REGISTRY);
}

#[test]
fn an_allowed_ipv4_network_does_not_open_its_ipv6_tunnels() {
    // Allowing 127.0.0.1 lets carehook reach a receiver on this host by its
    // IPv4 address (and the IPv4-mapped form, which is the same socket), but
    // not through a 6to4 or NAT64 form, which goes through a relay.
    let policy = DestinationPolicy::new(parse_allowed("127.0.0.1/32").unwrap());
    let ok = |a: &str| policy.refusal(a.parse().unwrap()).is_none();
    assert!(ok("127.0.0.1"));
    assert!(ok("::ffff:127.0.0.1"));
    assert!(!ok("127.0.0.2"));
    assert!(!ok("64:ff9b::127.0.0.1"));
    assert!(!ok("2002:7f00:1::1"));
    assert!(!ok("::127.0.0.1"));
    // An IPv6 network allowed by name is allowed.
    let policy = DestinationPolicy::new(parse_allowed("fd00::/8").unwrap());
    assert!(policy.refusal("fd12::1".parse().unwrap()).is_none());
}
