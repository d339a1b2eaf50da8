//! Helpers for the push tests: the providers' test servers (webhook, APNs,
//! FCM) on a runtime of their own, devices registering push targets
//! through a gateway, a producer of event records for the tests' broker
//! (`chatgw_events::testing::TestBroker`), and `chatgw push` and `chatgw
//! serve` as child processes.

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use chatgw_client::{Client, DeviceName, Event, PushProvider, UserId};
use chatgw_events::testing::TestBroker;
use chatgw_push::testing::{ApnsServer, FcmServer, Received, WebhookServer};
use rdkafka::{
    config::ClientConfig,
    producer::{BaseProducer, BaseRecord, Producer},
};

use super::{sync_all, TestGateway, WAIT};

/// The three providers' test servers, served by a runtime that lives as
/// long as they do.
pub struct Providers {
    pub webhook: WebhookServer,
    pub apns: ApnsServer,
    pub fcm: FcmServer,
    _runtime: tokio::runtime::Runtime,
}

impl Providers {
    pub fn start() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (webhook, apns, fcm) = runtime
            .block_on(async { (WebhookServer::start().await, ApnsServer::start().await, FcmServer::start().await) });
        Providers { webhook, apns, fcm, _runtime: runtime }
    }

    /// `--push` values for all three, trusting the test CA.
    pub fn specs(&self) -> Vec<String> {
        vec![
            self.webhook.spec(),
            self.apns.spec(),
            self.fcm.spec(),
            format!("tls:ca-file={}", self.webhook.ca_file().display()),
        ]
    }

    /// Every valid push any of them got, with its provider.
    pub fn received(&self) -> Vec<(&'static str, Received)> {
        let mut all: Vec<(&'static str, Received)> = Vec::new();
        all.extend(self.webhook.received().into_iter().map(|r| ("webhook", r)));
        all.extend(self.apns.received().into_iter().map(|r| ("apns", r)));
        all.extend(self.fcm.received().into_iter().map(|r| ("fcm", r)));
        all.sort_by_key(|(_, r)| r.at);
        all
    }

    /// Successful pushes to `token`, whichever provider took them.
    pub fn delivered_to(&self, token: &str) -> usize {
        self.webhook.delivered_to(token) + self.apns.delivered_to(token) + self.fcm.delivered_to(token)
    }

    /// Wait until `token` got `n` successful pushes.
    pub fn wait_delivered(&self, token: &str, n: usize, within: Duration) -> bool {
        let until = Instant::now() + within;
        while self.delivered_to(token) < n {
            if Instant::now() > until {
                return false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        true
    }

    /// Contract violations seen by any server.
    pub fn problems(&self) -> Vec<String> {
        [self.webhook.problems(), self.apns.problems(), self.fcm.problems()].concat()
    }
}

pub fn dev(name: &str) -> DeviceName {
    DeviceName::new(name).unwrap()
}

/// Register `user`'s `device` for pushes through `gw`, as a device does;
/// the connection stays open (the device is live) until dropped.
pub fn register(gw: &TestGateway, user: u64, device: &str, provider: PushProvider, token: &str) -> Client {
    register_at(gw.addr, &device_token(user, device), provider, token)
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    chatgw_protocol::now_ms()
}

/// A message record of event schema v1, as the publisher writes it.
pub fn message_record(id: u64, conversation: &str, from: u64, to: &[u64], at_ms: u64) -> String {
    let to: Vec<String> = to.iter().map(u64::to_string).collect();
    serde_json::json!({
        "v": 1, "event": id.to_string(), "kind": "message", "conversation": conversation,
        "from": from.to_string(), "recipients": to, "at": at_ms, "id": id.to_string(),
        "msg_kind": "text", "size": 4,
    })
    .to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A producer to `broker`, as a publisher other than chatgw would write.
pub fn producer(broker: &TestBroker) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("linger.ms", "0")
        // tansu has no idempotent producer.
        .set("enable.idempotence", "false")
        .create()
        .expect("a producer")
}

/// Produce `record` keyed by `conversation` and wait until the broker has it.
pub fn produce(producer: &BaseProducer, topic: &str, conversation: &str, record: &str) {
    producer.send(BaseRecord::to(topic).key(conversation).payload(record)).map_err(|(e, _)| e).expect("queued");
    producer.flush(Duration::from_secs(10)).expect("the broker took the record");
}

/// `chatgw push` as a child process, logging into a file; killed
/// (SIGKILL) when dropped.
pub struct PushWorker {
    pub child: Child,
    pub admin: SocketAddr,
    log: PathBuf,
}

impl PushWorker {
    pub fn spawn(dir: &Path, args: &[String]) -> Self {
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = dir.join(format!("push-{}.log", admin.port()));
        let child = Command::new(env!("CARGO_BIN_EXE_chatgw"))
            .arg("push")
            .args(args)
            .args(["--admin-listen", &admin.to_string()])
            .env("CHATGW_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("running chatgw push");
        PushWorker { child, admin, log }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The body of its `/metrics` (empty while it does not answer).
    pub fn scrape(&self) -> String {
        let Ok(s) = TcpStream::connect(self.admin) else { return String::new() };
        let resp = super::http_on(s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default()
    }

    /// A metric's value, 0 while it does not answer.
    pub fn metric(&self, name: &str) -> f64 {
        let text = self.scrape();
        text.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// Wait until `name` reaches `at_least`.
    pub fn wait_metric(&self, name: &str, at_least: f64, within: Duration) {
        let until = Instant::now() + within;
        while self.metric(name) < at_least {
            assert!(Instant::now() < until, "{name} < {at_least}; worker log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PushWorker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `chatgw serve` as a child process on `data`, with its stderr kept for
/// the test's messages; killed (SIGKILL) when dropped.
pub struct ServeProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl ServeProcess {
    /// Start it on free ports and wait for its "listening" and "admin" lines.
    pub fn spawn(data: &Path, flags: &[String]) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatgw"))
            .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--secret", super::SECRET])
            .args(["--workers", "1", "--data"])
            .arg(data)
            .args(flags)
            .env("CHATGW_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chatgw serve starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                for prefix in ["listening: ws://", "admin: http://"] {
                    if let Some(rest) = line.split(prefix).nth(1) {
                        let _ = tx.send(rest.split('/').next().unwrap().to_owned());
                    }
                }
                kept.lock().unwrap().push(line);
            }
        });
        let next = |what: &str| -> SocketAddr {
            let addr = rx.recv_timeout(Duration::from_secs(30));
            addr.unwrap_or_else(|_| panic!("no {what} line; log:\n{}", log.lock().unwrap().join("\n"))).parse().unwrap()
        };
        let addr = next("listening");
        let admin = next("admin");
        ServeProcess { child, addr, admin, log }
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// A metric from its `/metrics`, 0 if absent.
    pub fn metric(&self, name: &str) -> f64 {
        let resp = super::raw_exchange(self.admin, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        resp.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// SIGKILL, and wait for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A device token of `user`'s `device`, signed with the tests' secret.
pub fn device_token(user: u64, device: &str) -> String {
    let now = chatgw_gateway::auth::unix_now();
    chatgw_gateway::auth::TokenKey::new(super::SECRET.as_bytes()).mint_device(
        UserId(user),
        dev(device),
        now - 60,
        now + 3600,
    )
}

/// Connect `token` to `addr` and sync (a live device), then register its
/// push target.
pub fn register_at(addr: SocketAddr, token: &str, provider: PushProvider, push_token: &str) -> Client {
    let mut c = Client::connect(addr, token).unwrap();
    sync_all(&mut c);
    c.register_push(provider, push_token).unwrap();
    c.wait_for(WAIT, "push_registered", |e| match e {
        Event::PushRegistered { .. } => Some(()),
        Event::Error { code, message, .. } => panic!("error {code}: {message}"),
        _ => None,
    })
    .unwrap();
    c
}

/// `from` sends `n` text messages to `to` and waits for each `sent`; their ids.
pub fn send_burst(from: &mut Client, to: u64, tag: &str, n: usize) -> Vec<chatgw_client::MessageId> {
    (0..n)
        .map(|i| {
            let cid = format!("{tag}-{i}");
            from.send_message(UserId(to), &cid, chatgw_client::MessageKind::Text, "hello").unwrap();
            super::sent_id(from, &cid).0
        })
        .collect()
}
