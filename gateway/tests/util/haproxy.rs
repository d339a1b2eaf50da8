//! A real HAProxy in front of a test gateway: TCP mode, one frontend
//! relaying with a PROXY v2 header and one with v1, on free loopback ports,
//! from a generated config (or any two frontends of a given config).
//! Debian's `haproxy` package (.ci/run installs it).

use std::{
    net::{SocketAddr, TcpListener, TcpStream},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub struct Haproxy {
    child: Child,
    /// Relays to the gateway with `send-proxy-v2` (or a config's first frontend).
    pub v2: SocketAddr,
    /// Relays to the gateway with `send-proxy` (v1) (or its second).
    pub v1: SocketAddr,
    _dir: tempfile::TempDir,
}

/// A free loopback port (bound, then let go).
pub fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}

impl Haproxy {
    /// HAProxy relaying to `gateway`, health-checking it every 200 ms
    /// through the v2 server line (checks carry a LOCAL header).
    pub fn start(gateway: SocketAddr) -> Self {
        let (v2, v1) = (free_port(), free_port());
        Self::run(
            &format!(
                "frontend fe_v2\n  bind {v2}\n  default_backend be_v2\n\
                 backend be_v2\n  server gw {gateway} send-proxy-v2 check inter 200\n\
                 frontend fe_v1\n  bind {v1}\n  default_backend be_v1\n\
                 backend be_v1\n  server gw {gateway} send-proxy\n"
            ),
            "",
            (v2, v1),
        )
    }

    /// HAProxy with `sections` after TCP-mode defaults (and `global` lines
    /// `global`), listening on the two frontends `fronts`. Without
    /// `SO_REUSEPORT` (`noreuseport`): the frontends' ports were free a
    /// moment ago, and with it HAProxy could share one with a gateway of a
    /// test running alongside (which listens with `SO_REUSEPORT`), so that
    /// the kernel would split a test's connections between the two.
    pub fn run(sections: &str, global: &str, fronts: (SocketAddr, SocketAddr)) -> Self {
        let (v2, v1) = fronts;
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = dir.path().join("haproxy.cfg");
        std::fs::write(
            &cfg,
            format!(
                "global\n  maxconn 1000\n  noreuseport\n{global}\
                 defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n{sections}"
            ),
        )
        .expect("writing haproxy.cfg");
        let bin = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("haproxy");
        let child = Command::new(bin)
            .arg("-db")
            .arg("-f")
            .arg(&cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin} (Debian package haproxy): {e}"));
        let mut h = Haproxy { child, v2, v1, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while [v2, v1].iter().any(|a| TcpStream::connect(a).is_err()) {
            if let Ok(Some(status)) = h.child.try_wait() {
                panic!("haproxy exited ({status}) with config:\n{}", std::fs::read_to_string(&cfg).unwrap_or_default());
            }
            assert!(Instant::now() < deadline, "haproxy did not listen on {v2} and {v1}");
            std::thread::sleep(Duration::from_millis(50));
        }
        h
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
