//! The shared `MessageStore` conformance suite against a live Cassandra or
//! ScyllaDB node named by `CHATGW_TEST_CASSANDRA=host:port`, one fresh
//! keyspace per check (replication factor 1, so one node is enough).
//!
//! Without that variable every check prints why it skipped and passes: no
//! Cassandra or ScyllaDB can be installed on the machines these tests run
//! on (neither is packaged in the registries they reach), and the
//! in-memory server that is available cannot run a commit
//! (tests/cassandra_kassandra.rs checks what it can).

use std::sync::{
    atomic::{AtomicUsize, Ordering},
    Arc,
};

use chatgw_storage::{
    conformance::{self, Backend},
    CassandraStore, MessageStore,
};

struct Cassandra {
    node: String,
}

static PLACES: AtomicUsize = AtomicUsize::new(0);

impl Cassandra {
    fn from_env(check: &str) -> Option<Self> {
        match std::env::var("CHATGW_TEST_CASSANDRA") {
            Ok(node) if !node.is_empty() => Some(Cassandra { node }),
            _ => {
                eprintln!("{check}: skipped: set CHATGW_TEST_CASSANDRA=host:port to run it against a live node");
                None
            }
        }
    }

    fn url(&self, keyspace: &str) -> String {
        format!("cassandra://{}/{keyspace}?replication=simple:1", self.node)
    }
}

impl Backend for Cassandra {
    fn new_place(&self) -> String {
        let n = PLACES.fetch_add(1, Ordering::Relaxed);
        let keyspace = format!("chatgw_test_{}_{n}_{}", std::process::id(), chatgw_protocol::now_ms());
        CassandraStore::init(&self.url(&keyspace)).expect("init keyspace");
        keyspace
    }

    fn open(&self, place: &str) -> Arc<dyn MessageStore> {
        Arc::new(CassandraStore::open(&self.url(place)).expect("open"))
    }

    fn second_handle(&self, place: &str, _first: &Arc<dyn MessageStore>) -> Arc<dyn MessageStore> {
        self.open(place)
    }

    /// Gateways share a keyspace with no lock between them: positions are
    /// claimed per inbox with lightweight transactions, dense.
    fn several_writers(&self) -> bool {
        true
    }

    /// A live node is not ours to stop (tests/cassandra_kassandra.rs cuts
    /// the connection to an in-memory server instead).
    fn interrupt(&self, _place: &str, _store: &Arc<dyn MessageStore>) -> bool {
        false
    }
}

macro_rules! conformance_tests {
    ($($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            let Some(node) = Cassandra::from_env(stringify!($case)) else { return };
            conformance::$case(&node);
        }
    )*};
}

chatgw_storage::for_each_conformance_case!(conformance_tests);
