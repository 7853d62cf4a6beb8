//! The PROXY protocol header (versions 1 and 2) that a load balancer such
//! as HAProxy writes at the start of a connection to say where the client
//! really connected from. Parsing only (the `ppp` crate does the formats);
//! whether a connection may or must carry one is the server's decision.

use std::net::{IpAddr, SocketAddr};

use ppp::v1;
use ppp::v2;
use ppp::{HeaderResult, PartialResult};

/// Version 1 starts with this text.
const V1_PREFIX: &[u8] = b"PROXY ";
/// Version 2 starts with these 12 bytes.
const V2_SIGNATURE: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
/// The longest version 1 header, CRLF included (the specification's
/// bound): a line that has no CRLF by then is not one.
const V1_MAX_LEN: usize = 107;

/// What the start of a connection's bytes holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyHeader {
    /// Too few bytes to tell: they could still become a header.
    Incomplete,
    /// No PROXY header: the bytes start with something else.
    Absent,
    /// A whole header of `len` bytes. `source` is the client's address, or
    /// `None` when the header says the proxy connected on its own behalf
    /// (v2 LOCAL, v1 UNKNOWN: a health check), so the connection's own
    /// address stands.
    Parsed {
        source: Option<SocketAddr>,
        len: usize,
    },
    /// A header that breaks the format: the connection must be closed.
    Invalid(String),
}

/// Reads a PROXY header at the start of `bytes`, if there is one.
pub fn parse(bytes: &[u8]) -> ProxyHeader {
    let starts_like = |signature: &[u8]| {
        let n = bytes.len().min(signature.len());
        bytes[..n] == signature[..n]
    };
    let v1 = starts_like(V1_PREFIX);
    let v2 = starts_like(V2_SIGNATURE);
    if !v1 && !v2 {
        return ProxyHeader::Absent;
    }
    if (v1 && bytes.len() < V1_PREFIX.len()) || (v2 && bytes.len() < V2_SIGNATURE.len()) {
        return ProxyHeader::Incomplete;
    }
    if v1 {
        parse_v1(bytes)
    } else {
        parse_v2(bytes)
    }
}

fn parse_v1(bytes: &[u8]) -> ProxyHeader {
    let Some(end) = bytes.windows(2).position(|pair| pair == b"\r\n") else {
        return match bytes.len() >= V1_MAX_LEN {
            true => ProxyHeader::Invalid(format!(
                "a version 1 header without CRLF in {V1_MAX_LEN} bytes"
            )),
            false => ProxyHeader::Incomplete,
        };
    };
    let len = end + 2;
    if len > V1_MAX_LEN {
        return ProxyHeader::Invalid(format!(
            "a version 1 header of {len} bytes (at most {V1_MAX_LEN})"
        ));
    }
    match HeaderResult::parse(&bytes[..len]) {
        HeaderResult::V1(Ok(header)) => ProxyHeader::Parsed {
            source: match header.addresses {
                v1::Addresses::Unknown => None,
                v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
            },
            len,
        },
        HeaderResult::V1(Err(e)) => {
            ProxyHeader::Invalid(format!("a malformed version 1 header: {e}"))
        }
        HeaderResult::V2(_) => ProxyHeader::Invalid("a malformed version 1 header".into()),
    }
}

fn parse_v2(bytes: &[u8]) -> ProxyHeader {
    let header = v2::Header::try_from(bytes);
    if header.is_incomplete() {
        return ProxyHeader::Incomplete;
    }
    match header {
        Ok(header) => ProxyHeader::Parsed {
            source: match (header.command, header.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => {
                    Some(SocketAddr::new(IpAddr::V4(a.source_address), a.source_port))
                }
                (_, v2::Addresses::IPv6(a)) => {
                    Some(SocketAddr::new(IpAddr::V6(a.source_address), a.source_port))
                }
                // UNIX or unspecified sources: no IP address to report.
                (_, _) => None,
            },
            len: header.len(),
        },
        Err(e) => ProxyHeader::Invalid(format!("a malformed version 2 header: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 2 header of `command` (0x20 LOCAL, 0x21 PROXY) for TCP
    /// over IPv4 from `source` to 10.0.0.1:8080, then `rest`.
    fn v2_ipv4(command: u8, source: ([u8; 4], u16), rest: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.extend([command, 0x11, 0, 12]);
        bytes.extend(source.0);
        bytes.extend([10, 0, 0, 1]);
        bytes.extend(source.1.to_be_bytes());
        bytes.extend(8080u16.to_be_bytes());
        bytes.extend(rest);
        bytes
    }

    #[test]
    fn a_version_1_header_gives_the_client_and_its_length() {
        let input = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 8080\r\n\x00\x10{\"pv\"";
        assert_eq!(
            parse(input),
            ProxyHeader::Parsed {
                source: Some("192.0.2.7:51234".parse().unwrap()),
                len: 42,
            }
        );
        let ipv6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 51234 8080\r\n";
        assert_eq!(
            parse(ipv6),
            ProxyHeader::Parsed {
                source: Some("[2001:db8::7]:51234".parse().unwrap()),
                len: ipv6.len(),
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            ProxyHeader::Parsed {
                source: None,
                len: 15
            }
        );
    }

    #[test]
    fn a_version_2_header_gives_the_client_or_none_for_a_local_one() {
        let input = v2_ipv4(0x21, ([192, 0, 2, 7], 51234), b"next");
        assert_eq!(
            parse(&input),
            ProxyHeader::Parsed {
                source: Some("192.0.2.7:51234".parse().unwrap()),
                len: 28,
            }
        );
        assert_eq!(
            parse(&v2_ipv4(0x20, ([192, 0, 2, 7], 1), b"")),
            ProxyHeader::Parsed {
                source: None,
                len: 28
            }
        );
    }

    #[test]
    fn every_prefix_of_a_header_is_incomplete() {
        let v1 = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 8080\r\n";
        let v2 = v2_ipv4(0x21, ([192, 0, 2, 7], 51234), b"");
        for n in 1..v1.len() {
            assert_eq!(parse(&v1[..n]), ProxyHeader::Incomplete, "v1, {n} bytes");
        }
        for n in 1..v2.len() {
            assert_eq!(parse(&v2[..n]), ProxyHeader::Incomplete, "v2, {n} bytes");
        }
    }

    #[test]
    fn a_veltix_handshake_is_no_header() {
        assert_eq!(parse(b"\x00\x10{\"pv\": \"1.0\"}"), ProxyHeader::Absent);
        assert_eq!(parse(b"\x00"), ProxyHeader::Absent);
        assert_eq!(parse(b"PROXX"), ProxyHeader::Absent);
    }

    #[test]
    fn broken_headers_are_invalid() {
        let invalid = |bytes: &[u8]| matches!(parse(bytes), ProxyHeader::Invalid(_));
        assert!(invalid(b"PROXY TCP4 not-an-address 10.0.0.1 1 2\r\n"));
        assert!(invalid(b"PROXY TCP9 192.0.2.7 10.0.0.1 1 2\r\n"));
        assert!(
            invalid(&[b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat()),
            "no CRLF in 107 bytes"
        );
        let mut wrong_version = v2_ipv4(0x21, ([192, 0, 2, 7], 1), b"");
        wrong_version[12] = 0x31;
        assert!(invalid(&wrong_version));
    }
}
