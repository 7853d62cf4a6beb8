//! The bus threads of a running cluster node, each with its own Redis
//! connection: one publishes what the server queued (pipelined) and keeps
//! the node's count record; one subscribes and delivers what other nodes
//! publish. Two threads because the synchronous client blocks on one
//! socket at a time: a publish never waits behind a read. Both reconnect
//! with backoff, and every Redis call has a deadline, so a slow or stopped
//! Redis delays only the bus and `close` by at most [`IO_TIMEOUT`].

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, RecvTimeoutError, Sender};
use redis::{Connection, RedisResult, Value};

use super::{Cluster, ClusterHost, NodeCount, Outgoing};
use crate::backoff::{retry_delay, Jitter, RetryPolicy};
use crate::log::{log, log_at, LogLevel};

/// The deadline of connecting to Redis and of each call.
const IO_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the subscriber looks up from its read to stop or to change
/// its tag subscriptions.
const READ_SLICE: Duration = Duration::from_millis(50);
/// How often a node records its count of clients...
pub(crate) const COUNT_REFRESH: Duration = Duration::from_secs(1);
/// ...and how long the record lives without a refresh.
pub(crate) const COUNT_EXPIRY: Duration = Duration::from_secs(3);
/// Most messages, and bytes, sent to Redis in one pipeline.
const BATCH_MESSAGES: usize = 512;
const BATCH_BYTES: usize = 4 << 20;
/// Waits between attempts to reach Redis.
const RECONNECT: RetryPolicy = RetryPolicy {
    base: Duration::from_millis(100),
    max: Some(Duration::from_secs(5)),
    jitter: true,
};

/// The running bus threads of one node.
pub(crate) struct BusThreads {
    /// Dropped to stop both threads.
    stop: Sender<()>,
    threads: Vec<JoinHandle<()>>,
}

impl BusThreads {
    /// Starts both threads for `cluster`, delivering to and reporting to
    /// `host`.
    pub fn start(cluster: Arc<Cluster>, host: Arc<dyn ClusterHost>) -> std::io::Result<BusThreads> {
        let (stop, stopped) = crossbeam_channel::bounded(0);
        let mut threads = Vec::new();
        for role in [Role::Publisher, Role::Subscriber] {
            let bus = Bus {
                cluster: cluster.clone(),
                host: host.clone(),
                stopped: stopped.clone(),
                jitter: Jitter::new(role as usize),
            };
            let spawned = std::thread::Builder::new()
                .name(role.thread_name().into())
                .spawn(move || bus.run(role));
            match spawned {
                Ok(thread) => threads.push(thread),
                Err(e) => {
                    BusThreads { stop, threads }.stop();
                    return Err(e);
                }
            }
        }
        Ok(BusThreads { stop, threads })
    }

    /// Stops both threads and waits for them (at most about
    /// [`IO_TIMEOUT`], when a call to Redis is under way).
    pub fn stop(self) {
        drop(self.stop);
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Publisher,
    Subscriber,
}

impl Role {
    fn thread_name(self) -> &'static str {
        match self {
            Role::Publisher => "veltix-bus-pub",
            Role::Subscriber => "veltix-bus-sub",
        }
    }
}

/// Why a connected session ended.
enum Ended {
    Stopped,
    Failed(redis::RedisError),
}

impl From<redis::RedisError> for Ended {
    fn from(error: redis::RedisError) -> Self {
        Ended::Failed(error)
    }
}

/// One bus thread's state.
struct Bus {
    cluster: Arc<Cluster>,
    host: Arc<dyn ClusterHost>,
    stopped: Receiver<()>,
    jitter: Jitter,
}

impl Bus {
    /// Connects, serves until the connection fails, and again with
    /// backoff, until stopped.
    fn run(self, role: Role) {
        let flag = match role {
            Role::Publisher => &self.cluster.publisher_up,
            Role::Subscriber => &self.cluster.subscriber_up,
        };
        let mut attempt = 0u32;
        loop {
            let ended = match self.connect() {
                Ok(connection) => {
                    attempt = 0;
                    match role {
                        Role::Publisher => self.publish(connection, flag),
                        Role::Subscriber => self.subscribe(connection, flag),
                    }
                }
                Err(error) => Ended::Failed(error),
            };
            let closed = matches!(ended, Ended::Stopped);
            self.cluster.set_up(flag, false, closed, &*self.host);
            if role == Role::Publisher {
                self.drop_queued();
            }
            let Ended::Failed(error) = ended else {
                return;
            };
            attempt = attempt.saturating_add(1);
            let delay = retry_delay(&RECONNECT, attempt, self.jitter.next());
            // Logged as a warning once per outage.
            let level = if attempt == 1 {
                LogLevel::Warn
            } else {
                LogLevel::Debug
            };
            log(
                level,
                format_args!(
                    "cluster {} node {}: the bus at {} failed ({error}); {} tries again in {} ms",
                    self.cluster.config.name,
                    self.cluster.node,
                    self.cluster.config.bus_for_logs(),
                    role.thread_name(),
                    delay.as_millis()
                ),
            );
            if self.wait(delay) {
                return;
            }
        }
    }

    fn connect(&self) -> RedisResult<Connection> {
        let client = redis::Client::open(self.cluster.config.bus.as_str())?;
        let connection = client.get_connection_with_timeout(IO_TIMEOUT)?;
        connection.set_read_timeout(Some(IO_TIMEOUT))?;
        connection.set_write_timeout(Some(IO_TIMEOUT))?;
        Ok(connection)
    }

    /// Sends what the server queues, and refreshes the count record every
    /// [`COUNT_REFRESH`].
    fn publish(&self, mut connection: Connection, flag: &AtomicBool) -> Ended {
        let mut counts = CountRecord::new(&self.cluster);
        if let Err(error) = counts.refresh(&mut connection, &self.cluster, &*self.host) {
            return error.into();
        }
        // What was queued before the bus came up is stale: dropped.
        self.drop_queued();
        self.cluster.set_up(flag, true, false, &*self.host);
        let queue = &self.cluster.queue.1;
        let mut next_refresh = Instant::now() + COUNT_REFRESH;
        loop {
            let wait = next_refresh.saturating_duration_since(Instant::now());
            select! {
                recv(self.stopped) -> _ => return Ended::Stopped,
                recv(queue) -> first => {
                    let Ok(first) = first else { return Ended::Stopped };
                    if let Err(error) = self.send_batch(&mut connection, first) {
                        return error.into();
                    }
                }
                default(wait) => {}
            }
            if Instant::now() >= next_refresh {
                if let Err(error) = counts.refresh(&mut connection, &self.cluster, &*self.host) {
                    return error.into();
                }
                next_refresh = Instant::now() + COUNT_REFRESH;
            }
        }
    }

    /// Publishes `first` and what else is queued, up to a batch, in one
    /// pipeline: one write and one read for the lot.
    fn send_batch(&self, connection: &mut Connection, first: Outgoing) -> RedisResult<()> {
        let mut batch = vec![first];
        let mut bytes = batch[0].bytes.len();
        while batch.len() < BATCH_MESSAGES && bytes < BATCH_BYTES {
            let Ok(next) = self.cluster.queue.1.try_recv() else {
                break;
            };
            bytes += next.bytes.len();
            batch.push(next);
        }
        let mut pipe = redis::pipe();
        for outgoing in &batch {
            pipe.cmd("PUBLISH")
                .arg(&*outgoing.channel)
                .arg(&outgoing.bytes)
                .ignore();
            self.cluster.dequeued(outgoing);
        }
        let sent = exchange(connection, &pipe, batch.len());
        let counter = match sent {
            Ok(_) => &self.cluster.published,
            Err(_) => &self.cluster.dropped,
        };
        counter.fetch_add(batch.len() as u64, std::sync::atomic::Ordering::Relaxed);
        sent.map(drop)
    }

    /// Drops (and counts) what waits for a bus that is not there.
    fn drop_queued(&self) {
        let mut dropped = 0;
        while let Ok(outgoing) = self.cluster.queue.1.try_recv() {
            self.cluster.dequeued(&outgoing);
            dropped += 1;
        }
        self.cluster
            .dropped
            .fetch_add(dropped, std::sync::atomic::Ordering::Relaxed);
    }

    /// Subscribes to the node's channels and delivers what arrives.
    fn subscribe(&self, mut connection: Connection, flag: &AtomicBool) -> Ended {
        let names = &self.cluster.names;
        let mut pubsub = connection.as_pubsub();
        if let Err(error) = pubsub
            .subscribe(&*names.all)
            .and_then(|()| pubsub.subscribe(&*names.own_node))
        {
            return error.into();
        }
        let mut tags = BTreeSet::new();
        let mut tags_version = None;
        self.cluster.set_up(flag, true, false, &*self.host);
        loop {
            if self.wait(Duration::ZERO) {
                return Ended::Stopped;
            }
            if tags_version != Some(self.cluster.tags.version()) {
                let (wanted, version) = self.cluster.tags.names();
                if let Err(error) = follow_tags(&mut pubsub, &mut tags, wanted, names) {
                    return error.into();
                }
                tags_version = Some(version);
            }
            // Read in slices, to look up for the above in between.
            if let Err(error) = pubsub.set_read_timeout(Some(READ_SLICE)) {
                return error.into();
            }
            match pubsub.get_message() {
                Ok(message) => self
                    .cluster
                    .received(message.get_payload_bytes(), &*self.host),
                Err(error) if error.is_timeout() => {}
                Err(error) => return error.into(),
            }
        }
    }

    /// Waits `delay`; whether the threads were told to stop meanwhile.
    fn wait(&self, delay: Duration) -> bool {
        matches!(
            self.stopped.recv_timeout(delay),
            Err(RecvTimeoutError::Disconnected)
        )
    }
}

/// Subscribes to the channels of the tags in `wanted` and unsubscribes
/// from those no longer there; `subscribed` follows.
fn follow_tags(
    pubsub: &mut redis::PubSub<'_>,
    subscribed: &mut BTreeSet<String>,
    wanted: BTreeSet<String>,
    names: &super::Names,
) -> RedisResult<()> {
    // Confirmations are answers to our calls: the full deadline.
    pubsub.set_read_timeout(Some(IO_TIMEOUT))?;
    for gone in subscribed.difference(&wanted) {
        pubsub.unsubscribe(names.tag(gone))?;
    }
    for new in wanted.difference(subscribed) {
        pubsub.subscribe(names.tag(new))?;
    }
    *subscribed = wanted;
    Ok(())
}

/// Sends `pipe` and reads its `replies`, giving up at the first error: the
/// client's own pipelines read every reply even after a timeout, which
/// would hold a thread for [`IO_TIMEOUT`] per command when Redis stalls.
fn exchange(
    connection: &mut Connection,
    pipe: &redis::Pipeline,
    replies: usize,
) -> RedisResult<Vec<Value>> {
    connection.send_packed_command(&pipe.get_packed_pipeline())?;
    (0..replies)
        .map(|_| connection.recv_response()?.extract_error())
        .collect()
}

/// The node's count record, `veltix:<cluster>:count:<node>`, whose value
/// is `<instance> <clients>`: the instance, drawn per run, shows another
/// process using the same node id.
struct CountRecord {
    key: String,
    instance: u64,
    /// Whether the record was written before in this session: the
    /// first write may find the record of this node's previous run.
    written: bool,
    /// Whether a clash of node ids was already logged.
    clash_logged: bool,
}

impl CountRecord {
    fn new(cluster: &Cluster) -> CountRecord {
        CountRecord {
            key: cluster.names.count(cluster.node),
            instance: cluster.instance,
            written: false,
            clash_logged: false,
        }
    }

    /// Writes this node's record (with its expiry) and reads every live
    /// node's.
    fn refresh(
        &mut self,
        connection: &mut Connection,
        cluster: &Cluster,
        host: &dyn ClusterHost,
    ) -> RedisResult<()> {
        let names = &cluster.names;
        let value = format!("{} {}", self.instance, host.local_clients());
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(&self.key)
            .arg(value)
            .arg("PX")
            .arg(COUNT_EXPIRY.as_millis() as u64)
            .arg("GET")
            .cmd("SADD")
            .arg(&names.nodes)
            .arg(cluster.node)
            .cmd("SMEMBERS")
            .arg(&names.nodes);
        let [previous, _, members] = <[Value; 3]>::try_from(exchange(connection, &pipe, 3)?)
            .map_err(|_| redis::RedisError::from((redis::ErrorKind::ParseError, "3 replies")))?;
        let previous: Option<String> = redis::from_owned_redis_value(previous)?;
        let members: Vec<u16> = redis::from_owned_redis_value(members)?;
        if self.written {
            self.check_clash(previous.as_deref(), cluster);
        }
        self.written = true;
        let keys: Vec<String> = members.iter().map(|node| names.count(*node)).collect();
        let values: Vec<Option<String>> = redis::cmd("MGET").arg(&keys).query(connection)?;
        let mut counts = Vec::new();
        let mut expired = Vec::new();
        for (node, value) in members.iter().zip(values) {
            match value.as_deref().and_then(parse_record) {
                Some((_, clients)) => counts.push(NodeCount {
                    node: *node,
                    clients,
                }),
                None => expired.push(*node),
            }
        }
        if !expired.is_empty() {
            redis::cmd("SREM")
                .arg(&names.nodes)
                .arg(&expired)
                .query::<()>(connection)?;
        }
        *cluster.remote_counts_guard() = Some((Instant::now(), counts));
        Ok(())
    }

    /// Logs (once) when the record held another process's instance.
    fn check_clash(&mut self, previous: Option<&str>, cluster: &Cluster) {
        let other = previous
            .and_then(parse_record)
            .is_some_and(|(instance, _)| instance != self.instance);
        if other && !self.clash_logged {
            self.clash_logged = true;
            log_at!(
                Error,
                "cluster {}: another process uses node id {} too, so peer ids and sends by id clash. Fix: give each process its own cluster_node_id",
                cluster.config.name,
                cluster.node
            );
        }
    }
}

/// `<instance> <clients>`.
fn parse_record(value: &str) -> Option<(u64, u64)> {
    let (instance, clients) = value.split_once(' ')?;
    Some((instance.parse().ok()?, clients.parse().ok()?))
}
