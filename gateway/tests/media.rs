//! Media by signed URL over real sockets (docs/MEDIA.md): a file is
//! uploaded in parts to the gateway's media listener and downloaded by a
//! member of the conversation, whole and by range; URLs that expired, were
//! tampered with, are used with another method or with a body of another
//! size are refused with their documented status; a part whose connection
//! was cut is `PUT` again; non-members, oversized files and a spent quota
//! are refused; retention deletes old objects; a 100 MB upload and
//! download through a `chatgw serve` process keeps its memory bounded.

mod util;

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    process::{Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use chatgw_client::{ConversationRef, Event, GroupId, MessageKind, UserId};
use chatgw_gateway::Config;
use chatgw_media::{embedded::UrlSigner, MediaConversation, MediaKey};
use chatgw_protocol::MediaKind;
use util::{child::logged_addresses, media::*, *};

const MEDIA_SECRET: &str = "media-secret";

fn with_media(c: &mut Config) {
    c.media.listen = Some("127.0.0.1:0".parse().unwrap());
    c.media.secret = Some(MEDIA_SECRET.into());
}

fn media_gateway(io: IoDriver, tune: impl FnOnce(&mut Config)) -> (TestGateway, SocketAddr) {
    let gw = TestGateway::start_with(io, 1, |c| {
        with_media(c);
        tune(c);
    });
    let media = gw.handle().media_addr().expect("the media listener");
    (gw, media)
}

fn signer(media: SocketAddr) -> UrlSigner {
    UrlSigner::new(MEDIA_SECRET.as_bytes(), &format!("http://{media}"))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn create_group(c: &mut chatgw_client::Client, members: &[u64]) -> GroupId {
    let users: Vec<UserId> = members.iter().map(|u| UserId(*u)).collect();
    c.create_group("g-1", "Team", &users).unwrap();
    c.wait_for(WAIT, "group", |e| match e {
        Event::Group { id, .. } => Some(*id),
        _ => None,
    })
    .unwrap()
}

each_driver!(a_member_downloads_what_another_uploaded);
fn a_member_downloads_what_another_uploaded(io: IoDriver) {
    let (gw, _) = media_gateway(io, |_| {});
    let (mut a, mut b, mut stranger) = (gw.online(1), gw.online(2), gw.online(3));
    let size = 100_000u64;
    a.upload_media("u-1", ConversationRef::Peer(UserId(2)), MediaKind::Image, size, "application/octet-stream")
        .unwrap();
    let slot = upload_slot(&mut a, "u-1");
    assert!(slot.media.starts_with("d1-2."), "{}", slot.media);
    assert_eq!((slot.parts.len(), slot.part_size), (1, 8 << 20));
    assert!(slot.expires > unix_now() * 1000 + 14 * 60 * 1000, "15 minutes by default");
    let tags = put_pattern(&slot, size);
    // Not downloadable before completion.
    assert_eq!(download_url(&mut a, "d-0", &slot.media).unwrap_err().1, "no such media object");
    complete(&mut a, "c-1", &slot, &tags);
    complete(&mut a, "c-2", &slot, &tags);
    let body = format!("{{\"media\":\"{}\"}}", slot.media);
    a.send_message(UserId(2), "m-1", MessageKind::Image, &body).unwrap();
    sent_id(&mut a, "m-1");
    let m = next_message(&mut b);
    let media: serde_json::Value = serde_json::from_str(&m.body).unwrap();
    let url = download_url(&mut b, "d-1", media["media"].as_str().unwrap()).unwrap();
    let whole = get(&url, "");
    assert_eq!(whole.status, 200, "{}", whole.text());
    assert_eq!(whole.header("content-type"), Some("application/octet-stream"));
    assert_eq!(whole.body.len() as u64, size);
    assert!(whole.body.iter().enumerate().all(|(i, b)| *b == pattern(i as u64)), "the bytes come back");
    let part = get(&url, "Range: bytes=1000-1999\r\n");
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/100000"));
    assert_eq!(part.body, (1000..2000).map(pattern).collect::<Vec<u8>>());
    let tail = get(&url, "Range: bytes=-10\r\n");
    assert_eq!((tail.status, tail.header("content-range")), (206, Some("bytes 99990-99999/100000")));
    let outside = get(&url, "Range: bytes=100000-\r\n");
    assert_eq!((outside.status, outside.header("content-range")), (416, Some("bytes */100000")));
    // Someone outside the conversation gets no URL, whoever forwarded the id.
    let refused = download_url(&mut stranger, "d-2", &slot.media).unwrap_err();
    assert_eq!(refused, ("not_allowed".into(), "not a member of this conversation".into()));
    let (code, _) = {
        stranger.complete_media("c-3", &slot.media, &slot.upload, &tags).unwrap();
        media_error(&mut stranger, "c-3")
    };
    assert_eq!(code, "not_allowed");
    assert_eq!(download_url(&mut b, "d-3", "g1.bad").unwrap_err().0, "bad_field");
    let m = &gw.handle().metrics_text();
    assert_eq!(metric_value(m, "chatgw_media_uploads_started_total"), 1.0);
    assert_eq!(metric_value(m, "chatgw_media_uploads_completed_total"), 2.0);
    assert_eq!(metric_value(m, "chatgw_media_bytes_in_total"), size as f64);
    assert!(metric_value(m, "chatgw_media_bytes_out_total") >= size as f64);
    assert_eq!(metric_value(m, "chatgw_media_refusals_total{reason=\"not_member\"}"), 2.0);
}

#[test]
fn group_media_is_for_its_members() {
    let (gw, _) = media_gateway(IoDriver::Epoll, |_| {});
    let (mut a, mut b, mut c) = (gw.online(1), gw.online(2), gw.online(3));
    let group = create_group(&mut a, &[2]);
    c.upload_media("u-x", ConversationRef::Group(group), MediaKind::Audio, 10, "audio/ogg").unwrap();
    assert_eq!(media_error(&mut c, "u-x"), ("not_allowed".into(), "not a member of this conversation".into()));
    a.upload_media("u-1", ConversationRef::Group(group), MediaKind::Audio, 10, "audio/ogg").unwrap();
    let slot = upload_slot(&mut a, "u-1");
    assert_eq!(slot.media.split('.').next().unwrap(), format!("g{}", group.0));
    complete(&mut a, "c-1", &slot, &put_pattern(&slot, 10));
    let url = download_url(&mut b, "d-1", &slot.media).unwrap();
    assert_eq!(get(&url, "").body, (0..10).map(pattern).collect::<Vec<u8>>());
    assert_eq!(download_url(&mut c, "d-2", &slot.media).unwrap_err().0, "not_allowed");
}

#[test]
fn urls_are_refused_with_their_documented_status() {
    let (gw, media) = media_gateway(IoDriver::Epoll, |_| {});
    let mut a = gw.online(1);
    a.upload_media("u-1", ConversationRef::Peer(UserId(2)), MediaKind::Document, 1000, "text/plain").unwrap();
    let slot = upload_slot(&mut a, "u-1");
    let put = &slot.parts[0];
    let body = vec![7u8; 1000];
    let refused = |r: Response, status: u16, code: &str| {
        assert_eq!(r.status, status, "{}", r.text());
        assert!(r.text().starts_with(&format!("{code}: ")), "{}", r.text());
    };
    // Wrong method: a part URL takes PUT only, an object URL GET and HEAD.
    let r = request("GET", put, "", b"");
    assert_eq!(r.header("allow"), Some("PUT"));
    refused(r, 405, "wrong_method");
    refused(request("DELETE", put, "", b""), 405, "wrong_method");
    // A body of another size than signed.
    refused(request("PUT", put, "", &[7u8; 1001]), 413, "too_large");
    refused(request("PUT", put, "", &[7u8; 999]), 400, "too_small");
    refused(request("PUT", put, "Expect: 100-continue\r\n", &[7u8; 5000]), 413, "too_large");
    // Tampered: another size, or a flipped signature digit.
    refused(request("PUT", &put.replace("size=1000", "size=1001"), "", &[7u8; 1001]), 403, "bad_signature");
    let mut flipped = put.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == 'a' { 'b' } else { 'a' });
    refused(request("PUT", &flipped, "", &body), 403, "bad_signature");
    // Expired: a URL signed with the gateway's secret, expired a second ago.
    let key = MediaKey::parse(&slot.media).unwrap();
    let expired = signer(media).part_url(&key, 1, 1000, unix_now() - 1);
    let r = request("PUT", &expired, "", &body);
    refused(r, 403, "expired");
    // The right request passes, with its tag.
    let ok = request("PUT", put, "Expect: 100-continue\r\n", &body);
    assert_eq!(ok.status, 200, "{}", ok.text());
    let tag = ok.header("etag").unwrap().to_owned();
    complete(&mut a, "c-1", &slot, &[tag]);
    // An object URL used to PUT; an unknown object; a path that is no URL.
    let get_url = download_url(&mut a, "d-1", &slot.media).unwrap();
    refused(request("PUT", &get_url, "", &body), 405, "wrong_method");
    let unknown = MediaKey::new(MediaConversation::Direct(UserId(1), UserId(2)), [9; 16]);
    refused(get(&signer(media).object_url(&unknown, 5, unix_now() + 60), ""), 404, "not_found");
    refused(get(&format!("http://{media}/etc/passwd"), ""), 404, "not_found");
    // A part PUT after completion finds no upload.
    refused(request("PUT", put, "", &body), 404, "not_found");
    let head = request("HEAD", &get_url, "", b"");
    assert_eq!((head.status, head.header("content-length")), (200, Some("1000")));
    assert_eq!(gw.metric("chatgw_media_refusals_total{reason=\"expired\"}"), 1.0);
    assert_eq!(gw.metric("chatgw_media_refusals_total{reason=\"bad_signature\"}"), 2.0);
}

#[test]
fn a_part_cut_off_mid_transfer_is_put_again() {
    let (gw, _) = media_gateway(IoDriver::Epoll, |c| c.media.part_size = 1 << 20);
    let mut a = gw.online(1);
    let size = 3 * (1 << 20) - 5;
    a.upload_media("u-1", ConversationRef::Peer(UserId(2)), MediaKind::Video, size, "video/mp4").unwrap();
    let slot = upload_slot(&mut a, "u-1");
    assert_eq!(slot.parts.len(), 3);
    let mut tags = put_pattern(&slot, size);
    // Part 2 again, cut after half its bytes: the stored part stays whole.
    let (addr, target) = split_url(&slot.parts[1]);
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 1 << 20).unwrap();
    let mut half = vec![0u8; 1 << 19];
    fill(&mut half, 1 << 20);
    half[0] ^= 0xff;
    s.write_all(&half).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(200));
    // A wrong tag for part 2 is refused, nothing published.
    let good = tags[1].clone();
    tags[1] = "\"00\"".into();
    a.complete_media("c-1", &slot.media, &slot.upload, &tags).unwrap();
    let (code, message) = media_error(&mut a, "c-1");
    assert_eq!(code, "bad_field");
    assert_eq!(message, "field `tags`: upload incomplete: part 2: the tag does not match the part");
    tags[1] = good;
    complete(&mut a, "c-2", &slot, &tags);
    let r = get(&download_url(&mut a, "d-1", &slot.media).unwrap(), "");
    assert_eq!(r.body.len() as u64, size);
    assert!(r.body.iter().enumerate().all(|(i, b)| *b == pattern(i as u64)));

    // A part never PUT whole: its cut connection leaves it missing, the
    // completion says so, and PUTting it again completes the upload.
    a.upload_media("u-2", ConversationRef::Peer(UserId(2)), MediaKind::Video, size, "video/mp4").unwrap();
    let slot = upload_slot(&mut a, "u-2");
    let (addr, target) = split_url(&slot.parts[2]);
    let mut s = TcpStream::connect(addr).unwrap();
    let last = size - 2 * (1 << 20);
    write!(s, "PUT {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {last}\r\n\r\n").unwrap();
    s.write_all(&vec![1u8; 1000]).unwrap();
    s.shutdown(std::net::Shutdown::Both).unwrap();
    let mut tags = Vec::new();
    for (i, url) in slot.parts.iter().enumerate().take(2) {
        let start = i as u64 * slot.part_size;
        let r = request_streamed("PUT", url, "", slot.part_size, &mut |b, at| fill(b, start + at), &mut |_| {});
        tags.push(r.header("etag").unwrap().to_owned());
    }
    tags.push("\"x\"".into());
    a.complete_media("c-3", &slot.media, &slot.upload, &tags).unwrap();
    assert_eq!(media_error(&mut a, "c-3").1, "field `tags`: upload incomplete: part 3 is missing");
    let start = 2 * slot.part_size;
    let r = request_streamed("PUT", &slot.parts[2], "", last, &mut |b, at| fill(b, start + at), &mut |_| {});
    assert_eq!(r.status, 200);
    tags[2] = r.header("etag").unwrap().to_owned();
    complete(&mut a, "c-4", &slot, &tags);
}

#[test]
fn sizes_per_kind_and_the_daily_quota_are_enforced() {
    let (gw, _) = media_gateway(IoDriver::Epoll, |c| {
        c.media.max_size = "image=1K,document=8K".parse().unwrap();
        c.media.quota = 10_000;
    });
    let mut a = gw.online(1);
    let to = ConversationRef::Peer(UserId(2));
    a.upload_media("u-1", to, MediaKind::Image, 1025, "image/png").unwrap();
    assert_eq!(media_error(&mut a, "u-1"), ("bad_field".into(), "field `size`: an image is at most 1024 bytes".into()));
    a.upload_media("u-2", to, MediaKind::Document, 8193, "x/y").unwrap();
    assert_eq!(media_error(&mut a, "u-2").1, "field `size`: a document is at most 8192 bytes");
    a.upload_media("u-3", to, MediaKind::Document, 6000, "x/y").unwrap();
    upload_slot(&mut a, "u-3");
    a.upload_media("u-4", to, MediaKind::Document, 6000, "x/y").unwrap();
    assert_eq!(
        media_error(&mut a, "u-4"),
        (
            "rate_limited".into(),
            "the daily media quota of 10000 bytes would be exceeded: 6000 bytes used today (UTC)".into()
        )
    );
    a.upload_media("u-5", to, MediaKind::Image, 1000, "image/png").unwrap();
    upload_slot(&mut a, "u-5");
    // Another user has their own quota.
    let mut b = gw.online(2);
    b.upload_media("u-6", ConversationRef::Peer(UserId(1)), MediaKind::Document, 8000, "x/y").unwrap();
    upload_slot(&mut b, "u-6");
    assert_eq!(gw.metric("chatgw_media_refusals_total{reason=\"quota\"}"), 1.0);
}

#[test]
fn media_off_refuses_the_frames() {
    let gw = TestGateway::start(IoDriver::Epoll, 1);
    assert!(gw.handle().media_addr().is_none());
    let mut a = gw.online(1);
    a.upload_media("u-1", ConversationRef::Peer(UserId(2)), MediaKind::Image, 10, "image/png").unwrap();
    assert_eq!(media_error(&mut a, "u-1"), ("not_allowed".into(), "media are off on this gateway".into()));
}

#[test]
fn retention_deletes_old_objects_and_unfinished_uploads() {
    let (gw, _) = media_gateway(IoDriver::Epoll, |c| c.media.retention = Duration::from_secs(2));
    let mut a = gw.online(1);
    let to = ConversationRef::Peer(UserId(2));
    a.upload_media("u-1", to, MediaKind::Image, 10, "image/png").unwrap();
    let done = upload_slot(&mut a, "u-1");
    complete(&mut a, "c-1", &done, &put_pattern(&done, 10));
    a.upload_media("u-2", to, MediaKind::Image, 10, "image/png").unwrap();
    let unfinished = upload_slot(&mut a, "u-2");
    let url = download_url(&mut a, "d-1", &done.media).unwrap();
    assert_eq!(get(&url, "").status, 200);
    let media_dir = gw.dir.path().join("media");
    let deadline = Instant::now() + Duration::from_secs(15);
    while gw.metric("chatgw_media_objects_expired_total") < 2.0 {
        assert!(Instant::now() < deadline, "retention did not delete both");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&url, "").status, 404);
    assert_eq!(download_url(&mut a, "d-2", &done.media).unwrap_err().1, "no such media object");
    let r = request("PUT", &unfinished.parts[0], "", &[0u8; 10]);
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(std::fs::read_dir(media_dir.join("objects")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(media_dir.join("uploads")).unwrap().count(), 0);
}

/// Resident memory of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// `chatgw serve` with media on free ports: the child, the WebSocket
/// address and the media address, from its log lines.
fn spawn_serve(data: &std::path::Path) -> (std::process::Child, SocketAddr, SocketAddr) {
    let (child, ws, media) = spawn_serve_with(data, &["--media-listen", "127.0.0.1:0"], &[]);
    (child, ws, media.expect("media line"))
}

/// `chatgw serve` with extra arguments and environment: the child, the
/// WebSocket address and, when it listens, the embedded media address.
fn spawn_serve_with(
    data: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, SocketAddr, Option<SocketAddr>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_chatgw"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off"])
        .args(args)
        .args(["--workers", "1", "--secret", SECRET, "--data"])
        .arg(data)
        .envs(env.iter().copied())
        .env("CHATGW_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chatgw starts");
    let wanted = if args.contains(&"--media-listen") { 2 } else { 1 };
    let [ws, media] = logged_addresses(&mut child, ["listening: ws://", "media: http://"], wanted);
    (child, ws.expect("listening line"), media)
}

#[test]
fn a_hundred_megabytes_up_and_down_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, ws, _) = spawn_serve(dir.path());
    let key = chatgw_gateway::auth::TokenKey::new(SECRET.as_bytes());
    let token = |u| key.mint(UserId(u), chatgw_gateway::auth::unix_now() + 3600);
    let mut a = chatgw_client::Client::connect(ws, &token(1)).unwrap();
    let mut b = chatgw_client::Client::connect(ws, &token(2)).unwrap();
    let pid = child.id();
    let size = 100_000_000u64;
    a.upload_media("u-1", ConversationRef::Peer(UserId(2)), MediaKind::Video, size, "video/mp4").unwrap();
    let slot = upload_slot(&mut a, "u-1");
    assert_eq!(slot.parts.len(), 12);
    let before = rss_kib(pid);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(rss_kib(pid), std::sync::atomic::Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let tags = put_pattern(&slot, size);
    complete(&mut a, "c-1", &slot, &tags);
    let url = download_url(&mut b, "d-1", &slot.media).unwrap();
    let mut at = 0u64;
    let mut bad = None;
    let r = request_streamed("GET", &url, "", 0, &mut |_, _| {}, &mut |chunk| {
        for (i, byte) in chunk.iter().enumerate() {
            if bad.is_none() && *byte != pattern(at + i as u64) {
                bad = Some(at + i as u64);
            }
        }
        at += chunk.len() as u64;
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.join().unwrap();
    assert_eq!((r.status, at, bad), (200, size, None));
    let grew = peak.load(std::sync::atomic::Ordering::Relaxed).saturating_sub(before);
    eprintln!("gateway RSS: {before} KiB before, grew by at most {grew} KiB during 200 MB of transfers");
    assert!(grew < 32 * 1024, "the gateway's RSS grew by {grew} KiB moving a 100 MB file");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `--media s3://...` against moto: the slot's URLs are the bucket's own,
/// the bytes go between client and bucket, the gateway completes the
/// multipart upload and signs the download. (Retention off: moto reports
/// every unfinished upload as initiated in 2010, so a pass would abort it.)
#[test]
fn s3_media_go_between_client_and_bucket() {
    let Some(moto) = chatgw_media::testing::Moto::start() else { return };
    moto.create_bucket("media");
    let dir = tempfile::tempdir().unwrap();
    let url = moto.url("media");
    let credentials = [("AWS_ACCESS_KEY_ID", "test"), ("AWS_SECRET_ACCESS_KEY", "test")];
    let (mut child, ws, media) = spawn_serve_with(
        dir.path(),
        &["--media", &url, "--media-part-size", "5M", "--media-retention", "0s"],
        &credentials,
    );
    assert_eq!(media, None, "no media listener with S3");
    let key = chatgw_gateway::auth::TokenKey::new(SECRET.as_bytes());
    let token = |u| key.mint(UserId(u), chatgw_gateway::auth::unix_now() + 3600);
    let mut a = chatgw_client::Client::connect(ws, &token(1)).unwrap();
    let mut b = chatgw_client::Client::connect(ws, &token(2)).unwrap();

    let size = 12u64 << 20;
    a.upload_media("u-1", ConversationRef::Peer(UserId(2)), MediaKind::Video, size, "video/mp4").unwrap();
    let slot = upload_slot(&mut a, "u-1");
    assert_eq!((slot.parts.len(), slot.part_size), (3, 5 << 20));
    let bucket = format!("{}/media/{}?", moto.endpoint, slot.media);
    assert!(slot.parts.iter().all(|p| p.starts_with(&bucket) && p.contains("X-Amz-Signature=")), "{:?}", slot.parts);
    // moto keeps connections open: ask it to close each after its answer.
    let tags: Vec<String> = slot
        .parts
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let start = i as u64 * slot.part_size;
            let len = slot.part_size.min(size - start);
            let r = request_streamed(
                "PUT",
                url,
                "Connection: close\r\n",
                len,
                &mut |buf, at| fill(buf, start + at),
                &mut |_| {},
            );
            assert_eq!(r.status, 200, "part {}: {}", i + 1, r.text());
            r.header("etag").expect("an ETag").to_owned()
        })
        .collect();
    assert_eq!(download_url(&mut b, "d-0", &slot.media).unwrap_err().1, "no such media object");
    complete(&mut a, "c-1", &slot, &tags);
    let url = download_url(&mut b, "d-1", &slot.media).unwrap();
    assert!(url.starts_with(&bucket), "{url}");
    let r = get(&url, "Connection: close\r\nRange: bytes=5242878-5242881\r\n");
    assert_eq!(r.status, 206, "{}", r.text());
    assert_eq!(r.body, (5_242_878..5_242_882).map(pattern).collect::<Vec<u8>>());
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn an_s3_media_url_without_credentials_is_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_chatgw"))
        .args(["serve", "--listen", "127.0.0.1:0", "--admin-listen", "off", "--media", "s3://bucket?region=eu-west-1"])
        .args(["--secret", SECRET, "--data"])
        .arg(dir.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AWS_ACCESS_KEY_ID is not set"), "{stderr}");
}

#[test]
fn urls_stay_valid_across_a_restart_with_the_generated_secret() {
    let dir = tempfile::tempdir().unwrap();
    let config = |media: SocketAddr| {
        let mut c = Config::new("127.0.0.1:0".parse().unwrap(), dir.path().into(), SECRET.into());
        (c.workers, c.io, c.media.listen) = (1, IoDriver::Epoll, Some(media));
        c
    };
    let gw = chatgw_gateway::Server::start(config("127.0.0.1:0".parse().unwrap())).unwrap();
    let media = gw.media_addr().unwrap();
    let key = chatgw_gateway::auth::TokenKey::new(SECRET.as_bytes());
    let mut a =
        chatgw_client::Client::connect(gw.addr(), &key.mint(UserId(1), chatgw_gateway::auth::unix_now() + 60)).unwrap();
    a.upload_media("u-1", ConversationRef::Peer(UserId(2)), MediaKind::Image, 10, "image/png").unwrap();
    let slot = upload_slot(&mut a, "u-1");
    complete(&mut a, "c-1", &slot, &put_pattern(&slot, 10));
    let url = download_url(&mut a, "d-1", &slot.media).unwrap();
    drop(a);
    gw.shutdown();
    assert!(dir.path().join("media/secret").exists(), "the secret is kept under --data");
    let gw = chatgw_gateway::Server::start(config(media)).unwrap();
    let r = get(&url, "");
    assert_eq!((r.status, r.body), (200, (0..10).map(pattern).collect::<Vec<u8>>()));
    gw.shutdown();
}
