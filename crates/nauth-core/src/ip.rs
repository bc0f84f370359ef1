//! The client's address (docs/api.md §7 "Client IP"): the socket peer, or, behind a trusted proxy,
//! the right-most untrusted `X-Forwarded-For` hop; and the key per-IP counters use, so that
//! one IPv6 client cannot spread its attempts over the 2^64 addresses of its own network.
//!
//! Pure functions over data: the walk is table-tested below.

use std::net::{IpAddr, Ipv6Addr, SocketAddrV4};

use ipnet::{IpNet, Ipv6Net};

/// `::ffff:a.b.c.d` read as `a.b.c.d`; anything else as it is.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Whether `ip` (as sent, or in its canonical form) is in one of the trusted networks.
fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let c = canonical(ip);
    trusted.iter().any(|n| n.contains(&ip) || n.contains(&c))
}

/// One `X-Forwarded-For` hop: `ip`, `ipv4:port`, `[ipv6]:port`, `[ipv6]` or a bare IPv6.
/// `None` for anything else (`unknown`, an obfuscated identifier, a zone id, garbage).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        let ok_after = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok());
        return ok_after
            .then(|| v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6))
            .flatten();
    }
    hop.parse::<SocketAddrV4>()
        .ok()
        .map(|s| IpAddr::V4(*s.ip()))
}

/// The client's address.
///
/// - No peer (the framework does not know it): `None`.
/// - A peer outside `trusted`: the peer.
/// - A trusted peer: every `X-Forwarded-For` line, joined in order with commas, is walked from
///   the right; trusted hops are skipped and the first untrusted one is the client. An
///   unparsable hop ends the walk: the answer is then the nearest address already seen (a
///   trusted proxy), never something left of the garbage, which anyone could have written.
///   When every hop is trusted the left-most one is the answer; with no hops, the peer.
///
/// Every answer has IPv4-mapped IPv6 read as IPv4.
pub(crate) fn client_ip<'a>(
    peer: Option<IpAddr>,
    xff_lines: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    if !is_trusted(peer, trusted) {
        return Some(canonical(peer));
    }
    let lines: Vec<&str> = xff_lines
        .into_iter()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let mut nearest = peer;
    for hop in lines.iter().rev().flat_map(|l| l.rsplit(',')) {
        let Some(ip) = parse_hop(hop.trim()) else {
            break;
        };
        if !is_trusted(ip, trusted) {
            return Some(canonical(ip));
        }
        nearest = ip;
    }
    Some(canonical(nearest))
}

/// The key under which per-IP budgets count an address: an IPv4 address as it is, an IPv6
/// address as its /64 (`2001:db8:1:2::/64`), the smallest network a single subscriber is
/// usually given. IPv4-mapped IPv6 counts as its IPv4 address. Audit rows keep the full address.
// Until every per-IP budget counts through it.
pub(crate) fn ip_bucket(ip: IpAddr) -> String {
    match canonical(ip) {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => Ipv6Net::new(v6, 64)
            .map(|n| n.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn hops() {
        let cases: &[(&str, Option<&str>)] = &[
            ("1.2.3.4", Some("1.2.3.4")),
            ("1.2.3.4:5678", Some("1.2.3.4")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            ("::ffff:10.0.0.1", Some("::ffff:10.0.0.1")),
            ("[::ffff:10.0.0.1]:80", Some("::ffff:10.0.0.1")),
            ("", None),
            ("unknown", None),
            ("_hidden", None),
            ("1.2.3.4:", None),
            ("1.2.3.4:99999", None),
            ("1.2.3", None),
            ("[2001:db8::1", None),
            ("[2001:db8::1]:", None),
            ("[2001:db8::1]x", None),
            ("[1.2.3.4]", None),
            ("2001:db8::1:443x", None),
            ("fe80::1%eth0", None),
            (" 1.2.3.4", None),
        ];
        for (hop, want) in cases {
            assert_eq!(parse_hop(hop), want.map(ip), "{hop:?}");
        }
    }

    #[test]
    fn walk() {
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8", "::1/128", "fd00::/8"]);
        let proxy = Some(ip("127.0.0.1"));
        // (peer, header lines, answer)
        let cases: &[(Option<&str>, &[&str], Option<&str>)] = &[
            (None, &["1.2.3.4"], None),
            // An untrusted peer is the client, whatever it claims.
            (Some("203.0.113.9"), &["1.2.3.4"], Some("203.0.113.9")),
            (Some("::ffff:203.0.113.9"), &[], Some("203.0.113.9")),
            // A trusted peer without the header: the peer.
            (Some("127.0.0.1"), &[], Some("127.0.0.1")),
            (Some("127.0.0.1"), &["", "  "], Some("127.0.0.1")),
            // The right-most untrusted hop.
            (Some("127.0.0.1"), &["1.1.1.1, 2.2.2.2"], Some("2.2.2.2")),
            (
                Some("127.0.0.1"),
                &["1.1.1.1, 2.2.2.2, 10.1.2.3"],
                Some("2.2.2.2"),
            ),
            // Every line, joined in order: the last line holds the right-most hops.
            (
                Some("127.0.0.1"),
                &["1.1.1.1", "2.2.2.2, 10.0.0.5"],
                Some("2.2.2.2"),
            ),
            (
                Some("127.0.0.1"),
                &["2.2.2.2, 10.0.0.5", "10.0.0.6"],
                Some("2.2.2.2"),
            ),
            (
                Some("127.0.0.1"),
                &["1.1.1.1,2.2.2.2", "10.9.9.9"],
                Some("2.2.2.2"),
            ),
            // Ports and brackets.
            (
                Some("127.0.0.1"),
                &["1.1.1.1, 2.2.2.2:4711"],
                Some("2.2.2.2"),
            ),
            (
                Some("127.0.0.1"),
                &["[2001:db8::7]:443"],
                Some("2001:db8::7"),
            ),
            (
                Some("127.0.0.1"),
                &["[2001:db8::7], [fd00::1]:80"],
                Some("2001:db8::7"),
            ),
            (Some("127.0.0.1"), &["2001:db8::8"], Some("2001:db8::8")),
            // IPv4-mapped IPv6 is IPv4, for the client and for trust.
            (
                Some("127.0.0.1"),
                &["::ffff:198.51.100.4"],
                Some("198.51.100.4"),
            ),
            (
                Some("127.0.0.1"),
                &["1.1.1.1, ::ffff:10.0.0.9"],
                Some("1.1.1.1"),
            ),
            (Some("::ffff:127.0.0.1"), &["1.1.1.1"], Some("1.1.1.1")),
            // Garbage ends the walk: the nearest address seen, never one left of it.
            (Some("127.0.0.1"), &["1.1.1.1, garbage"], Some("127.0.0.1")),
            (
                Some("127.0.0.1"),
                &["1.1.1.1, garbage, 10.0.0.3"],
                Some("10.0.0.3"),
            ),
            (
                Some("127.0.0.1"),
                &["1.1.1.1, , 10.0.0.3"],
                Some("10.0.0.3"),
            ),
            (Some("127.0.0.1"), &["garbage, 2.2.2.2"], Some("2.2.2.2")),
            (
                Some("127.0.0.1"),
                &["1.1.1.1", "unknown"],
                Some("127.0.0.1"),
            ),
            // Every hop trusted: the left-most.
            (Some("127.0.0.1"), &["10.0.0.1, 10.0.0.2"], Some("10.0.0.1")),
            (Some("::1"), &["fd00::5", "::1"], Some("fd00::5")),
        ];
        for (peer, lines, want) in cases {
            let got = client_ip(peer.map(ip), lines.iter().copied(), &trusted);
            assert_eq!(got, want.map(ip), "{peer:?} {lines:?}");
        }
        // Nothing trusted: the header is never read.
        assert_eq!(client_ip(proxy, ["1.1.1.1"], &[]), Some(ip("127.0.0.1")));
    }

    #[test]
    fn buckets() {
        let cases = [
            ("198.51.100.4", "198.51.100.4"),
            ("::ffff:198.51.100.4", "198.51.100.4"),
            ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
            ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
            ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
            ("::1", "::/64"),
        ];
        for (a, want) in cases {
            assert_eq!(ip_bucket(ip(a)), want, "{a}");
        }
    }
}
