//! Shared test support: the reference server from the test venv, and a test
//! client that drives libveltix through its C ABI.
#![allow(dead_code)]

pub mod capi;
pub mod fake_server;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

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

/// The reference veltix 3.3.0 server (tests/support/ref_server.py) in a
/// child process; killed on drop.
pub struct RefServer {
    child: Option<Child>,
    pub port: u16,
}

impl RefServer {
    /// Starts a server on a free port.
    pub fn start() -> RefServer {
        RefServer::start_on(free_port(), &[])
    }

    /// Starts a server on `port` with extra arguments.
    pub fn start_on(port: u16, args: &[&str]) -> RefServer {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/ref_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg("--port")
            .arg(port.to_string())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the reference server");
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

    /// Kills the server (an abrupt close of every connection).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RefServer {
    fn drop(&mut self) {
        self.kill();
    }
}
