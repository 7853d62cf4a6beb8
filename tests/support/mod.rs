//! Shared test support: the reference server from the test venv, and a test
//! client that drives libveltix through its C ABI.
#![allow(dead_code)]

pub mod capi;
#[cfg(target_os = "linux")]
pub mod cluster;
pub mod fake_server;
pub mod hostile;
#[cfg(target_os = "linux")]
pub mod measure;
pub mod server_capi;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The I/O threads of the servers the tests start: `$VELTIX_TEST_IO_THREADS`
/// (`scripts/test.sh` runs the server suites again with 4), else 1.
pub fn io_threads() -> u32 {
    match std::env::var("VELTIX_TEST_IO_THREADS") {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("VELTIX_TEST_IO_THREADS={value:?} is not a number")),
        Err(_) => 1,
    }
}

/// Routes `type_code` on `server` to a reply of the same type and payload.
pub fn route_echo(server: &veltix::server::Server, type_code: u16) {
    let echo = move |server: &veltix::server::Server, peer, message: &veltix::protocol::Message| {
        let _ = server.reply(peer, message, type_code, message.payload());
    };
    server.route(type_code, std::sync::Arc::new(echo)).unwrap();
}

/// Routes `type_code` on `server` to a broadcast of the payload to every
/// peer, as type `to`.
pub fn route_broadcast(server: &veltix::server::Server, type_code: u16, to: u16) {
    let broadcast =
        move |server: &veltix::server::Server, _, message: &veltix::protocol::Message| {
            server.broadcast(to, message.payload(), &[]).unwrap();
        };
    server
        .route(type_code, std::sync::Arc::new(broadcast))
        .unwrap();
}

/// The Python interpreter of the test venv holding `veltix==3.3.0`:
/// `$VELTIX_TEST_PYTHON`, else `.venv/bin/python` (created by
/// `scripts/test.sh`). Missing is a test failure, never a skip.
pub fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("VELTIX_TEST_PYTHON") {
        return PathBuf::from(path);
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        venv.exists(),
        "no test venv at {}: run scripts/test.sh (it installs veltix==3.3.0)",
        venv.display()
    );
    venv
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A free port below the kernel's ephemeral range (32768 and up), for a
/// server that must get the same port back after a restart: a port from
/// `free_port` could meanwhile become the local port of some outgoing
/// connection, which makes the second bind fail.
pub fn restartable_port() -> u16 {
    // Tests of one binary run in parallel: each call starts elsewhere.
    static CALLS: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let seed = (std::process::id() as u16)
        .wrapping_mul(7)
        .wrapping_add(call * 101);
    (0..2000u16)
        .map(|i| 20000 + seed.wrapping_add(i * 13) % 12000)
        .find(|port| TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("no free port in 20000..32000")
}

/// A reference script running, with its stdin and stdout.
pub struct Script {
    process: Process,
    pub stdin: Option<Box<dyn Write + Send>>,
    pub stdout: Option<Box<dyn Read + Send>>,
}

enum Process {
    /// A child process of the test.
    Child(Child),
    /// Run by tests/support/launcher.py on the Linux side of a Wine run
    /// (a Windows program there cannot pipe to a Linux one): the
    /// connection is its stdin and stdout, and closing it kills it.
    Launched(TcpStream),
    Gone,
}

/// Runs `tests/support/<script> --port <port> <args>` with the venv's
/// Python, stdin and stdout piped; through the launcher at
/// `$VELTIX_TEST_LAUNCHER` when that is set.
fn spawn_script(script: &str, port: u16, args: &[&str]) -> Script {
    let mut all_args = vec!["--port".to_string(), port.to_string()];
    all_args.extend(args.iter().map(|arg| arg.to_string()));
    if let Ok(launcher) = std::env::var("VELTIX_TEST_LAUNCHER") {
        let mut link = TcpStream::connect(&launcher)
            .unwrap_or_else(|e| panic!("reach the launcher at {launcher}: {e}"));
        let request = serde_json::json!({"script": script, "args": all_args});
        writeln!(link, "{request}").expect("write to the launcher");
        return Script {
            stdin: Some(Box::new(link.try_clone().unwrap())),
            stdout: Some(Box::new(link.try_clone().unwrap())),
            process: Process::Launched(link),
        };
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/support")
        .join(script);
    let mut child = Command::new(python())
        .arg(path)
        .args(all_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {script}: {e}"));
    Script {
        stdin: Some(Box::new(child.stdin.take().unwrap())),
        stdout: Some(Box::new(child.stdout.take().unwrap())),
        process: Process::Child(child),
    }
}

impl Script {
    /// The process id (to stop it with SIGSTOP); only for a child.
    pub fn pid(&self) -> u32 {
        match &self.process {
            Process::Child(child) => child.id(),
            _ => panic!("the script is not a child of this process"),
        }
    }

    /// Kills the script and waits until it is gone (10 s at most for a
    /// launched one).
    pub fn kill(&mut self) {
        match std::mem::replace(&mut self.process, Process::Gone) {
            Process::Child(mut child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Process::Launched(mut link) => {
                // The launcher kills it, then closes the connection.
                let _ = link.shutdown(std::net::Shutdown::Write);
                let _ = link.set_read_timeout(Some(Duration::from_secs(10)));
                let mut rest = [0u8; 4096];
                while matches!(link.read(&mut rest), Ok(n) if n > 0) {}
            }
            Process::Gone => {}
        }
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Extra time timing assertions allow: `VELTIX_TEST_TIME_SLACK_MS` (the
/// sanitizer passes set it; their code runs several times slower), else 0.
pub fn time_slack() -> Duration {
    let ms = std::env::var("VELTIX_TEST_TIME_SLACK_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Duration::from_millis(ms)
}

/// How many clients a test of "a thousand clients" runs: 1,000, or
/// `VELTIX_TEST_MANY_CLIENTS` where threads cost far more (the sanitizer
/// passes, Wine).
pub fn many_clients() -> usize {
    std::env::var("VELTIX_TEST_MANY_CLIENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// How many times slower than a normal build CPU-bound code runs here:
/// `VELTIX_TEST_CPU_SLOWDOWN` (the sanitizer passes set it), else 1. CPU
/// budgets in tests are multiplied by it; the normal pass checks the real
/// bound.
pub fn cpu_slowdown() -> f64 {
    std::env::var("VELTIX_TEST_CPU_SLOWDOWN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0)
}

/// The reference veltix 3.3.0 server (tests/support/ref_server.py) in a
/// child process; killed on drop.
pub struct RefServer {
    child: Option<Script>,
    pub port: u16,
}

impl RefServer {
    /// Starts a server on a free port it can get back after a restart.
    pub fn start() -> RefServer {
        RefServer::start_on(restartable_port(), &[])
    }

    /// Starts a server on `port` with extra arguments.
    pub fn start_on(port: u16, args: &[&str]) -> RefServer {
        let mut child = spawn_script("ref_server.py", port, args);
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // The server logs to stdout too; wait for our READY line.
            let mut lines = BufReader::new(stdout).lines().map_while(Result::ok);
            let ready = lines.by_ref().find(|l| l.starts_with("READY"));
            let _ = tx.send(ready.unwrap_or_default());
            for _ in lines {}
        });
        let ready = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the reference server did not start within 30 s");
        assert_eq!(ready, format!("READY {port}"), "reference server output");
        RefServer {
            child: Some(child),
            port,
        }
    }

    /// The server process's id (to stop it with SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").pid()
    }

    /// Kills the server (an abrupt close of every connection).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill();
        }
    }
}

impl Drop for RefServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The reference veltix 3.3.0 client (tests/support/ref_client.py) in a
/// child process, driven by JSON commands; killed on drop.
pub struct RefClient {
    child: Script,
    stdin: std::sync::Mutex<Box<dyn Write + Send>>,
    answers: std::sync::mpsc::Receiver<serde_json::Value>,
    events: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl RefClient {
    /// Starts a Python client for `port` with extra arguments (not yet
    /// connected).
    pub fn start(port: u16, args: &[&str]) -> RefClient {
        let mut child = spawn_script("ref_client.py", port, args);
        let stdin = std::sync::Mutex::new(child.stdin.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (answers_tx, answers) = std::sync::mpsc::channel();
        let (events_tx, events) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The reference logs to stdout too: keep only our JSON lines.
                let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                    continue;
                };
                let channel = if value.get("op").is_some() {
                    &answers_tx
                } else {
                    &events_tx
                };
                let _ = channel.send(value);
            }
        });
        RefClient {
            child,
            stdin,
            answers,
            events,
        }
    }

    /// Starts a Python client and connects it; panics unless it connects.
    pub fn connected(port: u16) -> RefClient {
        let client = RefClient::start(port, &[]);
        assert_eq!(
            client.command(serde_json::json!({"op": "connect"}))["ok"],
            true
        );
        assert_eq!(client.next_event()["event"], "connect");
        client
    }

    /// The client process's id (to stop it with SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.pid()
    }

    /// Runs one command and returns its answer.
    pub fn command(&self, command: serde_json::Value) -> serde_json::Value {
        let mut stdin = self.stdin.lock().unwrap();
        writeln!(stdin, "{command}").expect("write to the reference client");
        stdin.flush().unwrap();
        self.answers
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("no answer to {command} within 15 s"))
    }

    /// The next callback event.
    pub fn next_event(&self) -> serde_json::Value {
        self.next_event_within(Duration::from_secs(10))
            .expect("no event from the reference client within 10 s")
    }

    pub fn next_event_within(&self, timeout: Duration) -> Option<serde_json::Value> {
        self.events.recv_timeout(timeout).ok()
    }
}
