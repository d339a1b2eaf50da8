//! The planner's arithmetic against examples worked by hand (the working
//! is in each test's comments), and the input file's handling.

use super::{
    collect,
    inputs::{Figure, Figures, Kind, OneToOne, PlanInput, Provenance, SweepRun, SCHEMA},
    model::{self, Plan},
    svg,
    target::{Node, Target},
};

fn fig(value: f64) -> Figure {
    Figure { value, unit: String::new(), kind: Kind::Assumption, source: "test".into() }
}

fn run(rate: f64, p99_ms: f64, gateway_us_per_msg: f64, clean: bool) -> SweepRun {
    SweepRun { rate, p99_ms, gateway_us_per_msg, clean }
}

/// Round figures, so the working by hand stays short.
fn small_input() -> PlanInput {
    PlanInput {
        schema: SCHEMA,
        about: "test".into(),
        provenance: Provenance { date: "d".into(), commit: "c".into(), machine: "m".into(), note: "n".into() },
        one_to_one: OneToOne {
            cores: 2.0,
            source: "test".into(),
            runs: vec![
                run(2000.0, 3.0, 150.0, true),
                run(10_000.0, 40.0, 100.0, true),
                // Within the p99 target but not clean: never used.
                run(20_000.0, 90.0, 80.0, false),
                // Clean but over the p99 target.
                run(40_000.0, 400.0, 50.0, true),
            ],
        },
        figures: Figures {
            box_bytes_per_connection: fig(1024.0),
            connections_per_core: fig(10_000.0),
            connect_cpu_us: fig(500.0),
            cross_node_cpu_factor: fig(1.0),
            group_cpu_us_per_message: fig(1000.0),
            group_size_measured: fig(100.0),
            redis_bytes_per_online_user: fig(100.0),
            redis_commands_per_connect: fig(2.0),
            redis_commands_per_disconnect: fig(1.0),
            events_per_message: fig(2.0),
            store_records_per_message: fig(5.0),
            store_bytes_per_message: fig(300.0),
            store_records_per_group_message: fig(75.0),
            store_bytes_per_group_message: fig(2500.0),
            store_group_size_measured: fig(50.0),
            safety_fraction: fig(0.5),
            session_secs: fig(100.0),
            group_share: fig(0.1),
            redis_lookups_per_delivery: fig(0.5),
            redis_replicas: fig(1.0),
            redis_shard_memory_gib: fig(1.0),
            redis_shard_ops_per_sec: fig(10_000.0),
            group_receipt_events_per_member: fig(0.5),
            event_bytes: fig(200.0),
            kafka_partition_mb_per_sec: fig(5.0),
            kafka_replication: fig(3.0),
            store_replication: fig(2.0),
            storm_window_secs: fig(1.0),
            storm_cpu_ceiling: fig(0.25),
            node_cost_per_month: fig(500.0),
        },
    }
}

fn small_target() -> Target {
    Target {
        users: 400_000.0,
        concurrent: 100_000.0,
        // 864,000,000 / 86,400 = 10,000 msg/s, and a peak factor of 1.
        messages_per_day: 864_000_000.0,
        peak_factor: 1.0,
        group_size: 200.0,
        p99_ms: 100.0,
    }
}

fn small_node() -> Node {
    Node { cores: 4.0, memory_gib: 4.0 }
}

fn value(plan: &Plan, key: &str) -> f64 {
    plan.value(key).unwrap_or_else(|| panic!("no {key} in the plan"))
}

/// Equal within a relative 1e-9 (the plan's arithmetic is in f64).
fn assert_close(plan: &Plan, key: &str, expected: f64) {
    let got = value(plan, key);
    assert!((got - expected).abs() <= 1e-9 * expected.abs().max(1.0), "{key}: got {got}, worked by hand {expected}");
}

#[test]
fn load_cpu_and_connections_match_the_hand_working() {
    let plan = model::plan(&small_input(), &small_target(), &small_node()).expect("plans");
    // The sweep run: clean, p99 <= 100 ms, highest rate -> 10,000 msg/s
    // (20,000 is not clean, 40,000 has p99 400 ms).
    assert_eq!(plan.p99_run.rate, 10_000.0);
    // Load: 864,000,000 / 86,400 x 1 = 10,000 msg/s; groups 10% = 1,000;
    // one-to-one 9,000; connects 100,000 / 100 s = 1,000/s.
    assert_close(&plan, "peak_msgs_per_sec", 10_000.0);
    assert_close(&plan, "group_msgs_per_sec", 1_000.0);
    assert_close(&plan, "direct_msgs_per_sec", 9_000.0);
    assert_close(&plan, "connects_per_sec", 1_000.0);
    // CPU share at the p99 target: 100 µs x 10,000 / (2 x 1e6) = 0.5.
    assert_close(&plan, "cpu_share_at_p99", 0.5);
    // Memory bound: 4 x 2^30 / 1024 = 4,194,304; cores: 4 x 10,000 =
    // 40,000; per node floor(0.5 x 40,000) = 20,000.
    assert_close(&plan, "conns_memory_bound", 4_194_304.0);
    assert_close(&plan, "conns_core_bound", 40_000.0);
    assert_close(&plan, "conns_per_node", 20_000.0);
    // A node at the p99 target: 4 cores x 0.5 x 1e6 / (100 µs x 1.0) =
    // 20,000 one-to-one msg/s.
    assert_close(&plan, "direct_msgs_per_node", 20_000.0);
    // CPU: one-to-one 9,000 x 100 x 1.0 / 1e6 = 0.9 cores; groups
    // 1,000 x 1,000 µs x (200 / 100) x 1.0 / 1e6 = 2.0; connects
    // 1,000 x 500 / 1e6 = 0.5; in all 3.4 cores.
    assert_close(&plan, "direct_cpu_cores", 0.9);
    assert_close(&plan, "group_cpu_cores", 2.0);
    assert_close(&plan, "connect_cpu_cores", 0.5);
    assert_close(&plan, "total_cpu_cores", 3.4);
    // Nodes: connections ceil(100,000 / 20,000) = 5; CPU
    // ceil(3.4 / (4 x 0.5)) = ceil(1.7) = 2; before headroom max = 5.
    assert_close(&plan, "nodes_by_connections", 5.0);
    assert_close(&plan, "nodes_by_cpu", 2.0);
    assert_close(&plan, "nodes_base", 5.0);
}

#[test]
fn the_reconnect_storm_adds_nodes_when_it_binds() {
    let plan = model::plan(&small_input(), &small_target(), &small_node()).expect("plans");
    // A survivor may use 4 cores x 0.25 = 1 core. After losing one of N
    // nodes, a survivor carries 3.4 / (N - 1) cores of steady load plus
    // (100,000 / N) / (N - 1) / 1 s reconnects x 500 µs:
    //   N = 6:  3.4/5 + (100,000/6)/5 x 0.0005 = 0.68   + 1.6667 = 2.3467 > 1
    //   N = 7:  3.4/6 + (100,000/7)/6 x 0.0005 = 0.5667 + 1.1905 = 1.7571 > 1
    //   N = 8:  3.4/7 + (100,000/8)/7 x 0.0005 = 0.4857 + 0.8929 = 1.3786 > 1
    //   N = 9:  3.4/8 + (100,000/9)/8 x 0.0005 = 0.425  + 0.6944 = 1.1194 > 1
    //   N = 10: 3.4/9 + (100,000/10)/9 x 0.0005 = 0.3778 + 0.5556 = 0.9333 <= 1
    // so 10 nodes, not the 6 of plain N+1.
    assert_close(&plan, "storm_cpu_ceiling_cores", 1.0);
    assert_close(&plan, "gateway_nodes", 10.0);
    assert_close(&plan, "storm_reconnects_per_survivor_per_sec", 10_000.0 / 9.0);
    assert_close(&plan, "storm_survivor_cpu_cores", 3.4 / 9.0 + 10_000.0 / 9.0 * 0.0005);
    assert_close(&plan, "conns_per_survivor", 100_000.0 / 9.0);
    // 10 x 500 = 5,000 a month.
    assert_close(&plan, "gateway_cost_per_month", 5_000.0);
}

#[test]
fn plain_n_plus_one_when_the_storm_fits() {
    // A 1-core ceiling per survivor raised to 4 cores (ceiling 1.0):
    // N = 6 gives 0.68 + 1.6667 = 2.3467 <= 4, so N = base + 1 = 6.
    let mut input = small_input();
    input.set("storm_cpu_ceiling", 1.0, "test").expect("a known figure");
    let plan = model::plan(&input, &small_target(), &small_node()).expect("plans");
    assert_close(&plan, "gateway_nodes", 6.0);
}

#[test]
fn redis_kafka_and_store_match_the_hand_working() {
    let plan = model::plan(&small_input(), &small_target(), &small_node()).expect("plans");
    // Redis memory: 100,000 x 100 B = 10,000,000 B / 2^30 GiB; with one
    // replica twice that.
    assert_close(&plan, "redis_memory_gib", 1e7 / 1_073_741_824.0);
    assert_close(&plan, "redis_memory_total_gib", 2e7 / 1_073_741_824.0);
    // Connects and disconnects: 1,000/s x (2 + 1) = 3,000 ops/s.
    assert_close(&plan, "redis_session_ops_per_sec", 3_000.0);
    // Lookups: deliveries 9,000 + 1,000 x 199 = 208,000/s, on another
    // node 9 in 10 (N = 10), 0.5 lookups each: 208,000 x 0.9 x 0.5 = 93,600.
    assert_close(&plan, "redis_lookup_ops_per_sec", 93_600.0);
    assert_close(&plan, "redis_ops_per_sec", 96_600.0);
    // The storm: 100,000 / 10 nodes / 1 s x 2 commands = 20,000 ops/s more.
    assert_close(&plan, "redis_storm_ops_per_sec", 20_000.0);
    // Shards: max(ceil(0.0093 / 1), ceil(96,600 / 10,000)) = max(1, 10) = 10.
    assert_close(&plan, "redis_shards", 10.0);

    // Kafka: a group message makes 1 + 199 x 0.5 = 100.5 events; events/s
    // 9,000 x 2 + 1,000 x 100.5 = 118,500; x 200 B = 23.7 MB/s;
    // partitions ceil(23.7 / 5) = 5. Per day: 864,000,000 x (0.9 x 2 +
    // 0.1 x 100.5) = 864,000,000 x 11.85 events x 200 B x 3 copies / 1e12
    // = 6.14304 TB.
    assert_close(&plan, "kafka_events_per_sec", 118_500.0);
    assert_close(&plan, "kafka_mb_per_sec", 23.7);
    assert_close(&plan, "kafka_partitions", 5.0);
    assert_close(&plan, "kafka_tb_per_day", 6.14304);

    // Store: the store figures were measured with groups of 50; a group
    // message of 200 is 75 x 200 / 50 = 300 records and 2,500 x 200 / 50 =
    // 10,000 B. Writes/s 9,000 x 5 + 1,000 x 300 = 345,000.
    // Per day 864,000,000 x (0.9 x 300 + 0.1 x 10,000) = 864,000,000 x
    // 1,270 B = 1.09728 TB; 2 copies 2.19456 TB.
    assert_close(&plan, "store_writes_per_sec", 345_000.0);
    assert_close(&plan, "store_tb_per_day", 1.09728);
    assert_close(&plan, "store_tb_per_day_replicated", 2.19456);
}

#[test]
fn every_result_shows_its_formula_with_the_figures_put_in() {
    let plan = model::plan(&small_input(), &small_target(), &small_node()).expect("plans");
    let q = plan.sections.iter().flat_map(|s| &s.quantities).find(|q| q.key == "conns_per_node").expect("present");
    assert_eq!(
        q.formula,
        "floor(safety_fraction x min(memory bound, core bound)) = floor(0.5 x min(4,194,304, 40,000)) = 20,000"
    );
    for q in plan.sections.iter().flat_map(|s| &s.quantities) {
        assert!(q.formula.contains(" = "), "{} has no worked formula: {}", q.key, q.formula);
    }
}

#[test]
fn the_p99_target_chooses_the_sweep_run() {
    let input = small_input();
    // Within 3 ms only the 2,000 msg/s run; within 500 ms the 40,000 one.
    assert_eq!(model::p99_run(&input, 3.0).expect("one run").rate, 2000.0);
    assert_eq!(model::p99_run(&input, 500.0).expect("one run").rate, 40_000.0);
    let err = model::p99_run(&input, 1.0).expect_err("no run within 1 ms");
    assert!(err.to_string().contains("no clean one-to-one run"), "{err}");
    // A tighter target costs CPU: at 3 ms the 2,000 msg/s run, 150 µs x
    // 2,000 / 2e6 = 0.15 of the box.
    let mut target = small_target();
    target.p99_ms = 3.0;
    let plan = model::plan(&input, &target, &small_node()).expect("plans");
    assert_close(&plan, "cpu_share_at_p99", 0.15);
    // One-to-one CPU 9,000 x 150 / 1e6 = 1.35; 1.35 + 2.0 + 0.5 = 3.85;
    // ceil(3.85 / 0.6) = ceil(6.42) = 7 nodes by CPU.
    assert_close(&plan, "nodes_by_cpu", 7.0);
}

#[test]
fn the_design_target_peaks_at_1_2_million_per_second() {
    // 100,000,000,000 / 86,400 = 1,157,407.4 msg/s mean, x 1.0368 = 1,200,000.
    assert!((Target::default().peak_rate() - 1_200_000.0).abs() < 1e-6);
}

#[test]
fn overrides_name_their_flag_and_unknown_names_are_refused() {
    let mut input = small_input();
    input.set("session_secs", 600.0, "--set session_secs=600").expect("known");
    assert_eq!(input.figures.session_secs.value, 600.0);
    assert_eq!(input.figures.session_secs.source, "set on the command line (--set session_secs=600)");
    let err = input.set("no_such_figure", 1.0, "x").expect_err("unknown");
    assert!(err.to_string().contains("no figure named no_such_figure"), "{err}");
    let err = input.set("group_share", 1.5, "x").expect_err("a fraction above 1");
    assert!(err.to_string().contains("at most 1"), "{err}");
}

#[test]
fn an_input_file_round_trips_and_other_schemas_are_refused() {
    let input = small_input();
    let text = serde_json::to_string(&input).expect("encodes");
    assert_eq!(PlanInput::parse(&text).expect("parses"), input);
    let other = text.replacen("\"schema\":1", "\"schema\":2", 1);
    let err = PlanInput::parse(&other).expect_err("schema 2");
    assert!(err.to_string().contains("schema 2"), "{err}");
}

#[test]
fn plan_input_takes_the_bench_run_figures_and_keeps_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("write");
    let o2o = |p99: f64, us: f64, lost: u64| {
        format!(
            r#"{{"lost":{lost},"duplicated":0,"refused_sends":0,"achieved_delivery_rate":{{RATE}},"delivery_ms":{{"p99_ms":{p99}}},"cpu":{{"gateway_us_per_msg":{us},"box_cores":4}}}}"#
        )
    };
    write("o2o-chatgw-5000.json", &o2o(4.0, 90.0, 0).replace("{RATE}", "5000"));
    write("o2o-chatgw-10000.json", &o2o(8.0, 70.0, 3).replace("{RATE}", "10000"));
    // Other systems' runs are not chatgw's sweep.
    write("o2o-baseline-5000.json", &o2o(1.0, 40.0, 0).replace("{RATE}", "5000"));
    write(
        "box-memory.json",
        r#"{"established":60000,"box_bytes_per_connection":9000,"gateway_bytes_per_connection":300}"#,
    );
    write("group-chatgw.json", r#"{"config":{"size":128},"cpu":{"gateway_us_per_msg":1500}}"#);
    write("machine.txt", "date:    2027-01-01T00:00Z\ncpu:     Test CPU x 4\nmemory:  8 GiB\ncommit:  abc1234\n");
    let base = small_input();
    let input = collect::collect(dir.path(), base.clone()).expect("collects");
    assert_eq!(input.one_to_one.cores, 4.0);
    assert_eq!(
        input.one_to_one.runs,
        vec![run(5000.0, 4.0, 90.0, true), run(10_000.0, 8.0, 70.0, false)],
        "the 10,000 run lost messages: not clean"
    );
    assert_eq!(input.figures.box_bytes_per_connection.value, 9000.0);
    // 60,000 held on 4 cores = 15,000 per core.
    assert_eq!(input.figures.connections_per_core.value, 15_000.0);
    assert_eq!(input.figures.group_cpu_us_per_message.value, 1500.0);
    assert_eq!(input.figures.group_size_measured.value, 128.0);
    // The store's group figures keep their own size (store-bench's).
    assert_eq!(input.figures.store_group_size_measured, base.figures.store_group_size_measured);
    assert_eq!(input.figures.box_bytes_per_connection.kind, Kind::Measured);
    assert_eq!(input.provenance.commit, "abc1234");
    // What bench.sh does not measure is the base file's, source and all.
    assert_eq!(input.figures.redis_bytes_per_online_user, base.figures.redis_bytes_per_online_user);
    assert_eq!(input.figures.session_secs, base.figures.session_secs);
}

#[test]
fn the_svg_draws_the_plan_at_each_size() {
    let text = svg::render(&small_input(), &small_target(), &small_node()).expect("renders");
    assert!(text.starts_with("<svg ") && text.trim_end().ends_with("</svg>"));
    assert_eq!(text.matches("<polyline ").count(), 3);
    // 20 sizes per line.
    let first = text.lines().find(|l| l.starts_with("<polyline ")).expect("a line");
    let points = first.split("points=\"").nth(1).and_then(|p| p.split('"').next()).expect("points");
    assert_eq!(points.split_whitespace().count(), 20);
}
