//! A connect or retry operation in progress, and its cancellation.

use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::connection::{self, Established};
use super::ClientConfig;
use crate::error::{Error, Result};

/// One connect or retry operation; cancelled by `stop_retry` (which lets it
/// report its end) or quietly by `disconnect` and `free`.
#[derive(Default)]
pub(super) struct Attempt {
    cancelled: AtomicBool,
    quiet: AtomicBool,
    /// The socket of a handshake in progress, shut down on cancel so the
    /// cancel takes effect at once instead of at the handshake timeout.
    handshaking: Mutex<Option<TcpStream>>,
}

impl Attempt {
    /// Cancels the operation; a `quiet` one reports nothing more through
    /// `on_disconnect` (the canceller reports instead).
    pub fn cancel(&self, quiet: bool) {
        if quiet {
            self.quiet.store(true, Ordering::Release);
        }
        self.cancelled.store(true, Ordering::Release);
        if let Some(socket) = &*self.handshaking.lock().unwrap_or_else(|e| e.into_inner()) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    /// Connects and handshakes for this attempt, cancellable throughout.
    pub fn establish(&self, config: &ClientConfig) -> Result<Established> {
        let result = connection::establish(config, |socket| {
            let mut handshaking = self.handshaking.lock().unwrap_or_else(|e| e.into_inner());
            *handshaking = socket.try_clone().ok();
            if self.is_cancelled() {
                let _ = socket.shutdown(Shutdown::Both);
            }
        });
        self.handshaking
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        match result {
            Err(_) if self.is_cancelled() => Err(cancelled()),
            other => other,
        }
    }

    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Whether the operation must not report its end.
    pub fn is_quiet(&self) -> bool {
        self.quiet.load(Ordering::Acquire)
    }
}

/// The error of an operation cancelled by `stop_retry`, `disconnect` or `free`.
pub(super) fn cancelled() -> Error {
    Error::Closed("the connection attempt was cancelled (stop_retry, disconnect or free)".into())
}
