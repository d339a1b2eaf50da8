//! The shared `MessageStore` conformance suite against the embedded store.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, Weak},
};

use chatgw_storage::{
    conformance::{self, Backend},
    EmbeddedOptions, EmbeddedStore, MessageStore, WriteFailure,
};

/// Stores in directories under one temporary root.
struct Embedded {
    root: tempfile::TempDir,
    next: Mutex<usize>,
    /// Open stores by place, to inject failures (the trait object cannot be
    /// downcast); weak, so dropping the last handle closes the store.
    open: Mutex<HashMap<String, Weak<EmbeddedStore>>>,
}

impl Embedded {
    fn new() -> Self {
        Embedded { root: tempfile::tempdir().unwrap(), next: Mutex::new(0), open: Mutex::new(HashMap::new()) }
    }
}

impl Backend for Embedded {
    fn new_place(&self) -> String {
        let mut next = self.next.lock().unwrap();
        *next += 1;
        self.root.path().join(format!("store-{next}")).to_string_lossy().into_owned()
    }

    fn open(&self, place: &str) -> Arc<dyn MessageStore> {
        let store = Arc::new(EmbeddedStore::open(place, &EmbeddedOptions::default()).unwrap());
        self.open.lock().unwrap().insert(place.to_owned(), Arc::downgrade(&store));
        store
    }

    fn second_handle(&self, _place: &str, first: &Arc<dyn MessageStore>) -> Arc<dyn MessageStore> {
        first.clone()
    }

    fn interrupt(&self, place: &str, _store: &Arc<dyn MessageStore>) -> bool {
        let open = self.open.lock().unwrap();
        let store = open.get(place).and_then(Weak::upgrade).expect("the store is open");
        store.inject_write_failure(WriteFailure::Io);
        true
    }
}

macro_rules! conformance_tests {
    ($($case:ident),* $(,)?) => {$(
        #[test]
        fn $case() {
            conformance::$case(&Embedded::new());
        }
    )*};
}

chatgw_storage::for_each_conformance_case!(conformance_tests);

/// Regression: reads went straight to the engine's keyspaces, which see a
/// batch while it is being applied item by item, so a sync page could hold
/// part of a commit. Reads now go through a snapshot.
#[test]
fn embedded_reads_saw_part_of_a_batch() {
    let backend = Embedded::new();
    for _ in 0..3 {
        conformance::commit_is_atomic_to_readers(&backend);
    }
}
