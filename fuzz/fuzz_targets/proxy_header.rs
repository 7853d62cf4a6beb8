//! The PROXY protocol header parser on arbitrary bytes: it never panics, a
//! parsed header lies within the bytes, every prefix of a parsed header is
//! incomplete (a header split across reads is read whole), and bytes that
//! start like no header are never taken for one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use veltix::protocol::proxy::{parse, ProxyHeader};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        ProxyHeader::Parsed { len, .. } => {
            assert!(len > 0 && len <= data.len(), "a header of {len} bytes in {}", data.len());
            for prefix in 1..len {
                assert_eq!(parse(&data[..prefix]), ProxyHeader::Incomplete, "a prefix of {prefix} bytes");
            }
            assert!(data.starts_with(b"PROXY ") || data.starts_with(b"\r\n\r\n\0\r\nQUIT\n"));
        }
        ProxyHeader::Absent => {
            assert!(!data.starts_with(b"PROXY ") && !data.starts_with(b"\r\n\r\n\0\r\nQUIT\n"));
        }
        ProxyHeader::Incomplete | ProxyHeader::Invalid(_) => {}
    }
});
