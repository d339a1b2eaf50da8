//! Encrypted media end to end: a real gateway with the embedded media
//! backend, devices that encrypt, upload, announce, download, check and
//! decrypt with `chatgw-media-client` (docs/MEDIA.md, "Media reference").
//!
//! What is shown: every member of a group gets the sender's exact bytes;
//! someone outside the group gets no URL; what the gateway stores under
//! its data directory is ciphertext. (Cut connections are the media
//! client's own tests, media-client/tests/embedded_backend.rs.)

mod util;

use std::{
    fs,
    path::{Path, PathBuf},
    time::Instant,
};

use chatgw_client::{Client, ConversationRef, Event, GroupId, MessageEvent};
use chatgw_media_client::{
    gateway::{message_kind, reference_in, MediaTransferError, MediaTransfers},
    MediaDetails,
};
use chatgw_protocol::MediaKind;
use util::*;

/// Something no ciphertext contains by chance.
const MARKER: &[u8] = b"PLAINTEXT-MARKER-7f3a9c-chatgw-media-e2e";

/// A gateway with media stored under its data directory.
fn media_gateway() -> TestGateway {
    TestGateway::start_with(IoDriver::Epoll, 2, |c| {
        c.media.listen = Some("127.0.0.1:0".parse().unwrap());
    })
}

/// A file of `len` bytes that repeats [`MARKER`] between counters.
fn marked_file(dir: &Path, name: &str, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while bytes.len() < len {
        bytes.extend_from_slice(MARKER);
        bytes.extend_from_slice(&i.to_le_bytes());
        i += 1;
    }
    bytes.truncate(len);
    fs::write(dir.join(name), &bytes).unwrap();
    bytes
}

fn create_group(owner: &mut Client, members: &[u64]) -> GroupId {
    let members: Vec<_> = members.iter().map(|&u| chatgw_client::UserId(u)).collect();
    owner.create_group("g-1", "photos", &members).unwrap();
    owner
        .wait_for(WAIT, "group", |e| match e {
            Event::Group { id, .. } => Some(*id),
            _ => None,
        })
        .unwrap()
}

fn wait_media_message(c: &mut Client) -> MessageEvent {
    c.wait_for(WAIT, "media message", |e| match e {
        Event::Message(m) if m.kind == chatgw_client::MessageKind::Image => Some(m.clone()),
        _ => None,
    })
    .unwrap()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn every_member_gets_the_same_bytes_and_the_store_holds_ciphertext() {
    let gw = media_gateway();
    let (mut a, mut b, mut c, mut outsider) = (gw.online(1), gw.online(2), gw.online(3), gw.online(4));
    let group = create_group(&mut a, &[2, 3]);
    let work = tempfile::tempdir().unwrap();
    // 300 KB: several cipher chunks.
    let plain = marked_file(work.path(), "beach.png", 300_000);

    let mut sender = MediaTransfers::default();
    let mut set_aside = Vec::new();
    let details = MediaDetails {
        content_type: "image/png".into(),
        name: "beach.png".into(),
        width: Some(640),
        height: Some(480),
        thumbnail: Some(("image/jpeg".into(), vec![0xff, 0xd8, 0xff, 0xe0])),
        ..MediaDetails::default()
    };
    let reference = sender
        .upload(
            &mut a,
            &mut set_aside,
            ConversationRef::Group(group),
            &work.path().join("beach.png"),
            MediaKind::Image,
            &details,
        )
        .unwrap();
    assert_eq!(reference.size, plain.len() as u64);
    a.send_group(group, "a-photo", message_kind(MediaKind::Image), &reference.to_body()).unwrap();

    // The sender's device gets `sent`, the other members the message.
    let received: Vec<_> = [&mut b, &mut c]
        .into_iter()
        .map(|device| {
            let m = wait_media_message(device);
            let got = reference_in(m.kind, &m.body).expect("the body is a media reference");
            assert_eq!(got, reference);
            assert_eq!((got.width, got.height), (Some(640), Some(480)));
            got
        })
        .collect();
    // Every member, the sender included, downloads, checks and decrypts.
    for (user, device, got) in [(1, &mut a, &reference), (2, &mut b, &received[0]), (3, &mut c, &received[1])] {
        let dir = work.path().join(format!("received-{user}"));
        let saved = MediaTransfers::default().download(device, &mut Vec::new(), got, &dir).unwrap();
        assert_eq!(saved, dir.join("beach.png"));
        assert_eq!(fs::read(&saved).unwrap(), plain, "user {user} decrypted the sender's bytes");
    }

    // Not a member: no URL.
    let refused = MediaTransfers::default().download_url(&mut outsider, &mut Vec::new(), &reference.media);
    assert!(matches!(refused, Err(MediaTransferError::Refused { .. })), "{refused:?}");

    // What the gateway keeps is the ciphertext: the object's parts, in
    // order, have the reference's size and digest, and the marker is in no
    // file under the data directory.
    let object = files_under(gw.dir.path())
        .into_iter()
        .filter_map(|p| p.parent().map(Path::to_path_buf))
        .find(|dir| dir.ends_with(Path::new("objects").join(&reference.media)))
        .expect("the object's directory is under the data directory");
    // Part n is `<n>.<tag>`, the tags listed in `meta` (media/src/embedded/store.rs).
    let meta = fs::read_to_string(object.join("meta")).unwrap();
    let tags = meta.lines().find_map(|l| l.strip_prefix("tags=")).expect("completed: tags in meta");
    let stored: Vec<u8> = tags
        .split(',')
        .enumerate()
        .flat_map(|(i, tag)| fs::read(object.join(format!("{}.{tag}", i + 1))).unwrap())
        .collect();
    assert_eq!(stored.len() as u64, reference.encrypted_size);
    assert_eq!(sha256_hex(&stored), reference.sha256);
    for path in files_under(gw.dir.path()) {
        let bytes = fs::read(&path).unwrap();
        assert!(!bytes.windows(MARKER.len()).any(|w| w == MARKER), "plaintext found in {}", path.display());
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// `cargo test --release -p chatgw --test media_e2e -- --ignored --nocapture`:
/// 100 MB up and down through the embedded backend, MB/s.
#[test]
#[ignore = "a figure for BENCHMARKS.md, not a check"]
fn hundred_megabytes_up_and_down() {
    let gw = media_gateway();
    let (mut a, mut b) = (gw.online(1), gw.online(2));
    let work = tempfile::tempdir().unwrap();
    let size = 100_000_000;
    marked_file(work.path(), "big.bin", size);
    let to = ConversationRef::Peer(chatgw_client::UserId(2));
    let details =
        MediaDetails { content_type: "application/octet-stream".into(), name: "big.bin".into(), ..Default::default() };
    let started = Instant::now();
    let reference = MediaTransfers::default()
        .upload(&mut a, &mut Vec::new(), to, &work.path().join("big.bin"), MediaKind::Document, &details)
        .unwrap();
    let up = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let dest =
        MediaTransfers::default().download(&mut b, &mut Vec::new(), &reference, &work.path().join("back")).unwrap();
    let down = started.elapsed().as_secs_f64();
    assert_eq!(fs::metadata(&dest).unwrap().len(), size as u64);
    let mb = size as f64 / 1e6;
    println!(
        "100 MB: upload (encrypt + PUT + complete) {:.0} MB/s, download (GET + check + decrypt) {:.0} MB/s",
        mb / up,
        mb / down
    );
}
