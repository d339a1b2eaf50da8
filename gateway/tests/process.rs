//! The `chatgw` binary as a child process: crash durability (SIGKILL after
//! `sent`, restart on the same data or PostgreSQL database), graceful SIGTERM, running out of
//! descriptors, the admin listener's address (the paced drain is in `drain.rs`), and refusals to start.

mod util;

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    net::{SocketAddr, TcpStream},
    path::Path,
    process::{Child, Command, Stdio},
    time::Duration,
};

use chatgw_client::{Client, Event, MessageKind, UserId};
use util::*;

struct Gateway {
    child: Child,
    addr: SocketAddr,
    /// The admin listener, from its log line (`None` with `--admin-listen off`).
    admin: Option<SocketAddr>,
}

/// Start `chatgw serve --io <io>` on a free port (its admin listener on
/// another) and wait for its "listening" and "admin" lines.
fn spawn(data: &Path, io: IoDriver) -> Gateway {
    spawn_limited(data, io, None, &["--workers", "2"])
}

/// Like [`spawn`], with more flags, and with the open-files limit (soft and
/// hard) set to `nofile` if given.
fn spawn_limited(data: &Path, io: IoDriver, nofile: Option<u32>, flags: &[&str]) -> Gateway {
    let mut command = match nofile {
        Some(n) => {
            let mut c = Command::new("bash");
            c.args(["-c", r#"ulimit -n "$0" && exec "$@""#, &n.to_string(), env!("CARGO_BIN_EXE_chatgw")]);
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_chatgw")),
    };
    let admin_off = flags.windows(2).any(|w| w == ["--admin-listen", "off"]);
    command.args(["serve", "--listen", "127.0.0.1:0", "--secret", SECRET, "--io", io.name(), "--data"]);
    command.arg(data).args(flags);
    if !flags.contains(&"--admin-listen") {
        command.args(["--admin-listen", "127.0.0.1:0"]);
    }
    let mut child =
        command.env("CHATGW_LOG", "info").stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("chatgw starts");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            for prefix in ["listening: ws://", "admin: http://"] {
                if let Some(rest) = line.split(prefix).nth(1) {
                    let _ = tx.send((prefix, rest.split('/').next().unwrap().to_owned()));
                }
            }
        }
    });
    let line = |what: &str| {
        let (prefix, addr) = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| panic!("no {what} line"));
        assert!(prefix.starts_with(what), "expected the {what} line first, got {prefix}");
        addr.parse::<SocketAddr>().unwrap()
    };
    let addr = line("listening");
    let admin = (!admin_off).then(|| line("admin"));
    Gateway { child, addr, admin }
}

/// Run `chatgw serve` with `args`, expecting it to refuse to start: its
/// exit status and stderr.
fn serve_refused(args: &[&str]) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatgw"))
        .arg("serve")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chatgw starts");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("chatgw serve {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status, stderr)
}

/// The TCP ports process `pid` listens on (its sockets in LISTEN state,
/// from /proc).
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| l.to_str()?.strip_prefix("socket:[")?.strip_suffix(']').map(str::to_owned))
        .collect();
    let mut ports = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1].rsplit(':').next().unwrap();
                ports.push(u16::from_str_radix(port, 16).unwrap());
            }
        }
    }
    ports.sort();
    ports
}

fn token(user: u64) -> String {
    chatgw_gateway::auth::TokenKey::new(SECRET.as_bytes()).mint(UserId(user), chatgw_gateway::auth::unix_now() + 600)
}

each_store!(acknowledged_messages_survive_sigkill_exactly_once);
fn acknowledged_messages_survive_sigkill_exactly_once(on: Setup) {
    let dir = tempfile::tempdir().unwrap();
    let store = on.store_url();
    let flags = ["--workers", "2", "--store", store.as_str()];
    let spawn = |data: &Path, io| spawn_limited(data, io, None, &flags);
    let io = on.io;
    let n = 300;
    let mut gw = spawn(dir.path(), io);
    let mut a = Client::connect(gw.addr, &token(1)).unwrap();
    let mut acked = Vec::new();
    // Pipelined sends in bursts under the rate limit; every ack awaited.
    for burst in 0..n / 100 {
        for i in burst * 100..(burst + 1) * 100 {
            a.send_message(UserId(2), &format!("k{i}"), MessageKind::Text, &format!("body {i}")).unwrap();
        }
        for i in burst * 100..(burst + 1) * 100 {
            acked.push(sent_id(&mut a, &format!("k{i}")).0);
        }
    }
    gw.child.kill().unwrap(); // SIGKILL
    gw.child.wait().unwrap();

    let mut gw = spawn(dir.path(), io);
    let mut b = Client::connect(gw.addr, &token(2)).unwrap();
    let events = sync_all(&mut b);
    let got: Vec<_> =
        events.iter().filter_map(|e| if let Event::Message(m) = e { Some(m.clone()) } else { None }).collect();
    assert_eq!(got.len(), n, "every acknowledged message, once");
    assert_eq!(got.iter().map(|m| m.id).collect::<Vec<_>>(), acked, "in order, with the acknowledged ids");
    assert!(got.iter().enumerate().all(|(i, m)| m.body == format!("body {i}") && m.client_id == format!("k{i}")));

    // The idempotency keys survived too, and new ids stay above old ones.
    let mut a = Client::connect(gw.addr, &token(1)).unwrap();
    a.send_message(UserId(2), "k7", MessageKind::Text, "body 7").unwrap();
    assert_eq!(sent_id(&mut a, "k7"), (acked[7], true));
    a.send_message(UserId(2), "after", MessageKind::Text, "new").unwrap();
    let (new_id, dup) = sent_id(&mut a, "after");
    assert!(!dup && new_id > *acked.last().unwrap());
    let unique: HashSet<_> = acked.iter().collect();
    assert_eq!(unique.len(), n);
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
}

each_driver!(sigterm_without_drain_time_closes_connections_with_1012_and_exits_zero);
fn sigterm_without_drain_time_closes_connections_with_1012_and_exits_zero(io: IoDriver) {
    let dir = tempfile::tempdir().unwrap();
    let mut gw =
        spawn_limited(dir.path(), io, None, &["--workers", "2", "--drain-delay", "0s", "--drain-period", "0s"]);
    let mut a = Client::connect(gw.addr, &token(1)).unwrap();
    let mut b = Client::connect(gw.addr, &token(2)).unwrap();
    // Sends in flight when the signal arrives are still acknowledged or refused, never lost silently.
    // Fewer than 32: that many refusals in a row (`shutting_down` included)
    // close a connection with 1008 instead, if the signal overtakes them all.
    for i in 0..30 {
        a.send_message(UserId(2), &format!("t{i}"), MessageKind::Text, "x").unwrap();
    }
    // SAFETY: kill(2) with a valid pid of our own child and a standard signal.
    let rc = unsafe { libc::kill(gw.child.id() as i32, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let mut acked = 0;
    let code = loop {
        match a.next_event(Duration::from_secs(10)).unwrap() {
            Some(Event::Sent { .. }) => acked += 1,
            Some(Event::Error { code, .. }) => assert_eq!(code, "shutting_down"),
            Some(Event::Closed { code, .. }) => break code,
            Some(_) => {}
            None => panic!("no close from the server"),
        }
    };
    assert_eq!(code, 1012);
    assert_eq!(next_close(&mut b), 1012);
    let status = gw.child.wait().unwrap();
    assert!(status.success(), "exit status {status:?}");

    // Whatever was acknowledged is there after a restart (and perhaps sends
    // taken but closed before their `sent`: committed, not acknowledged).
    let mut gw = spawn(dir.path(), io);
    let mut b = Client::connect(gw.addr, &token(2)).unwrap();
    let got = sync_all(&mut b).iter().filter(|e| matches!(e, Event::Message(_))).count();
    assert!(got >= acked && got <= 30, "{got} stored, {acked} acknowledged");
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
}

each_driver!(out_of_descriptors_refuses_with_503_and_recovers);
fn out_of_descriptors_refuses_with_503_and_recovers(io: IoDriver) {
    let dir = tempfile::tempdir().unwrap();
    // Far more connections allowed than descriptors: the descriptors run out
    // first. One core: with two, one core's accept can take the descriptor
    // the other freed from its reserve to refuse, and serve a connection.
    let flags = ["--workers", "1", "--max-connections", "100000", "--handshake-timeout", "60s"];
    let mut gw = spawn_limited(dir.path(), io, Some(128), &flags);
    let mut idle = Vec::new();
    let refused = loop {
        assert!(idle.len() < 200, "never ran out of descriptors");
        idle.push(TcpStream::connect(gw.addr).unwrap());
        if idle.len() % 8 == 0 {
            let resp = raw_exchange(gw.addr, b"GET /healthz HTTP/1.1\r\n\r\n");
            if resp.starts_with("HTTP/1.1 503") {
                break resp;
            }
            assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
        }
    };
    assert!(refused.contains("server full"), "{refused}");
    // Several in a row are refused cleanly, none left hanging in the backlog.
    for _ in 0..5 {
        let resp = raw_exchange(gw.addr, b"GET /healthz HTTP/1.1\r\n\r\n");
        assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
    }
    drop(idle);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let resp = raw_exchange(gw.addr, b"GET /healthz HTTP/1.1\r\n\r\n");
        if resp.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no room after the idle connections left: {resp}");
        std::thread::sleep(Duration::from_millis(100));
    }
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
}

/// `/metrics` is on the address the admin line names and not on the public
/// one; with `--admin-listen off` the process listens on its public port only.
#[test]
fn admin_listen_off_binds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut gw = spawn(dir.path(), IoDriver::Epoll);
    let admin = gw.admin.expect("an admin line");
    assert!(raw_exchange(admin, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
    assert!(raw_exchange(gw.addr, b"GET /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
    let mut both = vec![gw.addr.port(), gw.addr.port(), admin.port()];
    both.sort();
    assert_eq!(listening_ports(gw.child.id()), both, "two cores' listeners and the admin listener");
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();

    let mut gw = spawn_limited(dir.path(), IoDriver::Epoll, None, &["--workers", "2", "--admin-listen", "off"]);
    assert_eq!(gw.admin, None);
    assert_eq!(listening_ports(gw.child.id()), vec![gw.addr.port(); 2], "the public listeners only");
    gw.child.kill().unwrap();
    gw.child.wait().unwrap();
}

/// Two gateways may share the public port (SO_REUSEPORT) but not an admin
/// address: the second refuses to start and says what to change.
#[test]
fn second_gateway_on_the_same_admin_address_refuses_to_start_in_one_line() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut first = spawn(a.path(), IoDriver::Epoll);
    let admin = first.admin.expect("an admin line").to_string();
    let public = first.addr.to_string();
    let data = b.path().to_str().unwrap();
    let args = ["--listen", &public, "--admin-listen", &admin, "--secret", SECRET, "--data", data, "--io", "epoll"];
    let (status, stderr) = serve_refused(&args);
    assert!(!status.success());
    assert_eq!(
        stderr,
        format!("chatgw: admin address {admin} in use: set --admin-listen to another address or off\n"),
        "one line naming the setting"
    );
    // With an admin address of its own, the same second gateway starts.
    let mut second = spawn_limited(b.path(), IoDriver::Epoll, None, &["--workers", "1"]);
    assert!(second.admin.is_some() && second.admin != first.admin);
    for gw in [&mut first, &mut second] {
        gw.child.kill().unwrap();
        gw.child.wait().unwrap();
    }
}

#[test]
fn unknown_store_scheme_is_a_one_line_error_and_a_failed_exit() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let base = ["--listen", "127.0.0.1:0", "--admin-listen", "off", "--secret", SECRET, "--data", data];
    let (status, stderr) = serve_refused(&[&base[..], &["--store", "mongodb://db/chat"]].concat());
    assert_eq!(status.code(), Some(1));
    assert_eq!(stderr, "chatgw: unknown store `mongodb://db/chat`: supported: embedded, postgres, cassandra\n");
    let (status, stderr) = serve_refused(&[&base[..], &["--store", "embedded://x"]].concat());
    assert_eq!(status.code(), Some(1));
    assert_eq!(stderr, "chatgw: store `embedded://x`: `embedded` takes no location: its store is under --data\n");
}
