//! The client address of a request that may have come through proxies.
//!
//! Only when the TCP peer is a trusted proxy (`--trusted-proxies`) are
//! `Forwarded` (RFC 7239) and `X-Forwarded-For` read, and then from the
//! right: each trusted hop is skipped, and the first address that is not a
//! trusted proxy is the client. An address a client wrote itself (the left
//! end) is never taken while a proxy we trust appended one after it.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Parses `--trusted-proxies`: comma-separated CIDR blocks or single
/// addresses.
pub fn parse_trusted(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("'{s}' is not a CIDR block (10.0.0.0/8) or an address"))
        })
        .collect()
}

fn trusted(proxies: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    proxies.iter().any(|net| net.contains(&ip))
}

/// An IPv4-mapped IPv6 address as its IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// The address of the client: `peer` unless it is a trusted proxy, in
/// which case the nearest untrusted address the proxies forwarded.
pub fn client_address(
    proxies: &[IpNet],
    peer: Option<IpAddr>,
    headers: &HeaderMap,
) -> Option<IpAddr> {
    let peer = peer.map(canonical)?;
    if proxies.is_empty() || !trusted(proxies, peer) {
        return Some(peer);
    }
    let hops = forwarded_for(headers);
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                client = canonical(*ip);
                if !trusted(proxies, client) {
                    return Some(client);
                }
            }
            // An obfuscated or unknown hop: nothing further left can be
            // trusted; the last proxy we trust is the client we know.
            None => return Some(client),
        }
    }
    Some(client)
}

/// The forwarded-for chain, left (farthest) to right (nearest): from
/// `Forwarded` when present, else `X-Forwarded-For`. `None` for a hop whose
/// address is hidden or unreadable.
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<&str> = headers
        .get_all("forwarded")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, v)| node_address(v.trim()))
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| node_address(s.trim()))
        .collect()
}

/// The address of a `Forwarded` node (`192.0.2.1`, `"[2001:db8::1]:4711"`,
/// `192.0.2.1:80`); `None` for `unknown` or an obfuscated name.
fn node_address(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Ok(ip) = node.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn without_trusted_proxies_the_peer_is_the_client() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_address(&[], Some(ip("10.0.0.2")), &h),
            Some(ip("10.0.0.2"))
        );
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_address() {
        let proxies = parse_trusted("10.0.0.0/8").unwrap();
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            client_address(&proxies, Some(ip("198.51.100.7")), &h),
            Some(ip("198.51.100.7"))
        );
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client() {
        let proxies = parse_trusted("10.0.0.0/8, 192.168.1.1").unwrap();
        // The client wrote a fake address on the left; the proxy appended
        // the real one.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(
            client_address(&proxies, Some(ip("10.0.0.2")), &h),
            Some(ip("203.0.113.9"))
        );
        let h = headers(&[(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::7]:4711\";proto=https, for=10.2.2.2",
        )]);
        assert_eq!(
            client_address(&proxies, Some(ip("192.168.1.1")), &h),
            Some(ip("2001:db8::7"))
        );
        let h = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            client_address(&proxies, Some(ip("10.0.0.2")), &h),
            Some(ip("10.0.0.2"))
        );
        assert_eq!(
            client_address(
                &proxies,
                Some(ip("::ffff:10.0.0.2")),
                &headers(&[("x-forwarded-for", "203.0.113.5:1234")])
            ),
            Some(ip("203.0.113.5"))
        );
    }

    #[test]
    fn bad_proxy_lists_are_refused() {
        assert!(parse_trusted("10.0.0.0/33").is_err());
        assert!(parse_trusted("proxy.local").is_err());
        assert_eq!(parse_trusted("").unwrap(), vec![]);
    }
}
