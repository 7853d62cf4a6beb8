//! The reconnection loop, shared by `connect` (with `retry > 0`), a lost
//! connection and `retry()`. It follows the reference's sequence: one
//! non-permanent `on_disconnect` per failed attempt, then a permanent one
//! when it gives up or is stopped; `on_connect` again on success.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::backoff::retry_delay;

use super::{Attempt, Client, DisconnectReason, DisconnectState};
use crate::error::{Error, Result};
use crate::log::log_at;

impl Client {
    /// Runs up to `max` attempts, the first at once and the next after
    /// [`retry_delay`] (fixed, or backing off, with optional jitter), for
    /// the operation
    /// `attempt` (already registered). Returns once connected, or with the
    /// last error.
    /// the operation `attempt` (already registered), waiting `first_delay`
    /// before the first. Returns once connected, or with the last error.
    pub(super) fn retry_loop(
        &self,
        attempt: &Arc<Attempt>,
        max: u32,
        reason: DisconnectReason,
        mut last_error: Error,
        first_delay: Duration,
    ) -> Result<()> {
        let mut tried = 0;
        let mut delay = first_delay;
        while !attempt.is_cancelled() && tried < max {
            if !delay.is_zero() && self.sleep_unless_cancelled(attempt, delay) {
                break;
            }
            tried += 1;
            log_at!(Info, "reconnection attempt {tried}/{max}");
            let result = attempt
                .establish(&self.inner.config)
                .and_then(|established| self.install(established, attempt));
            match result {
                Ok(()) => return Ok(()),
                Err(error) => {
                    log_at!(Warn, "reconnection attempt {tried}/{max} failed: {error}");
                    last_error = error;
                }
            }
            if attempt.is_cancelled() {
                break;
            }
            let next = (tried < max).then(|| self.delay_before_attempt(tried + 1));
            self.emit_disconnect(DisconnectState {
                permanent: false,
                attempt: tried,
                retry_max: max,
                reason,
                error: Some(last_error.clone()),
                next_delay: next,
            });
            delay = next.unwrap_or_default();
        }
        let report = self.undelivered();
        self.end_attempt(attempt);
        if !attempt.is_quiet() {
            log_at!(Error, "gave up reconnecting after {tried} attempt(s). Fix: check that the server is reachable, then call veltix_client_retry()");
            self.report_disconnect(
                report,
                DisconnectState {
                    permanent: true,
                    attempt: tried,
                    retry_max: max,
                    reason,
                    error: Some(last_error.clone()),
                    next_delay: None,
                },
            );
        }
        Err(last_error)
    }

    /// The wait before reconnection attempt `n` (see [`retry_delay`]).
    pub(super) fn delay_before_attempt(&self, n: u32) -> Duration {
        retry_delay(
            &self.inner.config.retry_policy(),
            n,
            self.inner.jitter.next(),
        )
    }

    /// Waits `delay`; true if the attempt was cancelled meanwhile.
    fn sleep_unless_cancelled(&self, attempt: &Attempt, delay: Duration) -> bool {
        let deadline = Instant::now() + delay;
        let mut state = self.state();
        loop {
            if attempt.is_cancelled() {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            state = self
                .inner
                .state_changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}
