//! `--store postgres://...`: a gateway on a PostgreSQL database that
//! `chatgw store init` prepared keeps what it acknowledged across a restart,
//! and one on a database nobody prepared refuses to start, saying how to fix
//! it. Each test starts its own server (`TestPostgres`).

mod util;

use chatgw_client::{Client, Event, MessageKind, UserId};
use chatgw_gateway::{
    store::{self, Initialized, StoreUrl},
    Config, Server, ServerHandle, StartError,
};
use chatgw_storage::conformance::TestPostgres;
use util::*;

fn config_on(io: IoDriver, data: &std::path::Path, url: &StoreUrl) -> Config {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), data.into(), SECRET.into());
    config.workers = 1;
    config.io = io;
    config.store = url.clone();
    config
}

fn start_on(io: IoDriver, data: &std::path::Path, url: &StoreUrl) -> ServerHandle {
    Server::start(config_on(io, data, url)).expect("gateway starts")
}

fn token(user: u64) -> String {
    chatgw_gateway::auth::TokenKey::new(SECRET.as_bytes()).mint(UserId(user), chatgw_gateway::auth::unix_now() + 600)
}

each_driver!(a_message_sent_through_a_postgres_store_is_synced_once_after_a_restart);
fn a_message_sent_through_a_postgres_store_is_synced_once_after_a_restart(io: IoDriver) {
    let pg = TestPostgres::start();
    let url: StoreUrl = pg.url(&pg.create_database()).parse().expect("a postgres URL parses");
    let data = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        // `chatgw store init`, twice: the second run finds everything in place.
        let done = store::init(&url).expect("init");
        assert!(
            matches!(done, Initialized::Schema { version, .. } if version == chatgw_storage::POSTGRES_SCHEMA_VERSION)
        );
    }

    let gw = start_on(io, data.path(), &url);
    let mut a = Client::connect(gw.addr(), &token(1)).unwrap();
    a.send_message(UserId(2), "pg-1", MessageKind::Text, "through postgres").unwrap();
    let (id, duplicate) = sent_id(&mut a, "pg-1");
    assert!(!duplicate);
    drop(a);
    gw.shutdown();
    assert!(!data.path().join("store").exists(), "no embedded store under --data");

    // A new gateway on the same database: the receiver, never connected
    // before, syncs the acknowledged message exactly once.
    let gw = start_on(io, data.path(), &url);
    let mut b = Client::connect(gw.addr(), &token(2)).unwrap();
    let got: Vec<_> = sync_all(&mut b)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.id, m.from, m.body)),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![(id, UserId(1), "through postgres".to_owned())]);
    drop(b);
    gw.shutdown();
}

#[test]
fn a_database_without_the_schema_refuses_to_start_and_names_store_init() {
    let pg = TestPostgres::start();
    let url: StoreUrl = pg.url(&pg.create_database()).parse().unwrap();
    let data = tempfile::tempdir().unwrap();
    let err = Server::start(config_on(IoDriver::Epoll, data.path(), &url)).expect_err("refused");
    assert!(matches!(err, StartError::Store(_)), "{err:?}");
    let line = format!("{:#}", anyhow::Error::new(err));
    assert_eq!(
        line,
        format!(
            "opening the store {url}: the database has no chatgw schema: \
             create it with `chatgw store init --store URL`"
        )
    );
    // After init the same settings start.
    store::init(&url).unwrap();
    Server::start(config_on(IoDriver::Epoll, data.path(), &url)).expect("starts after init").shutdown();
}

#[test]
fn store_init_command_is_idempotent_and_fails_in_one_line() {
    let pg = TestPostgres::start();
    let url = pg.url(&pg.create_database());
    let init = |url: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_chatgw"))
            .args(["store", "init", "--store", url])
            .env_remove("CHATGW_STORE")
            .output()
            .expect("chatgw runs")
    };
    let expected = format!(
        "{url}: chatgw schema version {} in place (created what was missing)\n",
        chatgw_storage::POSTGRES_SCHEMA_VERSION
    );
    for _ in 0..2 {
        let out = init(&url);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }
    let data = tempfile::tempdir().unwrap();
    Server::start(config_on(IoDriver::Epoll, data.path(), &url.parse().unwrap()))
        .expect("starts after init")
        .shutdown();

    // A database that does not exist: one line on stderr, a failed exit.
    let out = init(&pg.url("no_such_database"));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with(&format!("chatgw: preparing the store {}: ", pg.url("no_such_database"))), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(out.stdout.is_empty());
}
