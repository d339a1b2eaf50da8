//! The shared `MessageStore` conformance suite against PostgreSQL: a local
//! server started for this test binary (or `CHATGW_TEST_POSTGRES`), one
//! database per check.

use std::sync::Arc;

use chatgw_storage::{
    conformance::{self, Backend, TestPostgres},
    MessageStore, PostgresOptions, PostgresStore,
};

struct Postgres<'a>(&'a TestPostgres);

impl Backend for Postgres<'_> {
    fn new_place(&self) -> String {
        let db = self.0.create_database();
        PostgresStore::init(&self.0.url(&db)).expect("init schema");
        db
    }

    fn open(&self, place: &str) -> Arc<dyn MessageStore> {
        let options = PostgresOptions { pool_size: 4, ..PostgresOptions::default() };
        Arc::new(PostgresStore::open(&self.0.url(place), &options).expect("open"))
    }

    fn second_handle(&self, place: &str, _first: &Arc<dyn MessageStore>) -> Arc<dyn MessageStore> {
        self.open(place)
    }

    fn interrupt(&self, place: &str, _store: &Arc<dyn MessageStore>) -> bool {
        self.0.kill_connections(place);
        true
    }

    fn several_writers(&self) -> bool {
        true
    }
}

macro_rules! conformance_tests {
    ($($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            let server = TestPostgres::start();
            conformance::$case(&Postgres(&server));
        }
    )*};
}

chatgw_storage::for_each_conformance_case!(conformance_tests);
