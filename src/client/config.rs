//! Client configuration and its validation.

use std::time::Duration;

use crate::config_checks::check_shared_fields;
use crate::error::{Error, Result};
use crate::protocol::frame::DEFAULT_MAX_MESSAGE_SIZE;

pub use crate::config_checks::{MAX_BUFFER_SIZE, MAX_WORKERS};

/// How a client connects and behaves. Field meanings follow the reference's
/// `ClientConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// Host name or IPv4/IPv6 literal of the server.
    pub server_addr: String,
    /// Server port.
    pub port: u16,
    /// Bytes asked of the socket per receive call.
    pub buffer_size: u32,
    /// Largest frame (header plus payload) sent or accepted.
    pub max_message_size: u32,
    /// Bound on TCP connect plus the whole handshake.
    pub handshake_timeout: Duration,
    /// Callback threads; 1 runs callbacks in arrival order.
    pub max_workers: u32,
    /// Reconnection attempts after a failure or a lost connection; 0 = off.
    pub retry: u32,
    /// Pause between reconnection attempts.
    pub retry_delay: Duration,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            server_addr: "127.0.0.1".into(),
            port: 8080,
            buffer_size: 8192,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            handshake_timeout: Duration::from_millis(5000),
            max_workers: 4,
            retry: 0,
            retry_delay: Duration::from_millis(1000),
        }
    }
}

impl ClientConfig {
    /// Checks every field, naming the first bad one and the fix.
    pub fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidArgument(message));
        if self.server_addr.trim().is_empty() {
            return invalid("config.server_addr is empty. Fix: set a host name or IP address, e.g. \"127.0.0.1\"".into());
        }
        if self.port == 0 {
            return invalid(
                "config.port is 0. Fix: set the server's port (1-65535; the default is 8080)"
                    .into(),
            );
        }
        check_shared_fields(
            self.buffer_size,
            self.max_message_size,
            self.handshake_timeout,
            self.max_workers,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_fields_are_named() {
        assert_eq!(ClientConfig::default().validate(), Ok(()));
        type Breaker = fn(&mut ClientConfig);
        let cases: [(&str, Breaker); 5] = [
            ("config.port", |c| c.port = 0),
            ("config.buffer_size", |c| c.buffer_size = 0),
            ("config.max_message_size", |c| c.max_message_size = 14),
            ("config.max_workers", |c| c.max_workers = 0),
            ("config.server_addr", |c| c.server_addr = " ".into()),
        ];
        for (field, break_it) in cases {
            let mut config = ClientConfig::default();
            break_it(&mut config);
            match config.validate() {
                Err(Error::InvalidArgument(message)) => {
                    assert!(message.starts_with(field), "{message}");
                    assert!(message.contains("Fix:"), "{message}");
                }
                other => panic!("{field}: {other:?}"),
            }
        }
    }
}
