//! kassandra (an in-memory, single-node CQL server) on a free loopback port.
//!
//! Why a binary of our own: the kassandra crates publish a library and a
//! test helper, no server binary. The Cassandra store's tests start this
//! program, read the address from its first line of output and talk CQL to
//! it; it exits when its standard input closes, so a test that ends (or
//! crashes) never leaves it behind.

use std::convert::Infallible;

use kassandra_tester::{kassandra::session::KassandraSession, KassandraTester};
use tokio::io::AsyncReadExt;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let tester = KassandraTester::new(KassandraSession::new());
    let served = tester
        .in_scope(|addr| async move {
            println!("listening on {addr}");
            let mut stdin = tokio::io::stdin();
            let mut buf = [0u8; 64];
            while matches!(stdin.read(&mut buf).await, Ok(n) if n > 0) {}
            std::process::exit(0);
            #[allow(unreachable_code)]
            Ok::<(), Infallible>(())
        })
        .await;
    if let Err(e) = served {
        match e {}
    }
}
