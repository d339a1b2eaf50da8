//! Disk trouble with a real file system: the data directory on a small
//! tmpfs that the test fills up. The gateway must stop acknowledging, say
//! why on `/metrics` and `/healthz`, keep live connections and reads
//! working, and take writes again by itself once space is freed, losing and
//! duplicating nothing.
//!
//! Mounting needs root (CAP_SYS_ADMIN); without it the test fails and says
//! so. A read-only remount is not exercised: Linux refuses `remount,ro`
//! while the store holds files open for writing (EBUSY), so a running
//! gateway cannot be put on a read-only file system that way.

mod util;

use std::{
    collections::HashMap,
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use chatgw_client::{Client, Event, GroupId, MessageId, MessageKind, UserId};
use util::*;

/// A tmpfs mounted for one test, unmounted on drop (also when the test fails).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount(8)");
        assert!(
            out.status.success(),
            "this test needs root (CAP_SYS_ADMIN) to mount a tmpfs for the data directory: mount said {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.dir.path()).status().is_ok_and(|s| s.success());
        if !unmounted {
            // Something still holds a file there (a failed test): detach it anyway.
            let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
        }
    }
}

/// Fill the file system holding `dir` with one file; returns its path.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).expect("create filler");
    let chunk = vec![0xAB_u8; 64 * 1024];
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling the disk: {e}"),
        }
    }
    // The last pages, smaller than a chunk.
    while f.write(&[0xAB; 512]).is_ok_and(|n| n > 0) {}
    path
}

/// `len` letters that no compressor shrinks much (xorshift).
fn incompressible(len: usize) -> String {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// Send and wait for the answer to this client id: `Ok((id, duplicate))` for
/// `sent`, `Err(code)` for an `error` frame that refers to it.
fn send_and_answer(c: &mut Client, to: u64, client_id: &str, body: &str) -> Result<(MessageId, bool), String> {
    c.send_message(UserId(to), client_id, MessageKind::Text, body).unwrap();
    c.wait_for(WAIT, "sent or error", |e| match e {
        Event::Sent { client_id: cid, id, duplicate } if cid == client_id => Some(Ok((*id, *duplicate))),
        Event::Error { code, reference: Some(r), .. } if r == client_id => Some(Err(code.clone())),
        _ => None,
    })
    .unwrap()
}

/// The next `group` reply: the group and its members, sorted.
fn group_members(c: &mut Client) -> (GroupId, Vec<UserId>) {
    let (id, mut members) = c
        .wait_for(WAIT, "group", |e| match e {
            Event::Group { id, members, .. } => Some((*id, members.iter().map(|(u, _)| *u).collect::<Vec<_>>())),
            Event::Error { code, message, .. } => panic!("error {code}: {message}"),
            _ => None,
        })
        .unwrap();
    members.sort();
    (id, members)
}

/// `/healthz` from the public listener, checked to say the same as the
/// admin listener's.
fn healthz(gw: &TestGateway) -> String {
    let public = raw_exchange(gw.addr, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(public, gw.admin_get("/healthz"), "both listeners report the same health");
    public
}

/// Every non-system message in `user`'s inbox, by client id, with how often it appears.
fn inbox_counts(gw: &TestGateway, user: u64) -> HashMap<String, (MessageId, usize)> {
    let mut c = gw.connect(user);
    let mut out: HashMap<String, (MessageId, usize)> = HashMap::new();
    for e in sync_all(&mut c) {
        match e {
            Event::Message(m) if m.kind != MessageKind::System => out.entry(m.client_id).or_insert((m.id, 0)).1 += 1,
            _ => {}
        }
    }
    out
}

each_driver!(full_disk_stops_acks_says_why_and_recovers_without_restart);
fn full_disk_stops_acks_says_why_and_recovers_without_restart(io: IoDriver) {
    // Declared first, dropped last: the gateway is gone before the unmount.
    // The gateway's log, shown when the test fails.
    let _ = tracing_subscriber::fmt().with_test_writer().with_env_filter("info,fjall=warn,lsm_tree=warn").try_init();
    let disk = Tmpfs::mount("16m");
    let data = disk.path().to_path_buf();
    let gw = TestGateway::start_with(io, 2, |c| c.data = data);
    let mut a = gw.online(1);
    let mut b = gw.online(2);

    let mut c = gw.online(3);
    a.create_group("g", "team", &[UserId(2)]).unwrap();
    let group = group_members(&mut a).0;
    let (before, _) = send_and_answer(&mut a, 2, "before", "hi").expect("sent while the disk has room");
    assert_eq!(next_chat(&mut b).id, before);
    assert!(healthz(&gw).starts_with("HTTP/1.1 200"));

    let filler = fill(disk.path());
    // Larger than the unused tail of the journal's last page (which a full
    // file system still lets a write fill), and incompressible, since the
    // journal compresses large values.
    let big = incompressible(20_000);

    // No `sent` for what cannot be stored: an `unavailable` error instead.
    assert_eq!(send_and_answer(&mut a, 2, "during", &big), Err("unavailable".into()));
    assert_eq!(send_and_answer(&mut a, 2, "during", &big), Err("unavailable".into()), "still refused on a resend");
    // Receipts are not claimed either: the sender hears nothing.
    b.ack_delivered(UserId(1), &[before]).unwrap();
    assert_eq!(next_error(&mut b).0, "unavailable");
    // A membership change is refused too, and must not linger in any cache.
    a.change_members("add_members", group, &[UserId(3)]).unwrap();
    assert_eq!(next_error(&mut a).0, "unavailable");
    let quiet = a.drain(Duration::from_millis(300)).unwrap();
    assert!(
        quiet.iter().all(|e| !matches!(e, Event::Sent { .. } | Event::Receipt(_) | Event::Message(_))),
        "nothing may be acknowledged or delivered while the store refuses writes: {quiet:?}"
    );

    // Why, for operators and load balancers.
    let metrics = gw.scrape();
    assert_eq!(metric_value(&metrics, "chatgw_store_writable"), 0.0, "{metrics}");
    assert!(metric_value(&metrics, "chatgw_commit_errors_total{kind=\"no_space\"}") >= 1.0, "{metrics}");
    let health = healthz(&gw);
    assert!(health.starts_with("HTTP/1.1 503"), "{health}");
    assert!(health.contains("store not writable: no_space"), "{health}");

    // Everything that needs no write goes on: live connections stay up,
    // reads are served, new devices connect and sync.
    b.history(UserId(1), None, 10).unwrap();
    let page = b
        .wait_for(WAIT, "history", |e| match e {
            Event::History { messages, .. } => Some(messages.iter().map(|m| m.id).collect::<Vec<_>>()),
            _ => None,
        })
        .unwrap();
    assert_eq!(page, vec![before]);
    let synced = inbox_counts(&gw, 2);
    assert_eq!(synced.get("before").map(|(id, n)| (*id, *n)), Some((before, 1)));

    // Space comes back: writes are taken again, with no restart.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    let during = loop {
        match send_and_answer(&mut a, 2, "during", &big) {
            Ok((id, _)) => break id,
            Err(code) => assert_eq!(code, "unavailable"),
        }
        assert!(freed.elapsed() < WAIT, "the gateway did not take writes again within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    let recovery = freed.elapsed();
    eprintln!("first ack {recovery:?} after the disk had room again");
    assert!(during > before);
    assert_eq!(next_chat(&mut b).id, during, "live delivery works again");
    let mut after = Vec::new();
    for cid in ["after-1", "after-2", "after-3"] {
        let (id, _) = send_and_answer(&mut a, 2, cid, "hi").expect("sent after recovery");
        assert_eq!(next_chat(&mut b).id, id);
        after.push(id);
    }
    assert!(after.windows(2).all(|w| w[0] < w[1]) && after[0] > during, "ids never go backwards");
    // A resend of an id that was refused and then stored is one message.
    assert_eq!(send_and_answer(&mut a, 2, "during", &big), Ok((during, true)));
    // Receipts are taken again.
    b.ack_delivered(UserId(1), &[before, during]).unwrap();
    let receipt = a
        .wait_for(WAIT, "delivered receipt", |e| match e {
            Event::Receipt(r) if r.status == "delivered" => Some(r.ids.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(receipt, vec![before, during]);

    // The refused membership change never happened: user 3 is not a member.
    a.group_info(group).unwrap();
    assert_eq!(group_members(&mut a), (group, vec![UserId(1), UserId(2)]));
    a.send_group(group, "g-after", MessageKind::Text, "members only").unwrap();
    let (g_after, _) = sent_id(&mut a, "g-after");
    assert_eq!(next_chat(&mut b).id, g_after);
    let to_three = c.drain(Duration::from_millis(300)).unwrap();
    assert!(to_three.iter().all(|e| !matches!(e, Event::Message(_))), "{to_three:?}");

    let health = healthz(&gw);
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert_eq!(gw.metric("chatgw_store_writable"), 1.0);

    // Every acknowledged message, before and after, is in both inboxes once.
    let expected: HashMap<String, (MessageId, usize)> = [
        ("before", before),
        ("during", during),
        ("after-1", after[0]),
        ("after-2", after[1]),
        ("after-3", after[2]),
        ("g-after", g_after),
    ]
    .into_iter()
    .map(|(cid, id)| (cid.to_string(), (id, 1)))
    .collect();
    assert_eq!(inbox_counts(&gw, 2), expected);
    assert_eq!(inbox_counts(&gw, 1), expected);

    // And it is on disk: a restart on the same directory finds all of it.
    drop((a, b, c));
    drop(gw);
    let data = disk.path().to_path_buf();
    let gw = TestGateway::start_with(io, 1, |c| c.data = data);
    assert_eq!(inbox_counts(&gw, 2), expected);
    let mut a = gw.online(1);
    let (next, _) = send_and_answer(&mut a, 2, "after-restart", "hi").expect("sent after a restart");
    assert!(next > g_after, "ids never go backwards, across the reopen and a restart");
}
