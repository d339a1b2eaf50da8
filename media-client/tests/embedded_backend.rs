//! Uploads and downloads against the embedded media backend's own HTTP
//! serving (the code the gateway's media listener runs), with a proxy in
//! between that cuts a connection in the middle.
//!
//! Shown: a multi-part upload whose connection is cut resends one part,
//! not the file; a download whose connection is cut resumes with `Range`;
//! what is stored is the ciphertext the reference describes; a wrong key,
//! a wrong digest or a changed stored byte is refused and leaves no file
//! behind.

use std::{
    fs,
    io::{Read, Write},
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc,
    },
    thread,
    time::{Duration, SystemTime},
};

use chatgw_media::{embedded::EmbeddedBackend, random_bytes, MediaBackend, MediaConversation, MediaKey};
use chatgw_media_client::{
    agent, download::fetch_to, seal::OpenError, MediaDetails, MediaReference, OutgoingFile, Retry, TransferError,
};
use chatgw_protocol::GroupId;

const PART: u64 = 256 * 1024;

/// The embedded backend serving on a free port, a thread per connection.
struct Store {
    backend: Arc<EmbeddedBackend>,
    addr: SocketAddr,
    root: tempfile::TempDir,
}

fn store() -> Store {
    let root = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = Arc::new(EmbeddedBackend::open(root.path(), b"test secret", &format!("http://{addr}")).unwrap());
    let serving = backend.clone();
    thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let backend = serving.clone();
            thread::spawn(move || {
                let mut stream = stream;
                backend.serve(&mut stream, SystemTime::now());
            });
        }
    });
    Store { backend, addr, root }
}

fn quick_retry() -> Retry {
    Retry { attempts: 4, first_backoff: Duration::from_millis(20), max_backoff: Duration::from_millis(100) }
}

/// A TCP proxy to `upstream`. Its first connection is shut once
/// `cut_after` bytes went the cut way (client to server if `cut_upload`);
/// later connections pass. Counts bytes each way over all connections.
struct CuttingProxy {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    up_bytes: Arc<AtomicU64>,
    down_bytes: Arc<AtomicU64>,
}

impl CuttingProxy {
    fn start(upstream: SocketAddr, cut_upload: bool, cut_after: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let (up_bytes, down_bytes) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (conns, up, down) = (connections.clone(), up_bytes.clone(), down_bytes.clone());
        thread::spawn(move || {
            for client in listener.incoming().map_while(Result::ok) {
                let first = conns.fetch_add(1, Ordering::SeqCst) == 0;
                let server = TcpStream::connect(upstream).unwrap();
                let limit = |upload: bool| if first && upload == cut_upload { cut_after } else { u64::MAX };
                let ends = || [client.try_clone().unwrap(), server.try_clone().unwrap()];
                let (c2, s2, ends1, ends2) = (client.try_clone().unwrap(), server.try_clone().unwrap(), ends(), ends());
                let (up, down) = (up.clone(), down.clone());
                let (up_limit, down_limit) = (limit(true), limit(false));
                thread::spawn(move || pump(client, server, up_limit, &up, ends1));
                thread::spawn(move || pump(s2, c2, down_limit, &down, ends2));
            }
        });
        CuttingProxy { addr, connections, up_bytes, down_bytes }
    }

    /// `url` with its host and port replaced by the proxy's.
    fn route(&self, url: &str) -> String {
        let rest = url.strip_prefix("http://").expect("an http URL");
        format!("http://{}{}", self.addr, &rest[rest.find('/').unwrap()..])
    }
}

/// Copy until either side ends or `limit` bytes passed, then shut both
/// connections.
fn pump(mut from: TcpStream, mut to: TcpStream, limit: u64, count: &AtomicU64, ends: [TcpStream; 2]) {
    let mut buf = [0u8; 16 * 1024];
    let mut passed = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n.min((limit - passed) as usize),
        };
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
        passed += n as u64;
        count.fetch_add(n as u64, Ordering::Relaxed);
        if passed >= limit {
            break;
        }
    }
    for end in ends {
        let _ = end.shutdown(Shutdown::Both);
    }
}

fn pattern_file(dir: &Path, len: usize) -> (PathBuf, Vec<u8>) {
    let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 253) as u8).collect();
    let path = dir.join("file.bin");
    fs::write(&path, &bytes).unwrap();
    (path, bytes)
}

/// Upload `path` to `store` (through `proxy` if given) in parts of
/// [`PART`]; the reference and the number of parts.
fn upload(store: &Store, path: &Path, proxy: Option<&CuttingProxy>) -> (MediaReference, usize) {
    let key = MediaKey::new(MediaConversation::Group(GroupId(7)), random_bytes().unwrap());
    let mut file = OutgoingFile::open(path).unwrap();
    let slot = store
        .backend
        .start_upload(&key, file.encrypted_size(), "application/octet-stream", PART, Duration::from_secs(60))
        .unwrap();
    let urls: Vec<_> = slot.part_urls.iter().map(|u| proxy.map(|p| p.route(u)).unwrap_or(u.clone())).collect();
    let parts = file.upload(&agent(Duration::from_secs(10)), quick_retry(), slot.part_size, &urls, |_| {}).unwrap();
    store.backend.complete_upload(&key, &slot.upload_id, file.encrypted_size(), &parts.tags).unwrap();
    let details =
        MediaDetails { content_type: "application/octet-stream".into(), name: "file.bin".into(), ..Default::default() };
    (file.reference(key.to_string(), &details, parts.sha256).unwrap(), urls.len())
}

fn download_url(store: &Store, reference: &MediaReference) -> String {
    store.backend.download_url(&MediaKey::parse(&reference.media).unwrap(), Duration::from_secs(60)).unwrap().url
}

#[test]
fn a_cut_upload_resends_one_part_and_a_cut_download_resumes() {
    let store = store();
    let work = tempfile::tempdir().unwrap();
    let (path, plain) = pattern_file(work.path(), 1_000_000);

    // Cut the first connection 100 KB into part 1.
    let proxy = CuttingProxy::start(store.addr, true, 100_000);
    let (reference, parts) = upload(&store, &path, Some(&proxy));
    assert_eq!(parts, 4, "1 MB in parts of 256 KiB");
    // The listener serves one request per connection: one per part, and one more for the part sent again.
    assert_eq!(proxy.connections.load(Ordering::SeqCst), parts + 1, "the cut part, and only it, went again");
    let sent = proxy.up_bytes.load(Ordering::SeqCst);
    assert!(
        sent < reference.encrypted_size + 100_000 + 8 * 1024,
        "{sent} bytes sent for {} of ciphertext: more than the cut part was sent again",
        reference.encrypted_size
    );

    // Cut the download 300 KB in.
    let proxy = CuttingProxy::start(store.addr, false, 300_000);
    let dest = work.path().join("back.bin");
    fetch_to(
        &agent(Duration::from_secs(10)),
        quick_retry(),
        &proxy.route(&download_url(&store, &reference)),
        &reference,
        &dest,
    )
    .unwrap();
    assert_eq!(fs::read(&dest).unwrap(), plain);
    assert_eq!(proxy.connections.load(Ordering::SeqCst), 2, "one cut, one resumed range");
    let fetched = proxy.down_bytes.load(Ordering::SeqCst);
    assert!(
        fetched < reference.encrypted_size + 4 * 1024,
        "{fetched} bytes fetched for {}: the download started over",
        reference.encrypted_size
    );
}

#[test]
fn the_store_holds_the_ciphertext_the_reference_describes() {
    let store = store();
    let work = tempfile::tempdir().unwrap();
    let (path, plain) = pattern_file(work.path(), 600_000);
    let (reference, _) = upload(&store, &path, None);
    for stored in files_under(store.root.path()) {
        let bytes = fs::read(&stored).unwrap();
        assert!(!bytes.windows(64).any(|w| w == &plain[1000..1064]), "plaintext in {}", stored.display());
    }
    let object = stored_object(store.root.path(), &reference.media);
    assert_eq!(object.len() as u64, reference.encrypted_size);
    assert_eq!(sha256_hex(&object), reference.sha256, "the stored object is the ciphertext the reference names");
}

#[test]
fn a_wrong_key_or_an_altered_object_leaves_no_file() {
    let store = store();
    let work = tempfile::tempdir().unwrap();
    let (path, _) = pattern_file(work.path(), 200_000);
    let (reference, _) = upload(&store, &path, None);
    let http = agent(Duration::from_secs(10));
    let url = download_url(&store, &reference);
    let dest = work.path().join("out.bin");

    let other_key = MediaReference {
        key: MediaReference::from_body(&upload(&store, &path, None).0.to_body()).unwrap().key,
        ..reference.clone()
    };
    let wrong = fetch_to(&http, quick_retry(), &url, &other_key, &dest);
    assert!(matches!(wrong, Err(TransferError::Open(OpenError::Chunk(0)))), "{wrong:?}");
    assert!(!dest.exists() && fs::read_dir(work.path()).unwrap().count() == 1, "nothing left but the source");

    let wrong_digest = MediaReference { sha256: "00".repeat(32), ..reference.clone() };
    assert!(matches!(fetch_to(&http, quick_retry(), &url, &wrong_digest, &dest), Err(TransferError::DigestMismatch)));
    assert!(!dest.exists());

    // Flip a byte of the stored object: its chunk does not authenticate,
    // and the download stops there, before the digest is even complete.
    let part = part_files(store.root.path(), &reference.media).remove(0);
    let mut bytes = fs::read(&part).unwrap();
    bytes[5000] ^= 0x40;
    fs::write(&part, &bytes).unwrap();
    let altered = fetch_to(&http, quick_retry(), &url, &reference, &dest);
    assert!(matches!(altered, Err(TransferError::Open(OpenError::Chunk(0)))), "{altered:?}");
    assert!(!dest.exists());
}

/// The completed object's directory (the embedded store's layout,
/// media/src/embedded/store.rs: `objects/<media id>/`, part `n` in
/// `<n>.<tag>`, the tags in `meta`).
fn object_dir(root: &Path, media: &str) -> PathBuf {
    root.join("objects").join(media)
}

/// The completed object's part files, in order.
fn part_files(root: &Path, media: &str) -> Vec<PathBuf> {
    let dir = object_dir(root, media);
    let meta = fs::read_to_string(dir.join("meta")).unwrap();
    let tags = meta.lines().find_map(|l| l.strip_prefix("tags=")).expect("completed: tags in meta");
    tags.split(',').enumerate().map(|(i, tag)| dir.join(format!("{}.{tag}", i + 1))).collect()
}

/// The completed object's bytes: its parts in order.
fn stored_object(root: &Path, media: &str) -> Vec<u8> {
    part_files(root, media).iter().flat_map(|p| fs::read(p).unwrap()).collect()
}

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

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
