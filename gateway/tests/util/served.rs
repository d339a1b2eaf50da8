//! `chatgw serve` as a child process whose log (stderr, at the filter a
//! test asks for) is kept whole, for tests that read what the gateway
//! wrote: the binary as an operator runs it, not the library in the test's
//! own process.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{mpsc, Arc, Mutex, PoisonError},
    time::Duration,
};

use super::SECRET;

/// A running `chatgw serve`.
pub struct Served {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    log: Arc<Mutex<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    /// `chatgw serve` on free loopback ports with `--data data`, `flags`
    /// and `CHATGW_LOG=log_filter`; returns once it listens.
    pub fn spawn(data: &Path, flags: &[&str], log_filter: &str) -> Served {
        Served::spawn_at("127.0.0.1:0", data, flags, log_filter)
    }

    /// [`Served::spawn`] listening on `listen` (a restart on the address
    /// clients know).
    pub fn spawn_at(listen: &str, data: &Path, flags: &[&str], log_filter: &str) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chatgw"))
            .args(["serve", "--listen", listen, "--admin-listen", "127.0.0.1:0", "--secret", SECRET])
            .args(["--workers", "2", "--data"])
            .arg(data)
            .args(flags)
            .env("CHATGW_LOG", log_filter)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chatgw serve starts");
        let stderr = child.stderr.take().expect("piped");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let kept = Arc::clone(&log);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                let text = String::from_utf8_lossy(&line);
                for prefix in ["listening: ws://", "admin: http://"] {
                    if let Some(rest) = text.split(prefix).nth(1) {
                        let _ = tx.send(rest.split('/').next().unwrap_or_default().to_owned());
                    }
                }
                let mut all = kept.lock().unwrap_or_else(PoisonError::into_inner);
                all.extend_from_slice(&line);
                all.push(b'\n');
            }
        });
        let next = || -> SocketAddr {
            rx.recv_timeout(Duration::from_secs(30))
                .expect("chatgw serve prints its addresses")
                .parse()
                .expect("an address")
        };
        let (addr, admin) = (next(), next());
        Served { child: Some(child), addr, admin, log, reader: Some(reader) }
    }

    /// Everything the gateway logged so far.
    pub fn log(&self) -> Vec<u8> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The body of the admin listener's `/metrics`.
    pub fn metrics(&self) -> String {
        let resp = super::raw_exchange(self.admin, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        resp.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).expect("a body")
    }

    /// Stop it with SIGTERM (a graceful shutdown flushes the store), wait,
    /// and return its whole log.
    pub fn stop(mut self) -> Vec<u8> {
        if let Some(mut child) = self.child.take() {
            // SAFETY: `kill` with our own child's pid and a valid signal
            // number has no memory effects.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
        }
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        self.log()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
