//! A Kafka-protocol broker (tansu, memory storage) on a free loopback port,
//! and a producer of event records keyed by conversation, as the events
//! publisher writes them.

use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use rdkafka::{
    config::ClientConfig,
    producer::{BaseProducer, BaseRecord, Producer},
};

/// How long the broker gets to listen after it was started.
const READY: Duration = Duration::from_secs(20);

/// One tansu broker, killed when dropped.
pub(crate) struct TestBroker {
    port: u16,
    child: Child,
}

fn tansu() -> PathBuf {
    let cache =
        std::env::var_os("CHATGW_CACHE_DIR").map_or_else(|| PathBuf::from("/root/.cache/chatgw"), PathBuf::from);
    cache.join("tansu/bin/tansu")
}

impl TestBroker {
    /// Start a broker and wait until it accepts connections.
    pub(crate) fn start() -> TestBroker {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu())
            .args(["broker", "--storage-engine", "memory://tansu/", "--listener-url", &url])
            .args(["--advertised-listener-url", &url])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", tansu().display()));
        let broker = TestBroker { port, child };
        let deadline = Instant::now() + READY;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen on {port}");
            thread::sleep(Duration::from_millis(50));
        }
        broker
    }

    /// `127.0.0.1:<port>`.
    pub(crate) fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Create `topic` with `partitions` partitions.
    pub(crate) fn create_topic(&self, topic: &str, partitions: u32) {
        let out = Command::new(tansu())
            .args(["topic", "create", topic, "--partitions", &partitions.to_string()])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .output()
            .expect("running tansu topic create");
        assert!(out.status.success(), "tansu topic create: {}", String::from_utf8_lossy(&out.stderr));
    }

    /// A producer to this broker.
    pub(crate) fn producer(&self) -> EventProducer {
        let producer: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .set("linger.ms", "0")
            // tansu has no idempotent producer.
            .set("enable.idempotence", "false")
            .create()
            .expect("a producer");
        EventProducer { producer }
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes event records keyed by their conversation.
pub(crate) struct EventProducer {
    producer: BaseProducer,
}

impl EventProducer {
    /// Send `record` keyed by `conversation` and wait until the broker has it.
    pub(crate) fn send(&self, topic: &str, conversation: &str, record: &str) {
        self.producer
            .send(BaseRecord::to(topic).key(conversation).payload(record))
            .map_err(|(e, _)| e)
            .expect("queueing a record");
        self.producer.flush(Duration::from_secs(10)).expect("the broker took the record");
    }
}
