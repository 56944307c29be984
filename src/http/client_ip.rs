//! The client's address as login throttling and the logs see it: the TCP peer, unless that peer
//! is a configured trusted proxy; then the right-most `X-Forwarded-For` entry that is not itself
//! a trusted proxy. Entries left of that one were written by the client and prove nothing.

use std::{net::IpAddr, net::SocketAddr, str::FromStr};

use hyper::HeaderMap;
use ipnet::IpNet;

/// `X-Forwarded-For` entries looked at, from the right; a longer chain is cut there.
const MAX_HOPS: usize = 32;

/// Proxies (addresses or CIDR blocks) whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl FromStr for TrustedProxies {
    type Err = String;

    /// A comma-separated list of IPs and CIDRs (`10.0.0.0/8, 192.0.2.1, ::1`); empty: none.
    fn from_str(raw: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("{item:?} is neither an IP address nor a CIDR block"))?,
            };
            nets.push(net.trunc());
        }
        Ok(TrustedProxies(nets))
    }
}

impl TrustedProxies {
    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a request from `peer` with these headers.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusts(peer) {
            return peer;
        }
        // Every X-Forwarded-For header, in order, as one list; read from the right.
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for entry in entries.iter().rev().take(MAX_HOPS) {
            // Something a trusted proxy would not write: stop at the last address believed.
            let Some(ip) = parse_entry(entry) else {
                return client;
            };
            client = ip;
            if !self.trusts(ip) {
                return ip;
            }
        }
        client
    }
}

/// An `X-Forwarded-For` entry: an IP, possibly with a port (`192.0.2.1:4711`, `[2001:db8::1]:80`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|addr| addr.ip()))
        .map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let forged = headers(&["198.51.100.1"]);
        assert_eq!(
            trusted.client_ip(ip("203.0.113.5"), &forged),
            ip("203.0.113.5")
        );
        let none = TrustedProxies::default();
        assert_eq!(none.client_ip(ip("127.0.0.1"), &forged), ip("127.0.0.1"));
    }

    #[test]
    fn the_right_most_untrusted_entry_is_the_client() {
        let trusted: TrustedProxies = "127.0.0.1, 10.0.0.0/8".parse().unwrap();
        let peer = ip("127.0.0.1");
        // The client forged the first entry; the proxies appended the rest.
        let chain = headers(&["6.6.6.6, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(trusted.client_ip(peer, &chain), ip("198.51.100.7"));
        assert_eq!(
            trusted.client_ip(peer, &headers(&["[2001:db8::1]:443"])),
            ip("2001:db8::1")
        );
        assert_eq!(
            trusted.client_ip(peer, &headers(&["198.51.100.7:1234"])),
            ip("198.51.100.7")
        );
        // Only proxies: the farthest one seen. Nothing: the peer.
        assert_eq!(
            trusted.client_ip(peer, &headers(&["10.0.0.9"])),
            ip("10.0.0.9")
        );
        assert_eq!(trusted.client_ip(peer, &HeaderMap::new()), peer);
        // Garbage from a trusted hop's side stops the walk at the last address believed.
        assert_eq!(
            trusted.client_ip(peer, &headers(&["198.51.100.7, junk"])),
            peer
        );
        assert_eq!(
            trusted.client_ip(ip("::ffff:127.0.0.1"), &headers(&["198.51.100.7"])),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_bad_list_is_refused() {
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
        assert!("proxy.example".parse::<TrustedProxies>().is_err());
        assert!("".parse::<TrustedProxies>().is_ok());
    }
}
