//! The store seam: a gateway runs on a store its caller opened
//! (`Server::start_with_store`), and uses that store, not one of its own
//! under `--data`.

mod util;

use std::sync::Arc;

use chatgw_client::{Client, Event, MessageKind, UserId};
use chatgw_gateway::{Config, Server, ServerHandle};
use chatgw_storage::{EmbeddedOptions, EmbeddedStore, MessageStore};
use util::*;

fn start_on(io: IoDriver, data: &std::path::Path, store: Arc<dyn MessageStore>) -> ServerHandle {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap(), data.into(), SECRET.into());
    config.workers = 1;
    config.io = io;
    Server::start_with_store(config, store).expect("gateway starts")
}

fn token(user: u64) -> String {
    chatgw_gateway::auth::TokenKey::new(SECRET.as_bytes()).mint(UserId(user), chatgw_gateway::auth::unix_now() + 600)
}

each_driver!(a_gateway_started_on_a_given_store_writes_to_it_and_not_under_data);
fn a_gateway_started_on_a_given_store_writes_to_it_and_not_under_data(io: IoDriver) {
    let (elsewhere, data) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let open = || -> Arc<dyn MessageStore> {
        Arc::new(EmbeddedStore::open(elsewhere.path(), &EmbeddedOptions::default()).expect("store opens"))
    };

    let gw = start_on(io, data.path(), open());
    let mut a = Client::connect(gw.addr(), &token(1)).unwrap();
    a.send_message(UserId(2), "seam", MessageKind::Text, "on the given store").unwrap();
    let (id, duplicate) = sent_id(&mut a, "seam");
    assert!(!duplicate);
    drop(a);
    gw.shutdown();
    assert!(!data.path().join("store").exists(), "no store of its own under --data");

    // The acknowledged message is in the given store: a gateway on it again
    // (its first store handle closed with the first gateway) replays it.
    let gw = start_on(io, data.path(), open());
    let mut b = Client::connect(gw.addr(), &token(2)).unwrap();
    let got: Vec<_> = sync_all(&mut b)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some((m.id, m.body)),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![(id, "on the given store".to_owned())]);
    drop(b);
    gw.shutdown();
}
