//! Cluster test support: a real `redis-server` on a free port in a
//! temporary folder, and libveltix cluster nodes as separate processes
//! (this test binary run again as `node_process`, driven on stdin).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::restartable_port;

/// A Redis server of this test; killed (and its folder removed) on drop.
pub struct RedisServer {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    /// Debian's `redis-server` on a free port, without persistence.
    pub fn start() -> RedisServer {
        let port = restartable_port();
        let dir = std::env::temp_dir().join(format!("veltix-redis-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = RedisServer {
            port,
            dir,
            child: None,
        };
        redis.restart();
        redis
    }

    /// The bus address nodes use.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id (to read its CPU time, or stop it).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Kills the server (as a crash would: no goodbye to its clients).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, once it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--protected-mode", "no", "--loglevel", "warning"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("start redis-server (scripts/test.sh installs Debian's redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers_ping() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers_ping(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cluster node in its own process: lines it prints as `EVENT ...` come
/// through `next_event`, the `ANSWER ...` to each command through
/// `command`.
pub struct NodeProcess {
    pub port: u16,
    pub node_id: u16,
    child: Child,
    stdin: Mutex<ChildStdin>,
    answers: Receiver<String>,
    events: Receiver<String>,
}

impl NodeProcess {
    /// Runs `test_name` of this test binary as a node of cluster `name`
    /// on `bus`, with node id `node_id`; waits until it listens.
    /// Under an emulator, `VELTIX_TEST_RUNNER` (such as `qemu-aarch64 -L
    /// /usr/aarch64-linux-gnu`, set by `scripts/cross.sh`) runs it, as
    /// cargo's runner runs the tests themselves.
    pub fn start(test_name: &str, bus: &str, name: &str, node_id: u16) -> NodeProcess {
        let runner = std::env::var("VELTIX_TEST_RUNNER").unwrap_or_default();
        let mut command: Vec<String> = runner.split_whitespace().map(str::to_owned).collect();
        command.push(std::env::current_exe().unwrap().display().to_string());
        let mut child = Command::new(&command[0])
            .args(&command[1..])
            .args([test_name, "--exact", "--nocapture", "--test-threads", "1"])
            .env("VELTIX_TEST_NODE", format!("{bus} {name} {node_id}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run this test binary as a node");
        let stdin = Mutex::new(child.stdin.take().unwrap());
        let stdout = child.stdout.take().unwrap();
        let (answers_tx, answers) = channel();
        let (events_tx, events) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // The test harness starts the first line with the test's
                // name.
                if let Some((_, answer)) = line.split_once("ANSWER ") {
                    let _ = answers_tx.send(answer.to_owned());
                } else if let Some((_, event)) = line.split_once("EVENT ") {
                    let _ = events_tx.send(event.to_owned());
                }
            }
        });
        let mut node = NodeProcess {
            port: 0,
            node_id,
            child,
            stdin,
            answers,
            events,
        };
        let ready = node.next_event_matching("ready", Duration::from_secs(30));
        let fields: Vec<&str> = ready.split(' ').collect();
        node.port = fields[1].parse().unwrap();
        node.node_id = fields[2].parse().unwrap();
        node
    }

    /// The process id (to stop it with SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs one command line; its answer.
    pub fn command(&self, line: &str) -> String {
        let mut stdin = self.stdin.lock().unwrap();
        writeln!(stdin, "{line}").expect("write to the node");
        stdin.flush().unwrap();
        self.answers
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("node {}: no answer to {line} within 15 s", self.node_id))
    }

    /// The next event starting with `word`, skipping others.
    pub fn next_event_matching(&self, word: &str, timeout: Duration) -> String {
        self.try_next_event_matching(word, timeout)
            .unwrap_or_else(|| panic!("node {}: no {word} event within {timeout:?}", self.node_id))
    }

    /// As `next_event_matching`, `None` on timeout.
    pub fn try_next_event_matching(&self, word: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let event = self.events.recv_timeout(left).ok()?;
            if event.split(' ').next() == Some(word) {
                return Some(event);
            }
        }
    }

    /// The id of the next client to connect (a `connect` event).
    pub fn next_connect(&self) -> u64 {
        let event = self.next_event_matching("connect", Duration::from_secs(10));
        event.split(' ').nth(1).unwrap().parse().unwrap()
    }

    /// Kills the node.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        // A stopped node must be continued to die promptly.
        signal(self.child.id(), libc::SIGCONT);
        self.kill();
    }
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: u32, signal: i32) {
    unsafe { libc::kill(pid as i32, signal) };
}
