//! Which connections may (and must) start with a PROXY protocol header:
//! those from the load balancers the server trusts. The header itself is
//! parsed by [`crate::protocol::proxy`].
//!
//! Never detected on its own: with the feature off, or from an address
//! the server does not trust, a header is a client claiming to be someone
//! else, and the connection is closed.

use std::net::IpAddr;

use crate::error::{Error, Result};

/// The addresses (single, or networks in CIDR form) whose connections
/// carry a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<(IpAddr, u8)>,
}

impl TrustedProxies {
    /// Parses a comma-separated list such as `"127.0.0.1, 10.0.0.0/8, ::1"`.
    pub fn parse(list: &str) -> Result<TrustedProxies> {
        let invalid = |entry: &str, why: &str| {
            Error::InvalidArgument(format!(
                "config.proxy_protocol_from has {entry:?}: {why}. Fix: list IP addresses or networks, comma-separated, e.g. \"10.0.0.5, 192.168.0.0/16, ::1\""
            ))
        };
        let mut networks = Vec::new();
        for entry in list
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
        {
            let (address, prefix) = match entry.split_once('/') {
                Some((address, prefix)) => (address, Some(prefix)),
                None => (entry, None),
            };
            let address: IpAddr = address
                .parse()
                .map_err(|_| invalid(entry, "not an IP address"))?;
            let bits = if address.is_ipv4() { 32 } else { 128 };
            let prefix = match prefix {
                Some(prefix) => prefix
                    .parse::<u8>()
                    .ok()
                    .filter(|prefix| *prefix <= bits)
                    .ok_or_else(|| invalid(entry, "not a prefix length of that address family"))?,
                None => bits,
            };
            networks.push((address, prefix));
        }
        if networks.is_empty() {
            return Err(invalid(list, "no address"));
        }
        Ok(TrustedProxies { networks })
    }

    /// Whether a connection from `address` comes from a trusted proxy
    /// (an IPv4 client of an IPv6 listener counts as its IPv4 address).
    pub fn trusts(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.networks
            .iter()
            .any(|(network, prefix)| within(address, *network, *prefix))
    }
}

/// Whether `address` has the first `prefix` bits of `network`.
fn within(address: IpAddr, network: IpAddr, prefix: u8) -> bool {
    // The bits past the prefix shifted out (all of them for /0).
    let same_prefix = |a: u128, n: u128, width: u32| {
        let shift = width - u32::from(prefix);
        a.checked_shr(shift).unwrap_or(0) == n.checked_shr(shift).unwrap_or(0)
    };
    match (address, network) {
        (IpAddr::V4(a), IpAddr::V4(n)) => same_prefix(u32::from(a).into(), u32::from(n).into(), 32),
        (IpAddr::V6(a), IpAddr::V6(n)) => same_prefix(a.into(), n.into(), 128),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_networks_of_both_families_are_trusted() {
        let trusted = TrustedProxies::parse(" 127.0.0.3, 10.0.0.0/8,2001:db8::/32 ,::1").unwrap();
        for yes in [
            "127.0.0.3",
            "10.1.2.3",
            "2001:db8::7",
            "::1",
            "::ffff:127.0.0.3",
            "::ffff:10.9.9.9",
        ] {
            assert!(trusted.trusts(yes.parse().unwrap()), "{yes}");
        }
        for no in ["127.0.0.1", "11.0.0.1", "2001:db9::1", "::2"] {
            assert!(!trusted.trusts(no.parse().unwrap()), "{no}");
        }
        let everyone = TrustedProxies::parse("0.0.0.0/0").unwrap();
        assert!(everyone.trusts("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn a_bad_list_is_refused_with_the_entry_named() {
        for bad in [
            "",
            " , ",
            "localhost",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.1/x",
        ] {
            let error = TrustedProxies::parse(bad).unwrap_err().to_string();
            assert!(error.contains("proxy_protocol_from"), "{bad}: {error}");
        }
    }
}
