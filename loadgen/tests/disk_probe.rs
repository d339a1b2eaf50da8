//! `loadgen disk` against a real directory: the figures it writes, the
//! scratch file it leaves behind (none), and `--check` deciding the exit
//! status.

use std::process::Command;

fn loadgen() -> Command {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
}

#[test]
fn probe_reports_every_figure_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("disk.json");
    let out = loadgen()
        .args(["disk", "--quiet", "--duration", "1s", "--bytes", "512", "--dir"])
        .arg(dir.path())
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.success(), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("p99 floor"), "{stdout}");

    let r: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["scenario"], "disk");
    assert_eq!(r["config"]["bytes"], 512);
    let syncs = r["syncs"].as_u64().unwrap();
    assert!(syncs > 0, "{r}");
    assert_eq!(r["sync_ms"]["count"].as_u64(), Some(syncs));
    let secs = r["secs"].as_f64().unwrap();
    // At least the duration; the last sync may run long on a stalling disk.
    assert!((1.0..120.0).contains(&secs), "{r}");
    assert!(r["sync_ms"]["p50_ms"].as_f64().unwrap() > 0.0, "{r}");
    assert_eq!(r["target_ms"].as_f64(), Some(5.0));
    // The floors are lower bounds: never above the longest sync, and the
    // 99.9% floor never below the 99% one.
    let (p99, p999) = (r["floor_p99_ms"].as_f64().unwrap(), r["floor_p999_ms"].as_f64().unwrap());
    let max = r["sync_ms"]["max_ms"].as_f64().unwrap();
    assert!(p99 <= p999 && p999 <= max + 0.001, "{r}");
    let stalled = r["stalled_pct"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&stalled), "{r}");

    // Only the JSON is left: the scratch file is gone.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("disk.json")]);
}

#[test]
fn a_failed_check_exits_1_and_a_bad_name_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    // No disk syncs in less than no time.
    let failed = loadgen()
        .args(["disk", "--quiet", "--duration", "200ms", "--check", "p50_sync<0ms", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(failed.status.code(), Some(1), "stderr: {}", String::from_utf8_lossy(&failed.stderr));
    assert!(String::from_utf8_lossy(&failed.stderr).contains("check(s) failed"));

    let bad = loadgen().args(["disk", "--quiet", "--check", "nonsense<1", "--dir"]).arg(dir.path()).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn bad_settings_are_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, value) in [("--bytes", "0"), ("--bytes", "67108865"), ("--duration", "0s")] {
        let out = loadgen().args(["disk", "--quiet", flag, value, "--dir"]).arg(dir.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{flag} {value}");
        assert!(String::from_utf8_lossy(&out.stderr).contains(flag), "{flag} {value}");
    }
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_missing_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = loadgen()
        .args(["disk", "--quiet", "--duration", "200ms", "--dir"])
        .arg(dir.path().join("absent"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("creating the scratch file"));
}
