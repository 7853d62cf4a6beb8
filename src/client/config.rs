//! Client configuration and its validation.

use std::time::Duration;

use crate::config_checks::{check_reply_spin, check_shared_fields};
use crate::error::{Error, Result};
use crate::liveness::Liveness;
use crate::protocol::frame::DEFAULT_MAX_MESSAGE_SIZE;
use crate::reply_spin::DEFAULT_REPLY_SPIN;

use crate::backlog::BacklogLimits;
use crate::config_checks::backlog_limits;
pub use crate::config_checks::{
    DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_MESSAGES, MAX_BUFFER_SIZE, MAX_WORKERS,
};

/// Default bound of one blocking write (10 s).
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// Bound of one blocking write to a server that does not read; a write
    /// that runs out of it closes the connection.
    pub send_timeout: Duration,
    /// Received messages waiting for (or in) callbacks past which the
    /// reader stops reading.
    pub max_queued_messages: u32,
    /// Their payload bytes past which the reader stops reading.
    pub max_queued_bytes: u32,
    /// Heartbeats and TCP keepalive (off by default).
    pub liveness: Liveness,
    /// Exponential backoff: the delay doubles from `retry_delay` after each
    /// failed attempt, up to this; `None` keeps the reference's fixed delay.
    pub retry_delay_max: Option<Duration>,
    /// Full jitter: each delay is drawn uniformly from zero to its value,
    /// so many clients do not come back at the same moment.
    pub retry_jitter: bool,
    /// How long a thread blocked in `send_and_wait` or `ping` spins for
    /// its reply before it sleeps, when it cannot read the reply itself;
    /// zero never spins. Only while a core is idle (on Linux).
    pub reply_spin: Duration,
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
            send_timeout: DEFAULT_SEND_TIMEOUT,
            max_queued_messages: DEFAULT_MAX_QUEUED_MESSAGES,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            liveness: Liveness::default(),
            retry_delay_max: None,
            retry_jitter: false,
            reply_spin: DEFAULT_REPLY_SPIN,
        }
    }
}

impl ClientConfig {
    /// How the waits between reconnection attempts grow.
    pub(crate) fn retry_policy(&self) -> crate::backoff::RetryPolicy {
        crate::backoff::RetryPolicy {
            base: self.retry_delay,
            max: self.retry_delay_max,
            jitter: self.retry_jitter,
        }
    }

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
        if self.send_timeout.is_zero() {
            return invalid(format!("config.send_timeout_ms is 0. Fix: use a positive number of milliseconds (the default is {})", DEFAULT_SEND_TIMEOUT.as_millis()));
        }
        check_shared_fields(
            self.buffer_size,
            self.max_message_size,
            self.handshake_timeout,
            self.max_workers,
        )?;
        if self
            .retry_delay_max
            .is_some_and(|max| max < self.retry_delay)
        {
            return invalid(format!(
                "config.retry_delay_max_ms is under retry_delay_ms ({} ms). Fix: use a maximum at least retry_delay_ms, or 0 for the fixed delay",
                self.retry_delay.as_millis()
            ));
        }
        self.liveness.validate()?;
        check_reply_spin(self.reply_spin)?;
        self.backlog_limits().map(|_| ())
    }

    /// The bounds of the connection's callback backlog (checked).
    pub(crate) fn backlog_limits(&self) -> Result<BacklogLimits> {
        backlog_limits(self.max_queued_messages, self.max_queued_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_fields_are_named() {
        assert_eq!(ClientConfig::default().validate(), Ok(()));
        type Breaker = fn(&mut ClientConfig);
        let cases: [(&str, Breaker); 9] = [
            ("config.reply_spin_us", |c| {
                c.reply_spin = Duration::from_micros(1001)
            }),
            ("config.send_timeout_ms", |c| {
                c.send_timeout = Duration::ZERO
            }),
            ("config.max_queued_messages", |c| c.max_queued_messages = 0),
            ("config.max_queued_bytes", |c| c.max_queued_bytes = 0),
            ("config.port", |c| c.port = 0),
            ("config.buffer_size", |c| c.buffer_size = 0),
            ("config.max_message_size", |c| c.max_message_size = 14),
            ("config.max_workers", |c| c.max_workers = 257),
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
