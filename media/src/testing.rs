//! Throwaway S3-compatible servers for tests (feature `testing`), each on a
//! free port and killed when dropped: moto in server mode (`python3 -m moto.server`, installed by .ci/run with pip), and
//! s3s-fs (installed by .ci/run into `$CHATGW_CACHE_DIR/s3s-fs/bin`, or
//! named by `CHATGW_S3S_FS_BIN`), which checks pre-signed URLs as S3 does.
//!
//! Without a server a test says so and passes, as the other tests of
//! installed servers do, except under CI (`CI` set), where `.ci/run` has
//! installed both and a missing one is a failure.

use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// A moto server, killed when dropped. It checks no signature until
/// [`Moto::check_signatures`], so tests may create buckets and objects
/// with plain requests.
pub struct Moto {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Moto {
    /// A moto server that checks no signature until
    /// [`Moto::check_signatures`]; `None` when moto is not installed.
    pub fn start() -> Option<Moto> {
        let installed = Command::new("python3")
            .args(["-c", "import moto.server"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !installed {
            return missing("moto (pip install 'moto[server]')");
        }
        let port = free_port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m moto.server (pip install 'moto[server]')");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        wait_for_listener(port, "moto");
        Some(moto)
    }

    /// From now on moto checks the signature of every request that has an
    /// `Authorization` header, with botocore's signer, against the keys of
    /// its IAM users (pre-signed URLs stay unchecked).
    pub fn check_signatures(&self) {
        let answer = reqwest::blocking::Client::new()
            .post(format!("{}/moto-api/reset-auth", self.endpoint))
            .body("0")
            .send()
            .unwrap();
        assert!(answer.status().is_success(), "reset-auth: {}", answer.status());
    }

    /// Create `bucket` (a plain `PUT`, before signatures are checked).
    pub fn create_bucket(&self, bucket: &str) {
        let answer = reqwest::blocking::Client::new().put(format!("{}/{bucket}", self.endpoint)).send().unwrap();
        assert!(answer.status().is_success(), "create bucket: {}", answer.status());
    }

    /// `s3://bucket?endpoint=...` for this server.
    pub fn url(&self, bucket: &str) -> String {
        format!("s3://{bucket}?region=us-east-1&endpoint={}", self.endpoint)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Skip (or, under CI, fail) a test whose server is not installed.
fn missing<T>(what: &str) -> Option<T> {
    assert!(std::env::var_os("CI").is_none(), "{what} is not installed; .ci/run installs it");
    eprintln!("skipped: {what} is not installed (.ci/run installs it)");
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_listener(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        thread::sleep(Duration::from_millis(50));
    }
}

/// An s3s-fs server with one bucket, `media`, under a temporary directory;
/// killed when dropped. It checks every signature, pre-signed or not.
pub struct S3sFs {
    child: Child,
    _root: tempfile::TempDir,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// The access key id s3s-fs accepts.
pub const S3S_ACCESS_KEY: &str = "AKIAS3SFSTEST0000000";
/// Its secret.
pub const S3S_SECRET_KEY: &str = "s3s-fs-test-secret-key";

impl S3sFs {
    /// Start one; `None` when s3s-fs is not installed.
    pub fn start() -> Option<S3sFs> {
        let binary = std::env::var_os("CHATGW_S3S_FS_BIN").map(PathBuf::from).unwrap_or_else(|| {
            let cache = std::env::var_os("CHATGW_CACHE_DIR")
                .map_or_else(|| PathBuf::from("/root/.cache/chatgw"), PathBuf::from);
            cache.join("s3s-fs/bin/s3s-fs")
        });
        if !binary.is_file() {
            return missing(&format!("s3s-fs ({})", binary.display()));
        }
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("media")).unwrap();
        let port = free_port();
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", S3S_ACCESS_KEY, "--secret-key", S3S_SECRET_KEY])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = S3sFs { child, _root: root, endpoint: format!("http://127.0.0.1:{port}") };
        wait_for_listener(port, "s3s-fs");
        Some(server)
    }

    /// `s3://media?endpoint=...` for this server.
    pub fn url(&self) -> String {
        format!("s3://media?region=us-east-1&endpoint={}", self.endpoint)
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
