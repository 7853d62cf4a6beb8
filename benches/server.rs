//! Server benchmark: `cargo bench --bench server [-- FILTER]`.
//!
//! The workloads of issue 11, each against three servers in the same run,
//! every server in its own process (so each one's CPU can be read):
//! - libveltix's server, echoing from a route callback and broadcasting
//!   from one (the C API's behaviour, through its Rust core), with its
//!   callbacks on worker threads (the default) and on its I/O thread
//!   (`callbacks_on_io_thread`), each with one I/O thread (the default)
//!   and with two (`io_threads`);
//! - a minimal single-threaded server written for speed
//!   (`support/minimal_server.rs`): the hand-written event loop to match;
//! - the Python reference server (`tests/support/ref_server.py`, veltix
//!   3.3.0) when `.venv` exists.
//!
//! The load comes from one thread with one epoll loop
//! (`support/loadgen.rs`) that checks every CRC, request id and order.
//! Each figure is the median of `VELTIX_BENCH_RUNS` runs (default 3) of
//! `VELTIX_BENCH_SECONDS` (default 2) each; the runs interleave the
//! servers. A FILTER argument keeps the workloads whose name contains it;
//! `VELTIX_BENCH_SERVERS` (e.g. `libveltix,minimal`) keeps those servers.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

#[path = "support/loadgen.rs"]
mod loadgen;
#[path = "support/minimal_server.rs"]
mod minimal_server;
mod support;

use loadgen::{Order, Workload, BROADCAST, BROADCAST_OUT, ECHO};
use veltix::server::{Server, ServerConfig};

/// The servers compared, by the name the child process is started with.
const SERVERS: [(&str, &str); 6] = [
    ("libveltix", "libveltix server (callbacks on workers)"),
    (
        "libveltix-inline",
        "libveltix server (callbacks on I/O thread)",
    ),
    ("libveltix-2loops", "libveltix, 2 I/O threads, workers"),
    (
        "libveltix-inline-2loops",
        "libveltix, 2 I/O threads, inline",
    ),
    ("minimal", "minimal single-thread server"),
    ("python", "Python server (veltix 3.3.0)"),
];

fn workloads() -> Vec<(String, Workload)> {
    let echo = |connections, in_flight| Workload::Echo {
        connections,
        in_flight,
    };
    let mut list: Vec<(String, Workload)> = [1, 10, 100, 1000]
        .into_iter()
        .map(|n| (format!("closed-loop echo, {n} connections"), echo(n, 1)))
        .collect();
    for n in [100, 1000] {
        list.push((format!("pipelined echo, {n} connections x 32"), echo(n, 32)));
    }
    for receivers in [100, 1000] {
        list.push((
            format!("broadcast fan-out, {receivers} receivers"),
            Workload::Broadcast {
                receivers,
                batch: 32,
            },
        ));
    }
    // Few senders on several loops, and receivers that only count bytes:
    // the generator's cost grows with reads, not with frames.
    for receivers in [100, 1000] {
        list.push((
            format!("fan-out, 4 senders to {receivers} byte-counting receivers"),
            Workload::FanOut {
                senders: 4,
                receivers,
                batch: 16,
            },
        ));
    }
    // New connections only: what the accepting loop can take.
    list.push((
        "connection churn, 4 clients (connect, handshake, close)".into(),
        Workload::Churn { clients: 4 },
    ));
    list
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(at) = args.iter().position(|a| a == "--serve") {
        serve(&args[at + 1]);
    }
    raise_descriptor_limit();
    let filter = args.iter().find(|a| !a.starts_with('-')).cloned();
    let runs: usize = env_or("VELTIX_BENCH_RUNS", 3);
    let seconds: f64 = env_or("VELTIX_BENCH_SECONDS", 2.0);
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let only = std::env::var("VELTIX_BENCH_SERVERS").ok();
    let servers: Vec<_> = SERVERS
        .iter()
        .filter(|(kind, _)| *kind != "python" || python.exists())
        .filter(|(kind, _)| {
            only.as_ref()
                .map_or(true, |only| only.split(',').any(|o| o == *kind))
        })
        .collect();
    if !python.exists() {
        println!("(no .venv: run scripts/test.sh once to compare with the Python server)");
    }
    println!("64-byte payloads; medians of {runs} runs of {seconds} s; rates per second; CPU in cores (server / load generator); the server's CPU time per message\n");
    for (name, workload) in workloads() {
        if filter.as_ref().is_some_and(|f| !name.contains(f.as_str())) {
            continue;
        }
        println!("{name}");
        let mut results: Vec<Vec<(f64, f64, f64)>> = vec![Vec::new(); servers.len()];
        for _ in 0..runs {
            for (i, (kind, _)) in servers.iter().enumerate() {
                let child = ServerProcess::start(kind);
                let server_cpu_before = child.cpu();
                // The reference's thread pool reorders; ours keep order.
                let order = match *kind {
                    "python" => Order::Any,
                    _ => Order::Kept,
                };
                let io_before = child.io_thread_cpus();
                let outcome = loadgen::run(child.port, workload, order, seconds);
                let server_cpu = (child.cpu() - server_cpu_before).as_secs_f64() / seconds;
                if let Workload::Churn { .. } = workload {
                    let spent: Vec<String> = child
                        .io_thread_cpus()
                        .iter()
                        .zip(io_before.iter().chain(std::iter::repeat(&Duration::ZERO)))
                        .map(|(after, before)| {
                            format!("{:.2}", (*after - *before).as_secs_f64() / seconds)
                        })
                        .collect();
                    if !spent.is_empty() {
                        println!(
                            "    {kind}: I/O threads' CPU, the accepting one first: {}",
                            spent.join(", ")
                        );
                    }
                }
                results[i].push((outcome.rate, server_cpu, outcome.cpu));
            }
        }
        let medians: Vec<(f64, f64, f64)> = results.into_iter().map(median).collect();
        for ((_, label), (rate, server_cpu, load_cpu)) in servers.iter().zip(&medians) {
            let per_message = server_cpu / rate * 1e9;
            println!(
                "  {label:<40} {rate:>12.0}   CPU {server_cpu:.2} / {load_cpu:.2}   {per_message:>6.0} ns/msg"
            );
        }
        let rate_of = |wanted: &str| {
            servers
                .iter()
                .zip(&medians)
                .find(|((kind, _), _)| *kind == wanted)
                .map(|(_, (rate, _, _))| *rate)
        };
        for kind in [
            "libveltix",
            "libveltix-inline",
            "libveltix-2loops",
            "libveltix-inline-2loops",
        ] {
            let Some(rate) = rate_of(kind) else { continue };
            let ratios: Vec<String> = [("minimal", 2), ("python", 1)]
                .into_iter()
                .filter_map(|(other, digits)| {
                    rate_of(other).map(|r| format!("/ {other} = {:.*}", digits, rate / r))
                })
                .collect();
            println!("  {kind}: {}", ratios.join(", "));
        }
        println!();
    }
}

/// The run with the median rate (its CPU figures with it).
fn median(mut runs: Vec<(f64, f64, f64)>) -> (f64, f64, f64) {
    runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    runs[runs.len() / 2]
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// 1,000 connections need more descriptors than a default soft limit of
/// 1,024 leaves, in the generator and in each server (which inherit it).
fn raise_descriptor_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit read and write a live rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max.min(65536);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A server under test, in its own process.
struct ServerProcess {
    child: Child,
    port: u16,
}

impl ServerProcess {
    fn start(kind: &str) -> ServerProcess {
        let mut command = match kind {
            "python" => {
                let root = Path::new(env!("CARGO_MANIFEST_DIR"));
                let port = TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port();
                let mut command = Command::new(root.join(".venv/bin/python"));
                command.arg(root.join("tests/support/ref_server.py")).args([
                    "--port",
                    &port.to_string(),
                    "--forever",
                ]);
                command
            }
            _ => {
                let mut command = Command::new(std::env::current_exe().unwrap());
                command.args(["--serve", kind]);
                command
            }
        };
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(match kind {
                "python" => Stdio::null(),
                _ => Stdio::inherit(),
            })
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let ready = (&mut stdout)
            .lines()
            .map_while(Result::ok)
            .find_map(|line| {
                line.strip_prefix("READY ")
                    .map(|p| p.trim().parse().unwrap())
            });
        let port = ready.unwrap_or_else(|| panic!("the {kind} server did not start"));
        // The Python server logs every connection to stdout: drained, so
        // it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        ServerProcess { child, port }
    }

    /// The process's CPU time so far.
    fn cpu(&self) -> Duration {
        cpu_of_stat(&std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap())
    }

    /// The CPU time so far of each of libveltix's I/O threads, in the
    /// order they were started (the accepting one first).
    fn io_thread_cpus(&self) -> Vec<Duration> {
        let tasks = format!("/proc/{}/task", self.child.id());
        let mut threads: Vec<(u32, Duration)> = std::fs::read_dir(&tasks)
            .unwrap()
            .filter_map(|task| {
                let task = task.ok()?;
                let stat = std::fs::read_to_string(task.path().join("stat")).ok()?;
                let name = &stat[stat.find('(')? + 1..stat.rfind(')')?];
                if !name.starts_with("veltix-server-i") {
                    return None;
                }
                let tid: u32 = task.file_name().to_str()?.parse().ok()?;
                Some((tid, cpu_of_stat(&stat)))
            })
            .collect();
        threads.sort();
        threads.into_iter().map(|(_, cpu)| cpu).collect()
    }
}

/// The CPU time a `/proc/.../stat` line reports.
fn cpu_of_stat(stat: &str) -> Duration {
    // Fields after the command name (which may hold spaces): utime and
    // stime are the 12th and 13th.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    // SAFETY: sysconf takes no pointers.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let total: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    Duration::from_secs_f64(total / ticks)
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child side: serves `kind` on a free port until killed, after
/// printing `READY <port>`.
fn serve(kind: &str) -> ! {
    match kind {
        "minimal" => {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            announce(listener.local_addr().unwrap().port());
            minimal_server::serve(listener)
        }
        "libveltix" | "libveltix-inline" | "libveltix-2loops" | "libveltix-inline-2loops" => {
            let defaults = ServerConfig::default();
            let server = Server::new(ServerConfig {
                host: "127.0.0.1".into(),
                port: 0,
                max_workers: env_or("VELTIX_BENCH_WORKERS", defaults.max_workers),
                callbacks_on_io_thread: kind.contains("inline"),
                io_threads: if kind.ends_with("2loops") { 2 } else { 1 },
                ..defaults
            })
            .unwrap();
            server
                .route(
                    ECHO,
                    Arc::new(|server, peer, message| {
                        let _ = server.reply(peer, message, ECHO, message.payload());
                    }),
                )
                .unwrap();
            server
                .route(
                    BROADCAST,
                    Arc::new(|server, _, message| {
                        let _ = server.broadcast(BROADCAST_OUT, message.payload(), &[]);
                    }),
                )
                .unwrap();
            announce(server.start().unwrap());
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        other => panic!("unknown server {other}"),
    }
}

fn announce(port: u16) {
    let mut out = std::io::stdout();
    writeln!(out, "READY {port}").unwrap();
    out.flush().unwrap();
}
