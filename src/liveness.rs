//! Liveness, shared by the client and the server: application heartbeats
//! (PING after a silence, a connection declared dead after a longer one)
//! and TCP keepalive. Off by default, as in the reference, which has
//! neither.

use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// The shortest heartbeat interval or timeout accepted.
pub const MIN_HEARTBEAT: Duration = Duration::from_millis(10);

/// Application heartbeats: PINGs on idle connections, and dead ones closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Heartbeat {
    /// After this long with nothing received, send a PING (then one per
    /// interval while the silence lasts); `None`: never.
    pub interval: Option<Duration>,
    /// After this long with nothing received at all, the connection is
    /// dead: it is closed with reason ERROR; `None`: never.
    pub timeout: Option<Duration>,
}

/// TCP keepalive probes (`SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`,
/// `TCP_KEEPCNT`), for links where an application PING is unwelcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Idle time before the first probe (whole seconds, at least 1).
    pub idle: Duration,
    /// Time between probes (whole seconds, at least 1).
    pub interval: Duration,
    /// Unanswered probes before the kernel drops the connection.
    pub count: u32,
}

/// The liveness settings of a client or a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Liveness {
    /// Application heartbeats.
    pub heartbeat: Heartbeat,
    /// TCP keepalive; `None`: off (the system default).
    pub tcp_keepalive: Option<TcpKeepalive>,
}

/// Milliseconds from C: 0 is off.
pub(crate) fn optional_ms(ms: u32) -> Option<Duration> {
    (ms != 0).then(|| Duration::from_millis(ms.into()))
}

impl Liveness {
    /// Names the first bad field and the fix.
    pub(crate) fn validate(&self) -> Result<()> {
        let invalid = |message: String| Err(Error::InvalidArgument(message));
        let Heartbeat { interval, timeout } = self.heartbeat;
        for (name, value) in [("interval", interval), ("timeout", timeout)] {
            if value.is_some_and(|v| v < MIN_HEARTBEAT) {
                return invalid(format!(
                    "config.heartbeat_{name}_ms is under {} ms. Fix: use at least {}, or 0 to turn it off",
                    MIN_HEARTBEAT.as_millis(),
                    MIN_HEARTBEAT.as_millis()
                ));
            }
        }
        if let (Some(interval), Some(timeout)) = (interval, timeout) {
            if timeout <= interval {
                return invalid(format!(
                    "config.heartbeat_timeout_ms ({}) is not above heartbeat_interval_ms ({}): a connection would be declared dead before its PING could be answered. Fix: use a timeout of a few intervals",
                    timeout.as_millis(),
                    interval.as_millis()
                ));
            }
        }
        if let Some(keepalive) = self.tcp_keepalive {
            if keepalive.interval.is_zero() || keepalive.count == 0 {
                return invalid("config.keepalive_interval_s and config.keepalive_count must be at least 1 when keepalive_idle_s is set. Fix: e.g. idle 60, interval 10, count 6".into());
            }
            for (name, value) in [("idle", keepalive.idle), ("interval", keepalive.interval)] {
                if value.as_secs() > i32::MAX as u64 {
                    return invalid(format!(
                        "config.keepalive_{name}_s is too large. Fix: use at most {}",
                        i32::MAX
                    ));
                }
            }
            if keepalive.count > i32::MAX as u32 {
                return invalid(format!(
                    "config.keepalive_count is too large. Fix: use at most {}",
                    i32::MAX
                ));
            }
        }
        Ok(())
    }

    /// Sets TCP keepalive on `socket` as configured (nothing if off).
    pub(crate) fn apply_keepalive(
        &self,
        socket: &impl crate::sys::AsSocket,
    ) -> std::io::Result<()> {
        match self.tcp_keepalive {
            Some(keepalive) => crate::sys::set_keepalive(
                socket,
                keepalive.idle,
                keepalive.interval,
                keepalive.count,
            ),
            None => Ok(()),
        }
    }
}

/// How often a reader blocked in `read` wakes up to look at the
/// heartbeat: a quarter of the shorter setting (at least 5 ms), so
/// detection is late by at most that; `None` when heartbeats are off.
pub(crate) fn heartbeat_tick(heartbeat: &Heartbeat) -> Option<Duration> {
    let shortest = match (heartbeat.interval, heartbeat.timeout) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return None,
    };
    Some((shortest / 4).max(Duration::from_millis(5)))
}

/// The error a connection closed by its heartbeat reports.
pub(crate) fn dead_connection(silence: Duration) -> Error {
    Error::Timeout(format!(
        "nothing arrived for {} ms (heartbeat_timeout_ms): the peer is gone or unreachable, and the connection was closed. Fix: check the network, or raise heartbeat_timeout_ms",
        silence.as_millis()
    ))
}

/// What a connection's heartbeat asks for now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HeartbeatDue {
    /// Nothing has arrived for `heartbeat.timeout`: the connection is dead.
    Dead(Duration),
    /// Send a PING now (then call [`HeartbeatClock::pinged`]).
    Ping,
    /// Nothing to do until this instant.
    Until(Instant),
    /// Heartbeats are off.
    Never,
}

/// One connection's heartbeat: when something last arrived and when the
/// last PING went out. The client's reader and the server's I/O thread
/// each keep one per connection and ask it what is due.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeartbeatClock {
    last_received: Instant,
    last_ping: Option<Instant>,
}

impl HeartbeatClock {
    /// A clock for a connection established at `now`.
    pub fn new(now: Instant) -> Self {
        HeartbeatClock {
            last_received: now,
            last_ping: None,
        }
    }

    /// Something arrived: the connection is alive.
    pub fn received(&mut self, now: Instant) {
        self.last_received = now;
    }

    /// A PING was sent.
    pub fn pinged(&mut self, now: Instant) {
        self.last_ping = Some(now);
    }

    /// When something last arrived.
    pub fn last_received(&self) -> Instant {
        self.last_received
    }

    /// What is due at `now` under `heartbeat`.
    pub fn due(&self, heartbeat: &Heartbeat, now: Instant) -> HeartbeatDue {
        let silence = now.saturating_duration_since(self.last_received);
        if let Some(timeout) = heartbeat.timeout {
            if silence >= timeout {
                return HeartbeatDue::Dead(silence);
            }
        }
        let next_ping = heartbeat.interval.map(|interval| {
            // One PING per interval of silence: counted from the later of
            // the last arrival and the last PING.
            let basis = match self.last_ping {
                Some(ping) if ping > self.last_received => ping,
                _ => self.last_received,
            };
            basis + interval
        });
        if next_ping.is_some_and(|at| now >= at) {
            return HeartbeatDue::Ping;
        }
        let death = heartbeat
            .timeout
            .map(|timeout| self.last_received + timeout);
        match (next_ping, death) {
            (Some(a), Some(b)) => HeartbeatDue::Until(a.min(b)),
            (Some(at), None) | (None, Some(at)) => HeartbeatDue::Until(at),
            (None, None) => HeartbeatDue::Never,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn heartbeat(interval: u64, timeout: u64) -> Heartbeat {
        Heartbeat {
            interval: (interval > 0).then(|| MS * interval as u32),
            timeout: (timeout > 0).then(|| MS * timeout as u32),
        }
    }

    #[test]
    fn a_silent_connection_is_pinged_each_interval_then_declared_dead() {
        let start = Instant::now();
        let beat = heartbeat(100, 350);
        let mut clock = HeartbeatClock::new(start);
        assert_eq!(
            clock.due(&beat, start),
            HeartbeatDue::Until(start + MS * 100)
        );
        assert_eq!(clock.due(&beat, start + MS * 100), HeartbeatDue::Ping);
        clock.pinged(start + MS * 100);
        assert_eq!(
            clock.due(&beat, start + MS * 150),
            HeartbeatDue::Until(start + MS * 200)
        );
        assert_eq!(clock.due(&beat, start + MS * 200), HeartbeatDue::Ping);
        clock.pinged(start + MS * 200);
        clock.pinged(start + MS * 300);
        assert_eq!(
            clock.due(&beat, start + MS * 320),
            HeartbeatDue::Until(start + MS * 350),
            "the death deadline comes before the next PING"
        );
        assert_eq!(
            clock.due(&beat, start + MS * 350),
            HeartbeatDue::Dead(MS * 350)
        );
    }

    #[test]
    fn anything_received_counts_as_life_and_defers_the_ping() {
        let start = Instant::now();
        let beat = heartbeat(100, 350);
        let mut clock = HeartbeatClock::new(start);
        clock.received(start + MS * 90);
        assert_eq!(
            clock.due(&beat, start + MS * 100),
            HeartbeatDue::Until(start + MS * 190)
        );
        clock.received(start + MS * 300);
        assert_eq!(
            clock.due(&beat, start + MS * 380),
            HeartbeatDue::Until(start + MS * 400)
        );
    }

    #[test]
    fn each_half_works_alone_and_off_is_never() {
        let start = Instant::now();
        let clock = HeartbeatClock::new(start);
        assert_eq!(clock.due(&heartbeat(0, 0), start), HeartbeatDue::Never);
        assert_eq!(
            clock.due(&heartbeat(0, 200), start + MS * 10),
            HeartbeatDue::Until(start + MS * 200)
        );
        assert_eq!(
            clock.due(&heartbeat(0, 200), start + MS * 200),
            HeartbeatDue::Dead(MS * 200)
        );
        assert_eq!(
            clock.due(&heartbeat(50, 0), start + MS * 60),
            HeartbeatDue::Ping
        );
    }

    #[test]
    fn settings_are_checked() {
        let bad = |liveness: Liveness| liveness.validate().unwrap_err().to_string();
        let ms = |n: u64| (n > 0).then(|| Duration::from_millis(n));
        let with = |interval: u64, timeout: u64| Liveness {
            heartbeat: Heartbeat {
                interval: ms(interval),
                timeout: ms(timeout),
            },
            tcp_keepalive: None,
        };
        let keepalive = |interval: u64| Liveness {
            tcp_keepalive: Some(TcpKeepalive {
                idle: Duration::from_secs(60),
                interval: Duration::from_secs(interval),
                count: 3,
            }),
            ..Liveness::default()
        };
        assert!(bad(with(5, 0)).contains("heartbeat_interval_ms"));
        assert!(bad(with(100, 100)).contains("heartbeat_timeout_ms"));
        assert!(with(100, 300).validate().is_ok());
        assert!(bad(keepalive(0)).contains("keepalive"));
        assert!(keepalive(10).validate().is_ok());
    }
}
