//! Process-wide logging: silent by default, a user sink via
//! [`set_logger`], or stderr when the `VELTIX_LOG` environment variable is
//! `error`, `warn`, `info` or `debug` and no sink is set.

use std::fmt;
use std::sync::{Arc, OnceLock, RwLock};

/// Severity of a log line; a sink receives lines up to its maximum level.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Something failed.
    Error = 0,
    /// Something was dropped or retried.
    Warn = 1,
    /// Connection lifecycle.
    Info = 2,
    /// Details for debugging.
    Debug = 3,
}

impl LogLevel {
    /// The level for an integer received from C, or `None` if out of range.
    pub fn from_i32(value: i32) -> Option<Self> {
        [Self::Error, Self::Warn, Self::Info, Self::Debug]
            .into_iter()
            .find(|level| *level as i32 == value)
    }

    fn name(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

/// A log sink. It is called on whatever thread logs, with no library lock
/// held.
pub type LogSink = Arc<dyn Fn(LogLevel, &str) + Send + Sync>;

#[derive(Clone)]
struct Logger {
    sink: LogSink,
    max_level: LogLevel,
}

static LOGGER: RwLock<Option<Logger>> = RwLock::new(None);
static ENV_LEVEL: OnceLock<Option<LogLevel>> = OnceLock::new();

/// Installs `sink` for lines up to `max_level`; `None` restores the default
/// (silent, or stderr per `VELTIX_LOG`).
pub fn set_logger(sink: Option<LogSink>, max_level: LogLevel) {
    let logger = sink.map(|sink| Logger { sink, max_level });
    *LOGGER.write().unwrap_or_else(|e| e.into_inner()) = logger;
}

/// Logs one line. Formatting happens only if someone listens.
pub(crate) fn log(level: LogLevel, args: fmt::Arguments<'_>) {
    let logger = LOGGER.read().unwrap_or_else(|e| e.into_inner()).clone();
    match logger {
        Some(logger) if level <= logger.max_level => (logger.sink)(level, &args.to_string()),
        Some(_) => {}
        None => {
            if env_level().is_some_and(|max| level <= max) {
                // One write for the whole line: eprintln! writes it in
                // pieces, which a program's own output (or Wine's
                // console) can split.
                let line = format!("[veltix {}] {}\n", level.name(), args);
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            }
        }
    }
}

fn env_level() -> Option<LogLevel> {
    *ENV_LEVEL.get_or_init(|| {
        let value = std::env::var("VELTIX_LOG").ok()?;
        [
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
        ]
        .into_iter()
        .find(|level| level.name().eq_ignore_ascii_case(value.trim()))
    })
}

macro_rules! log_at {
    ($level:ident, $($arg:tt)*) => {
        $crate::log::log($crate::log::LogLevel::$level, format_args!($($arg)*))
    };
}
pub(crate) use log_at;
