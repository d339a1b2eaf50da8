//! `redis-server` processes for tests: one server, or a Redis Cluster of
//! several masters, on free loopback ports, persisting nothing.
//!
//! Real processes, so a test can kill one (SIGKILL), restart it with its
//! data gone (as after a crash with no persistence), or freeze it
//! (SIGSTOP). Every wait is bounded; a helper that cannot get its service
//! up panics with what it saw, which fails the test that asked for it.

use std::{
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use tempfile::TempDir;

/// How long a server gets to answer after it was started.
const READY: Duration = Duration::from_secs(10);
/// How long a new cluster gets to agree on its slots.
const CLUSTER_READY: Duration = Duration::from_secs(30);
/// The cluster bus listens on the client port plus this.
const BUS_OFFSET: u16 = 10_000;

/// One `redis-server` on a free loopback port.
pub struct TestRedis {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    extra: Vec<String>,
}

impl TestRedis {
    /// Start a server and wait until it answers `PING`.
    pub fn start() -> TestRedis {
        Self::start_with(Vec::new(), false)
    }

    /// A server started with `extra` arguments (each `--name value` pair as
    /// two).
    fn start_with(extra: Vec<String>, with_bus: bool) -> TestRedis {
        let dir = tempfile::tempdir().expect("a temp dir for redis-server");
        let mut last = String::new();
        // Another process may take the free port before the server binds it.
        for _ in 0..10 {
            let port = free_port(with_bus);
            match spawn_ready(port, dir.path(), &extra) {
                Ok(child) => return TestRedis { port, dir, child: Some(child), extra },
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kill it (SIGKILL) and wait for it to be gone.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kill it if running and start it again on the same port, its data
    /// gone; wait until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + READY;
        loop {
            match spawn_ready(self.port, self.dir.path(), &self.extra) {
                Ok(child) => {
                    self.child = Some(child);
                    return;
                }
                // The old socket may linger a moment.
                Err(e) if Instant::now() < deadline => {
                    tracing::debug!(error = %e, "redis-server restart: trying again");
                    thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("redis-server did not restart on port {}: {e}", self.port),
            }
        }
    }

    /// Freeze it (SIGSTOP): connections stay open, nothing answers.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Let a frozen server run again (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        let Some(child) = &self.child else { return };
        let Ok(pid) = libc::pid_t::try_from(child.id()) else { return };
        // SAFETY: `kill` takes plain integers and touches no memory of ours;
        // `pid` is our own child, not yet waited for, so it names no other
        // process.
        unsafe {
            libc::kill(pid, signal);
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A Redis Cluster of masters (no replicas) on free loopback ports.
pub struct TestRedisCluster {
    nodes: Vec<TestRedis>,
}

impl TestRedisCluster {
    /// Start `n` (at least 3) cluster-enabled servers, create the cluster
    /// with `redis-cli --cluster create`, and wait until every node says
    /// `cluster_state:ok`.
    pub fn start(n: usize) -> TestRedisCluster {
        assert!(n >= 3, "a Redis Cluster needs at least 3 masters");
        let nodes: Vec<TestRedis> = (0..n).map(|_| TestRedis::start_cluster_node()).collect();
        let addrs: Vec<String> = nodes.iter().map(|r| format!("127.0.0.1:{}", r.port)).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli runs");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let cluster = TestRedisCluster { nodes };
        cluster.wait_ok();
        cluster
    }

    /// `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,...`.
    pub fn url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().map(|r| format!("127.0.0.1:{}", r.port)).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// Each node's own `redis://127.0.0.1:<port>`.
    pub fn node_urls(&self) -> Vec<String> {
        self.nodes.iter().map(TestRedis::url).collect()
    }

    fn wait_ok(&self) {
        let deadline = Instant::now() + CLUSTER_READY;
        for node in &self.nodes {
            loop {
                let info = request(node.port, "CLUSTER INFO").unwrap_or_default();
                if info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384") {
                    break;
                }
                assert!(Instant::now() < deadline, "the Redis Cluster is not ok on port {}: {info}", node.port);
                thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl TestRedis {
    /// A cluster-enabled server whose bus port (client port + 10000) is
    /// free too.
    fn start_cluster_node() -> TestRedis {
        let extra =
            ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"];
        Self::start_with(extra.map(String::from).to_vec(), true)
    }
}

/// A loopback port nobody listens on now (and, for a cluster node, its bus
/// port too).
fn free_port(with_bus: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
        let port = listener.local_addr().expect("a bound address").port();
        if !with_bus {
            return port;
        }
        let Some(bus) = port.checked_add(BUS_OFFSET) else { continue };
        if TcpListener::bind(("127.0.0.1", bus)).is_ok() {
            return port;
        }
    }
}

fn redis_server(port: u16, dir: &Path, extra: &[String]) -> Result<Child, String> {
    Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting redis-server: {e}"))
}

/// Start `redis-server` on `port` and wait until it answers `PING`.
fn spawn_ready(port: u16, dir: &Path, extra: &[String]) -> Result<Child, String> {
    let mut child = redis_server(port, dir, extra)?;
    let deadline = Instant::now() + READY;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("redis-server on port {port} exited: {status}"));
        }
        if request(port, "PING").is_ok_and(|r| r.starts_with("+PONG")) {
            return Ok(child);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("redis-server on port {port} did not answer PING"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// One inline command to the server on `port`: its first reply line, or a
/// bulk reply's text.
fn request(port: u16, command: &str) -> std::io::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_millis(500))?;
    stream.set_read_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(buf.get(..n).unwrap_or_default());
        let text = String::from_utf8_lossy(&reply);
        let Some((first, rest)) = text.split_once("\r\n") else { continue };
        match first.strip_prefix('$').and_then(|len| len.parse::<usize>().ok()) {
            Some(len) if rest.len() >= len => return Ok(rest.get(..len).unwrap_or(rest).to_owned()),
            Some(_) => continue,
            None => return Ok(first.to_owned()),
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}
