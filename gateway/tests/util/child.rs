//! `chatgw serve` as a child process on free ports, for tests that send it
//! signals (drain, reload).

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use super::{IoDriver, SECRET};

pub struct ChildGateway {
    pub child: Child,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
}

impl ChildGateway {
    /// `chatgw serve --io <io> --data <data> <flags>` on free ports (the
    /// admin listener too, unless `flags` set it), with `--secret` unless
    /// `flags` name a `--config`; waits for its "listening" and "admin" lines.
    pub fn spawn(data: &Path, io: IoDriver, flags: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chatgw"));
        command.args(["serve", "--listen", "127.0.0.1:0", "--io", io.name(), "--data"]).arg(data).args(flags);
        if !flags.contains(&"--config") {
            command.args(["--secret", SECRET]);
        }
        if !flags.contains(&"--admin-listen") {
            command.args(["--admin-listen", "127.0.0.1:0"]);
        }
        let mut child = command
            .env("CHATGW_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("chatgw starts");
        let [addr, admin] = logged_addresses(&mut child, ["listening: ws://", "admin: http://"], 2);
        let (addr, admin) = (addr.expect("listening line"), admin.expect("admin line"));
        ChildGateway { child, addr, admin }
    }

    /// Send `signal` to the process.
    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) with the pid of our own child and a standard signal.
        let rc = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(rc, 0, "kill");
    }

    /// Wait for the process to exit, at most `within`: its status.
    pub fn exit_within(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("still running after {within:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildGateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read a `chatgw serve` child's log for the addresses it logs after each
/// of `prefixes` (`listening: ws://`, `admin: http://`, `media: http://`),
/// until `wanted` of them have appeared (at most 20 s): each address, or
/// `None` for a prefix not seen. The log is read to its end on a thread.
pub fn logged_addresses<const N: usize>(
    child: &mut Child,
    prefixes: [&'static str; N],
    wanted: usize,
) -> [Option<SocketAddr>; N] {
    let stderr = child.stderr.take().expect("the child's stderr is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            for (index, prefix) in prefixes.into_iter().enumerate() {
                if let Some(rest) = line.split(prefix).nth(1) {
                    let _ = tx.send((index, rest.split(['/', ',']).next().unwrap().parse::<SocketAddr>().unwrap()));
                }
            }
        }
    });
    let mut addresses = [None; N];
    for _ in 0..wanted {
        let (index, address) = rx.recv_timeout(Duration::from_secs(20)).expect("chatgw logs its addresses");
        addresses[index] = Some(address);
    }
    addresses
}

/// `GET path` over a new connection: the status code, or `None` when the
/// connection is refused or closed without an answer.
pub fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(super::WAIT)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).ok()?;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).split(' ').nth(1)?.parse().ok()
}
