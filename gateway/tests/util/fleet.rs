//! A fleet of `chatgw` processes for tests: three (or N) gateway processes
//! on one fresh PostgreSQL database, their registry a `redis-server` (or a
//! Redis Cluster) the test starts, each node's link address optionally
//! behind a [`FaultProxy`] so a test can cut it.
//!
//! Nodes are real processes so tests can SIGKILL and SIGSTOP them.

use std::{
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpListener},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

use chatgw_client::{Client, Event, UserId};
use chatgw_cluster::testing::{FaultProxy, TestRedis, TestRedisCluster};
use chatgw_gateway::{auth::TokenKey, store::StoreUrl};

use super::{fresh_postgres_store, metric_value, raw_exchange, SECRET, WAIT};

/// Where the fleet's registry lives.
pub enum TestRegistry {
    Single(TestRedis),
    Cluster(TestRedisCluster),
}

impl TestRegistry {
    pub fn url(&self) -> String {
        match self {
            TestRegistry::Single(r) => r.url(),
            TestRegistry::Cluster(c) => c.url(),
        }
    }
}

/// One gateway process of the fleet.
pub struct FleetNode {
    pub node: u16,
    child: Option<Child>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// Where its link listener is bound.
    pub link_listen: SocketAddr,
    /// The proxy in front of its link listener, when cut-able.
    pub proxy: Option<FaultProxy>,
    data: tempfile::TempDir,
    extra: Vec<String>,
}

/// Several nodes on one store and one registry.
pub struct TestFleet {
    pub registry: TestRegistry,
    pub store: StoreUrl,
    pub nodes: Vec<FleetNode>,
    key: TokenKey,
    lease: Duration,
}

/// A loopback port nobody listens on now (bound, then released).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}

impl TestFleet {
    /// `n` nodes (ids 1..=n) on their own `redis-server` and a fresh
    /// PostgreSQL database, lease 2 s, links direct.
    pub fn start(n: usize) -> TestFleet {
        Self::build(TestRegistry::Single(TestRedis::start()), n, false, Duration::from_secs(2))
    }

    /// Like [`TestFleet::start`] on a Redis Cluster of three.
    pub fn start_on_redis_cluster(n: usize) -> TestFleet {
        Self::build(TestRegistry::Cluster(TestRedisCluster::start(3)), n, false, Duration::from_secs(2))
    }

    /// Like [`TestFleet::start`], each node's link listener behind a
    /// [`FaultProxy`] (other nodes dial the proxy).
    pub fn start_with_proxies(n: usize) -> TestFleet {
        Self::build(TestRegistry::Single(TestRedis::start()), n, true, Duration::from_secs(2))
    }

    /// Like [`TestFleet::start`], every node started with `flags` too
    /// (such as `--io epoll`).
    pub fn start_with_flags(n: usize, flags: &[&str]) -> TestFleet {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        Self::build_with(TestRegistry::Single(TestRedis::start()), n, false, Duration::from_secs(2), flags)
    }

    fn build(registry: TestRegistry, n: usize, proxies: bool, lease: Duration) -> TestFleet {
        Self::build_with(registry, n, proxies, lease, Vec::new())
    }

    fn build_with(registry: TestRegistry, n: usize, proxies: bool, lease: Duration, extra: Vec<String>) -> TestFleet {
        let store = fresh_postgres_store();
        let mut fleet = TestFleet { registry, store, nodes: Vec::new(), key: TokenKey::new(SECRET.as_bytes()), lease };
        for i in 0..n {
            let link_listen = free_port();
            let proxy = proxies.then(|| FaultProxy::start(link_listen));
            let node = FleetNode {
                node: (i + 1) as u16,
                child: None,
                addr: free_port(),
                admin: free_port(),
                link_listen,
                proxy,
                data: tempfile::tempdir().expect("temp dir"),
                extra: extra.clone(),
            };
            fleet.nodes.push(node);
            fleet.spawn(i);
        }
        for i in 0..n {
            fleet.wait_live_nodes(i, n);
        }
        fleet
    }

    /// The lease the nodes run with.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Start node `i`'s process (again, on the same addresses).
    pub fn spawn(&mut self, i: usize) {
        let registry = self.registry.url();
        let store = self.store.as_str().to_owned();
        let lease = format!("{}ms", self.lease.as_millis());
        let n = &mut self.nodes[i];
        let mut command = Command::new(env!("CARGO_BIN_EXE_chatgw"));
        command.args(["serve", "--workers", "2", "--secret", SECRET]);
        command.args(["--listen", &n.addr.to_string(), "--admin-listen", &n.admin.to_string()]);
        command.arg("--data").arg(n.data.path());
        command.args(["--store", &store, "--cluster", &registry, "--node-id", &n.node.to_string()]);
        command.args(["--link-listen", &n.link_listen.to_string(), "--lease", &lease]);
        if let Some(p) = &n.proxy {
            command.args(["--advertise", &p.addr().to_string()]);
        }
        command.args(&n.extra);
        let mut child = command
            .env("CHATGW_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chatgw starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, rx) = mpsc::channel();
        let node = n.node;
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listening: ws://") {
                    let _ = tx.send(());
                }
                if std::env::var_os("CHATGW_TEST_FLEET_LOG").is_some() {
                    eprintln!("[node {node}] {line}");
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(30)).unwrap_or_else(|_| panic!("node {node} did not start"));
        n.child = Some(child);
    }

    /// Extra flags node `i` gets from its next start on.
    pub fn set_flags(&mut self, i: usize, flags: &[&str]) {
        self.nodes[i].extra = flags.iter().map(|s| s.to_string()).collect();
    }

    pub fn token(&self, user: u64) -> String {
        self.key.mint(UserId(user), chatgw_gateway::auth::unix_now() + 3600)
    }

    /// `user`'s named device `device` on node `i`, synced to the present.
    pub fn online_device(&self, i: usize, user: u64, device: &str) -> Client {
        let now = chatgw_gateway::auth::unix_now();
        let device = chatgw_client::DeviceName::new(device).expect("a device name");
        let token = self.key.mint_device(UserId(user), device, now - 60, now + 3600);
        let mut c = Client::connect(self.nodes[i].addr, &token).expect("client connects");
        c.sync().unwrap();
        c.wait_for(WAIT, "synced", |e| matches!(e, Event::Synced { .. }).then_some(())).unwrap();
        c
    }

    /// A device of `user` on node `i`.
    pub fn connect(&self, i: usize, user: u64) -> Client {
        Client::connect(self.nodes[i].addr, &self.token(user)).expect("client connects")
    }

    /// A device of `user` on node `i`, synced to the present, and given
    /// time for its placement to spread (see [`TestFleet::settle`]).
    pub fn online(&self, i: usize, user: u64) -> Client {
        let mut c = self.connect(i, user);
        c.sync().unwrap();
        c.wait_for(WAIT, "synced", |e| matches!(e, Event::Synced { .. }).then_some(())).unwrap();
        c
    }

    /// Wait until every node's registry notices have had time to spread:
    /// placements are published every few milliseconds.
    pub fn settle(&self) {
        std::thread::sleep(Duration::from_millis(200));
    }

    /// SIGKILL node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`) node `i`.
    pub fn freeze(&self, i: usize, frozen: bool) {
        let c = self.nodes[i].child.as_ref().expect("running");
        let sig = if frozen { libc::SIGSTOP } else { libc::SIGCONT };
        // SAFETY: kill(2) on the pid of a child this test started and has
        // not reaped; no memory is involved.
        let rc = unsafe { libc::kill(c.id() as i32, sig) };
        assert_eq!(rc, 0, "signal node {}", self.nodes[i].node);
    }

    /// `GET path` on node `i`'s admin listener.
    pub fn admin_get(&self, i: usize, path: &str) -> String {
        raw_exchange(self.nodes[i].admin, format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
    }

    /// A metric of node `i`.
    pub fn metric(&self, i: usize, name: &str) -> f64 {
        let resp = self.admin_get(i, "/metrics");
        let body = resp.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        metric_value(&body, name)
    }

    /// Wait until node `i` sees `n` live nodes.
    pub fn wait_live_nodes(&self, i: usize, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.metric(i, "chatgw_fleet_live_nodes") as usize == n {
                return;
            }
            assert!(Instant::now() < deadline, "node {} never saw {n} live nodes", self.nodes[i].node);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for TestFleet {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            if let Some(c) = self.nodes[i].child.as_ref() {
                // A frozen node must run again to die of SIGKILL promptly.
                // SAFETY: as in `freeze`.
                unsafe { libc::kill(c.id() as i32, libc::SIGCONT) };
            }
            self.kill(i);
        }
    }
}
