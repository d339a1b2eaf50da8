//! The load generator against several gateways at once (`--url a,b`), as
//! it will run against a fleet's nodes. Until the fleet exists the nodes
//! are separate single-node gateways: with their own stores for `connect`,
//! and on one shared PostgreSQL store for the runs whose users move
//! between them (`failover`), where a user's history must be found on the
//! node it reconnects to.

mod util;

use std::process::{Command, Output};

use chatgw_storage::conformance::TestPostgres;
use serde_json::Value;

use crate::util::{init_store, spawn_gateway, spawn_gateway_with, Gateway};

const SECRET: &str = "fleet-test-secret";

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen")).args(args).args(["--secret", SECRET]).output().expect("loadgen runs")
}

fn report(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("the JSON report")).expect("valid JSON")
}

fn explain(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// Two gateways on one fresh PostgreSQL database (node ids 1 and 2).
fn two_on_one_store(pg: &TestPostgres, dir: &std::path::Path) -> (Gateway, Gateway) {
    let url = pg.url(&pg.create_database());
    init_store(&url);
    let a = spawn_gateway_with(&dir.join("a"), SECRET, &["--store", &url, "--node-id", "1"]);
    let b = spawn_gateway_with(&dir.join("b"), SECRET, &["--store", &url, "--node-id", "2"]);
    (a, b)
}

#[test]
fn connect_spreads_connections_over_the_urls_and_sums_the_gateways() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (spawn_gateway(&dir.path().join("a"), SECRET), spawn_gateway(&dir.path().join("b"), SECRET));
    let json = dir.path().join("connect.json");
    let urls = format!("{},{}", a.addr, b.addr);
    let admins = format!("{},{}", a.admin, b.admin);
    let pids = format!("{},{}", a.child.id(), b.child.id());
    let out = loadgen(&[
        "connect",
        "--url",
        &urls,
        "--gateway-admin",
        &admins,
        "--gateway-pid",
        &pids,
        "--quiet",
        "--sources",
        "0",
        "--conns",
        "21",
        "--rate",
        "300",
        "--hold",
        "1s",
        "--check",
        "conns=21,gateway_conns=21",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", explain(&out));
    let r = report(&json);
    let per_node: Vec<f64> = r["gateway_connections_open_per_node"]
        .as_array()
        .expect("per-node counts with two admin addresses")
        .iter()
        .map(|n| n["connections_open"].as_f64().unwrap())
        .collect();
    assert_eq!(per_node, [11.0, 10.0], "connection k on node k % 2");
    assert_eq!(r["config"]["url"], urls.as_str(), "the list is recorded as given");
    let gateways = r["gateways"].as_array().unwrap();
    assert_eq!(gateways.len(), 2);
    // Sockets gained per process: the 21 connections, plus at most one
    // admin connection per gateway still open when its sockets are counted.
    let gained = gateways.iter().map(|g| g["connections"].as_i64().unwrap()).sum::<i64>();
    assert!((21..=23).contains(&gained), "{gained} sockets gained over two gateways");
}

#[test]
fn one_to_one_same_node_over_two_gateways_loses_nothing_and_states_the_placement() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (spawn_gateway(&dir.path().join("a"), SECRET), spawn_gateway(&dir.path().join("b"), SECRET));
    let json = dir.path().join("run.json");
    let urls = format!("{},{}", a.addr, b.addr);
    let pids = format!("{},{}", a.child.id(), b.child.id());
    let out = loadgen(&[
        "one-to-one",
        "--url",
        &urls,
        "--same-node",
        "--quiet",
        "--pairs",
        "6",
        "--rate",
        "120",
        "--duration",
        "1s",
        "--drain",
        "3s",
        "--gateway-pid",
        &pids,
        "--check",
        "lost=0,dup=0",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", explain(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("same-node over 2 nodes (0 / 6 pairs cross nodes)"), "{stdout}");
    let r = report(&json);
    assert_eq!(r["placement"]["placement"], "same-node");
    assert_eq!(r["delivered"].as_u64(), r["scheduled"].as_u64());
    // Each gateway is reported on its own. Not asserted above zero: both
    // carried traffic (pairs alternate over the list and all were
    // delivered), but 60 messages each can cost less than the 10 ms clock
    // tick that /proc counts CPU in.
    let each = r["cpu"]["gateway_per_process"].as_array().expect("per-process CPU with two pids");
    assert_eq!(each.len(), 2);
    assert!(each.iter().all(|p| p["cpu_pct"].as_f64().is_some_and(|c| (0.0..=400.0).contains(&c))), "{each:?}");
    let pids_reported: Vec<u64> = each.iter().map(|p| p["pid"].as_u64().expect("pid")).collect();
    assert_eq!(pids_reported, [a.child.id() as u64, b.child.id() as u64], "in the order given");
}

#[test]
fn cross_node_pairs_land_on_different_gateways() {
    // Without node links a cross-node message cannot be delivered live yet,
    // so this run only shows where the pairs went: every pair crosses.
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (spawn_gateway(&dir.path().join("a"), SECRET), spawn_gateway(&dir.path().join("b"), SECRET));
    let json = dir.path().join("run.json");
    let urls = format!("{},{}", a.addr, b.addr);
    let out = loadgen(&[
        "one-to-one",
        "--url",
        &urls,
        "--cross-node",
        "--quiet",
        "--pairs",
        "4",
        "--rate",
        "8",
        "--duration",
        "1s",
        "--drain",
        "1s",
        "--json",
        json.to_str().unwrap(),
    ]);
    let r = report(&json);
    assert_eq!(r["placement"]["placement"], "cross-node", "{}", explain(&out));
    assert_eq!((r["placement"]["cross_node"].as_u64(), r["established"].as_u64()), (Some(4), Some(8)));
    let refused = loadgen(&["one-to-one", "--url", &a.addr, "--cross-node", "--pairs", "1"]);
    assert_eq!(refused.status.code(), Some(2), "cross-node needs two URLs: {}", explain(&refused));
}

#[test]
fn failover_moves_the_victims_users_to_the_next_gateway_without_loss_or_duplicates() {
    let pg = TestPostgres::start();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = two_on_one_store(&pg, dir.path());
    let json = dir.path().join("failover.json");
    let urls = format!("{},{}", a.addr, b.addr);
    let admins = format!("{},{}", a.admin, b.admin);
    let victim_pid = b.child.id().to_string();
    let out = loadgen(&[
        "failover",
        "--url",
        &urls,
        "--same-node",
        "--victim-url",
        &b.addr,
        "--victim-pid",
        &victim_pid,
        "--gateway-admin",
        &admins,
        "--quiet",
        "--pairs",
        "6",
        "--rate",
        "60",
        "--duration",
        "3s",
        "--kill-after",
        "1s",
        "--settle",
        "15s",
        "--check",
        "lost=0,dup=0,victims=6",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", explain(&out));
    let r = report(&json);
    assert_eq!(r["victim"]["killed"], true);
    assert_eq!(r["victim"]["reconnect_to"], a.addr.as_str());
    assert!(r["failed_over"].as_u64().is_some_and(|n| n >= 6), "every user of the victim came back: {r}");
    assert_eq!(r["reconnect_sync_ms"]["count"].as_u64(), r["failed_over"].as_u64());
    assert!(r["reconnect_sync_ms"]["max_ms"].as_f64().is_some_and(|ms| ms > 0.0 && ms < 15_000.0));
    assert_eq!((r["lost"].as_u64(), r["duplicated"].as_u64()), (Some(0), Some(0)));
    assert_eq!(r["acked"].as_u64(), r["scheduled"].as_u64());
    // Single-node gateways have no fleet gauge: the window is unmeasured, and says why.
    assert!(r["ghost"]["window_ms"].is_null());
    assert!(r["ghost"]["note"].as_str().is_some_and(|n| n.contains("chatgw_fleet_live_nodes")), "{r}");
}
