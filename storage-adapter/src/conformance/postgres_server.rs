//! A throwaway PostgreSQL server for tests: `initdb` in a temporary
//! directory, `postgres` on a free port of 127.0.0.1 with its socket in that
//! directory, stopped with `pg_ctl stop -m immediate` on drop. Or, when
//! `CHATGW_TEST_POSTGRES` names a server (`postgres://user@host:port`), that
//! one, left alone.
//!
//! Why not a shared server: tests must not depend on a daemon someone
//! started by hand. `initdb` refuses to run as root, so as root the server
//! runs as the `postgres` user (Debian's packages create it).

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicUsize, Ordering},
};

/// Where tests find a PostgreSQL server.
pub struct TestPostgres {
    /// `postgres://user@host:port`, without a database.
    base: String,
    local: Option<Local>,
    next_db: AtomicUsize,
}

struct Local {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`.
fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CHATGW_PG_BIN") {
        return dir.into();
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.flatten().map(|e| e.path().join("bin")).filter(|p| p.join("pg_ctl").exists()).collect())
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .expect("PostgreSQL server binaries: install postgresql, or set CHATGW_PG_BIN or CHATGW_TEST_POSTGRES")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// `program args...`, as the `postgres` user when running as root.
fn run(bin: &Path, program: &str, args: &[&str]) {
    let path = bin.join(program);
    let mut command = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&path);
        c
    } else {
        Command::new(&path)
    };
    let out = command.args(args).output().unwrap_or_else(|e| panic!("running {}: {e}", path.display()));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port").port()
}

impl TestPostgres {
    /// The server `CHATGW_TEST_POSTGRES` names, or a fresh local one.
    pub fn start() -> Self {
        if let Ok(url) = std::env::var("CHATGW_TEST_POSTGRES") {
            let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url.as_str()));
            let authority = rest.split('/').next().unwrap_or(rest);
            return TestPostgres { base: format!("{scheme}://{authority}"), local: None, next_db: AtomicUsize::new(0) };
        }
        let dir = tempfile::Builder::new().prefix("chatgw-pg").tempdir().expect("temp dir");
        if is_root() {
            let chown = Command::new("chown").arg("-R").arg("postgres:").arg(dir.path()).status().expect("chown");
            assert!(chown.success(), "chown of the server's directory to postgres");
        }
        let bin = bin_dir();
        let data = dir.path().join("data");
        let data_s = data.to_string_lossy().into_owned();
        run(&bin, "initdb", &["-D", &data_s, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"]);
        let local = Local { dir, bin, port: free_port() };
        local.start();
        let base = format!("postgres://postgres@127.0.0.1:{}", local.port);
        TestPostgres { base, local: Some(local), next_db: AtomicUsize::new(0) }
    }

    /// The server's data directory, when this process started the server
    /// (not one named by `CHATGW_TEST_POSTGRES`).
    pub fn data_dir(&self) -> Option<PathBuf> {
        self.local.as_ref().map(|l| l.dir.path().join("data"))
    }

    /// The URL of `database` on this server.
    pub fn url(&self, database: &str) -> String {
        format!("{}/{database}", self.base)
    }

    /// A new, empty database, by name.
    pub fn create_database(&self) -> String {
        let n = self.next_db.fetch_add(1, Ordering::Relaxed);
        let name = format!("chatgw_test_{}_{n}", std::process::id());
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).expect("connect as admin");
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name}")).expect("drop database");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).expect("create database");
        name
    }

    /// Close every connection to `database` from the server side, as a
    /// restart or a network cut would.
    pub fn kill_connections(&self, database: &str) {
        let mut admin = postgres::Client::connect(&self.url("postgres"), postgres::NoTls).expect("connect as admin");
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
            .expect("terminate connections");
    }

    /// Stop the local server as a crash would (`pg_ctl stop -m immediate`):
    /// `None` for an external server, which is left alone.
    pub fn crash(&self) -> Option<()> {
        self.local.as_ref().map(Local::stop)
    }

    /// Start the local server again after [`TestPostgres::crash`].
    pub fn restart(&self) -> Option<()> {
        self.local.as_ref().map(Local::start)
    }
}

impl Local {
    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    fn start(&self) {
        let socket_dir = self.dir.path().to_string_lossy().into_owned();
        let log = self.dir.path().join("server.log").to_string_lossy().into_owned();
        let options = format!("-p {} -k {socket_dir} -c listen_addresses=127.0.0.1", self.port);
        run(&self.bin, "pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &options, "-w", "-t", "60", "start"]);
    }

    fn stop(&self) {
        run(&self.bin, "pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let Some(local) = &self.local {
            let path = local.bin.join("pg_ctl");
            let data = local.data();
            let args = ["-D", data.as_str(), "-m", "immediate", "-w", "stop"];
            let status = if is_root() {
                Command::new("runuser").args(["-u", "postgres", "--"]).arg(&path).args(args).output()
            } else {
                Command::new(&path).args(args).output()
            };
            // A server already stopped by `crash` makes this fail; nothing to do then.
            let _ = status;
        }
    }
}
