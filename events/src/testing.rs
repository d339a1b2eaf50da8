//! A throwaway Kafka-protocol broker for tests, and a consumer that reads
//! what was published. Only behind the `testing` feature.
//!
//! The broker is tansu (one binary, in-memory storage), installed by
//! `.ci/run` into `$CHATGW_CACHE_DIR/tansu/bin` or named by
//! `CHATGW_TANSU_BIN`. Each [`TestBroker`] listens on its own free port and
//! is killed when dropped. In-memory storage means a restarted broker
//! starts empty: [`TestBroker::restart`] recreates the topics.

use std::{
    collections::BTreeMap,
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rdkafka::{
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer},
    Message, Offset, TopicPartitionList,
};

/// Where the tansu binary is, if it is installed.
pub fn tansu_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHATGW_TANSU_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let cache = std::env::var_os("CHATGW_CACHE_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/chatgw")))?;
    Some(cache.join("tansu/bin/tansu")).filter(|p| p.is_file())
}

/// A running tansu broker on a free local port.
pub struct TestBroker {
    binary: PathBuf,
    port: u16,
    child: Option<Child>,
    /// Topics and partition counts, created again after a restart.
    topics: BTreeMap<String, i32>,
}

impl std::fmt::Debug for TestBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestBroker").field("port", &self.port).finish_non_exhaustive()
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local address").port()
}

impl TestBroker {
    /// Start a broker, or `None` (after saying why on stderr) when tansu
    /// is not installed.
    pub fn start(test: &str) -> Option<Self> {
        let Some(binary) = tansu_binary() else {
            eprintln!("{test}: skipped: no tansu broker (run .ci/run, or set CHATGW_TANSU_BIN)");
            return None;
        };
        let mut broker = TestBroker { binary, port: free_port(), child: None, topics: BTreeMap::new() };
        broker.spawn();
        Some(broker)
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new(&self.binary)
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &url])
            .args(["--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `host:port` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Create `topic` with `partitions` partitions.
    pub fn create_topic(&mut self, topic: &str, partitions: i32) {
        self.topics.insert(topic.to_owned(), partitions);
        let status = Command::new(&self.binary)
            .args(["topic", "create", topic, "--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .stdout(Stdio::null())
            .status()
            .expect("run tansu topic create");
        assert!(status.success(), "tansu topic create {topic}: {status}");
    }

    /// Kill the broker (SIGKILL): clients see it unreachable.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop the broker with SIGSTOP (it keeps its data and its sockets but
    /// answers nothing) or let it go on with SIGCONT.
    pub fn pause(&self, paused: bool) {
        if let Some(c) = &self.child {
            let signal = if paused { "-STOP" } else { "-CONT" };
            let ok = Command::new("kill").args([signal, &c.id().to_string()]).status().is_ok_and(|s| s.success());
            assert!(ok, "kill {signal} tansu");
        }
    }

    /// Start it again on the same port, empty, with the same topics.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        for (topic, partitions) in self.topics.clone() {
            self.create_topic(&topic, partitions);
        }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        self.pause(false);
        self.kill();
    }
}

/// One record read back from the broker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The partition it was in.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
}

/// Reads every partition of one topic from the beginning, without a
/// consumer group.
pub struct TestConsumer {
    consumer: BaseConsumer,
}

impl std::fmt::Debug for TestConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestConsumer").finish_non_exhaustive()
    }
}

impl TestConsumer {
    /// A consumer of partitions `0..partitions` of `topic` at `bootstrap`.
    pub fn new(bootstrap: &str, topic: &str, partitions: i32) -> Self {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("group.id", "chatgw-tests")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("log_level", "3")
            .create()
            .expect("create a consumer");
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, Offset::Beginning).expect("assign a partition");
        }
        consumer.assign(&tpl).expect("assign partitions");
        TestConsumer { consumer }
    }

    /// Records that arrive until none has for `idle`, or `most` passed.
    pub fn poll_until_idle(&self, idle: Duration, most: Duration) -> Vec<ConsumedRecord> {
        let start = Instant::now();
        let mut last = Instant::now();
        let mut out = Vec::new();
        while last.elapsed() < idle && start.elapsed() < most {
            // A broker going away is what some tests do: errors mean poll again.
            if let Some(Ok(m)) = self.consumer.poll(Duration::from_millis(100)) {
                out.push(ConsumedRecord {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or_default().to_vec(),
                    value: m.payload().unwrap_or_default().to_vec(),
                });
                last = Instant::now();
            }
        }
        out
    }
}
