//! `loadgen plan` on the committed input (benchmarks/plan-input.json): the
//! fleet printed for the design's target, checked against the same
//! arithmetic done by hand below, and the `--json`, `--svg` and node-type
//! flags of the real binary.

use std::{collections::BTreeMap, path::PathBuf, process::Command};

fn input() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../benchmarks/plan-input.json")
}

fn plan(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .arg("plan")
        .arg("--input")
        .arg(input())
        .args(args)
        .output()
        .expect("runs loadgen plan");
    assert!(out.status.success(), "loadgen plan failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// The "Fleet" block of the text: label -> value as printed.
fn fleet(text: &str) -> BTreeMap<String, String> {
    let mut lines = text.lines().skip_while(|l| *l != "Fleet").skip(1);
    let mut fleet = BTreeMap::new();
    for line in lines.by_ref().take_while(|l| !l.trim().is_empty()) {
        // "  gateway nodes        806 nodes": the label, then the value
        // and its unit at the end.
        let words: Vec<&str> = line.split_whitespace().collect();
        let (value, label) = (words[words.len() - 2], words[..words.len() - 2].join(" "));
        fleet.insert(label, value.to_owned());
    }
    fleet
}

// The design's target: 500,000,000 concurrent connections, 100 G
// messages/day at peak factor 1.0368, groups of 256, p99 <= 100 ms, on the
// default node (32 cores, 64 GiB), with the committed figures:
//
// Load: peak 100,000,000,000 / 86,400 x 1.0368 = 1,200,000 msg/s; groups
// (group_share 0.1) 120,000/s; one-to-one 1,080,000/s; connects
// 500,000,000 / 1,800 s = 277,777.8/s.
//
// Connections per node: memory floor(64 x 2^30 / 8,397) = 8,183,812;
// cores 32 x 27,750 = 888,000; floor(0.7 x 888,000) = 621,600.
// Nodes for connections: ceil(500,000,000 / 621,600) = ceil(804.38) = 805.
//
// CPU: the highest clean run with p99 <= 100 ms is 20,000 msg/s (p99
// 39.23 ms; 40,000 had 603.65 ms) at 62.0 µs/msg on 2 cores: share
// 62 x 20,000 / 2e6 = 0.62. One-to-one 1,080,000 x 62 x 1.122 / 1e6 =
// 75.129; groups 120,000 x 2,740 x 1.122 / 1e6 = 368.914; connects
// 277,777.8 x 240 / 1e6 = 66.667; in all 510.709 cores. Nodes for CPU:
// ceil(510.709 / (32 x 0.62)) = ceil(25.74) = 26.
//
// Base max(805, 26) = 805. N = 806: a survivor carries 510.709 / 805 =
// 0.634 cores plus (500,000,000 / 806) / 805 / 10 s = 77.06 reconnects/s
// x 240 µs = 0.018 cores: 0.653 <= 32 x 0.9 = 28.8, so 806 nodes,
// 806 x $1,000 = $806,000 a month.
//
// Redis: 500,000,000 x 151 B / 2^30 = 70.31 GiB, x 2 with the replica =
// 140.63 GiB. Commands: 277,777.8 x (2 + 1) = 833,333 for sessions;
// lookups (1,080,000 + 120,000 x 255) x 805 / 806 x 0.1 = 31,680,000 x
// 0.99876 x 0.1 = 3,164,069; in all 3,997,403/s. Primaries max(ceil(70.31
// / 25), ceil(3,997,403 / 100,000)) = max(3, 40) = 40.
//
// Kafka: 1,080,000 x 2 + 120,000 x (1 + 255 x 1) = 32,880,000 events/s x
// 250 B = 8,220 MB/s; ceil(8,220 / 10) = 822 partitions; per day
// 100 G x (0.9 x 2 + 0.1 x 256) x 250 B x 3 / 1e12 = 2,055 TB.
//
// Store: 1,080,000 x 6 + 120,000 x 260 = 37,680,000 records/s; per day
// 100 G x (0.9 x 400 + 0.1 x 6,938) / 1e12 = 105.38 TB, x 3 = 316.14 TB.
#[test]
fn the_design_target_on_the_committed_figures() {
    let text = plan(&[]);
    let f = fleet(&text);
    let expected = [
        ("gateway nodes", "806"),
        ("connections per node", "621,600"),
        ("gateway cost per month", "806,000"),
        ("Redis memory (with replicas)", "140.6297"),
        ("Redis ops/s", "3,997,403"),
        ("Redis primaries", "40"),
        ("Kafka partitions", "822"),
        ("Kafka MB/s", "8,220"),
        ("Kafka TB/day (with replicas)", "2,055"),
        ("store writes/s", "37,680,000"),
        ("store TB/day (one copy)", "105.38"),
        ("store TB/day (with replicas)", "316.14"),
    ];
    for (label, value) in expected {
        assert_eq!(f.get(label).map(String::as_str), Some(value), "{label} in:\n{text}");
    }
    // The bounds behind the node count, each with its formula.
    for line in [
        "      ceil(concurrent / conns_per_node) = ceil(500,000,000 / 621,600) = 805",
        "      ceil(total CPU / (cores x cpu_share)) = ceil(510.7094 / (32 x 0.62)) = 26",
        "      gateway_us_per_msg x rate / (cores_measured x 1e6) = 62 x 20,000 / (2 x 1e6) = 0.62",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
    }
    // Every figure used is listed with its kind.
    assert!(text.contains("connections_per_core = 27,750 conns/core [measured]"), "{text}");
    assert!(text.contains("session_secs = 1,800 s [assumption]"), "{text}");
}

#[test]
fn json_carries_the_same_fleet() {
    let text = plan(&["--json", "-"]);
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["format"], "chatgw-plan/1");
    assert_eq!(v["fleet"]["gateway_nodes"], 806.0);
    assert_eq!(v["fleet"]["redis_shards"], 40.0);
    assert_eq!(v["fleet"]["store_writes_per_sec"], 37_680_000.0);
    assert_eq!(v["plan"]["p99_run"]["rate"], 20_000.0);
    assert_eq!(v["input"]["figures"]["safety_fraction"]["kind"], "assumption");
}

// A node of 64 cores and 128 GiB: floor(0.7 x 64 x 27,750) = 1,243,200
// connections each; ceil(500,000,000 / 1,243,200) = ceil(402.19) = 403,
// and one more for the lost node: 404. With --node-cost 2500: 404 x 2,500
// = 1,010,000 a month. --set redis_shard_ops_per_sec=200000 halves the
// primaries the commands need: ceil(3,993,492 / 200,000) = 20 (lookups
// with N = 404: 31,680,000 x 403 / 404 x 0.1 = 3,168,000 x 0.997525 =
// 3,160,158; plus 833,333 for sessions).
#[test]
fn node_type_and_overrides_change_the_fleet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let svg = dir.path().join("plan.svg");
    let text = plan(&[
        "--cores",
        "64",
        "--memory-gib",
        "128",
        "--node-cost",
        "2500",
        "--set",
        "redis_shard_ops_per_sec=200000",
        "--svg",
        svg.to_str().expect("utf-8 path"),
    ]);
    let f = fleet(&text);
    assert_eq!(f["connections per node"], "1,243,200");
    assert_eq!(f["gateway nodes"], "404");
    assert_eq!(f["gateway cost per month"], "1,010,000");
    assert_eq!(f["Redis ops/s"], "3,993,492");
    assert_eq!(f["Redis primaries"], "20");
    assert!(
        text.contains("node_cost_per_month = 2,500 $/month [assumption] set on the command line (--node-cost 2500)")
    );
    let drawn = std::fs::read_to_string(&svg).expect("the SVG was written");
    assert!(drawn.starts_with("<svg ") && drawn.contains("gateway nodes (N+1)"), "{drawn}");
}

#[test]
fn a_p99_target_no_run_met_is_an_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["plan", "--p99-ms", "1", "--input"])
        .arg(input())
        .output()
        .expect("runs loadgen plan");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no clean one-to-one run of the input has p99 within 1 ms"), "{err}");
}
