//! `ferry scan` and `ferry tune` through the real binary.

mod support;

use support::*;

#[test]
fn scan_reports_the_tree_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let v1 = tmp.path().join("v1");
    make_v1(&v1);
    let out = json(&ferry_ok(&["scan", &v1.display().to_string(), "--json"]));
    assert!(out["files"].as_u64().unwrap() > 0);
    assert!(out["bytes"].as_u64().unwrap() > 1 << 20);
    assert!(out["unique_chunks"].as_u64().unwrap() <= out["chunks"].as_u64().unwrap());
    assert_eq!(out["avg_chunk"], 16384, "the default average");

    let err = ferry_err(&["scan", &v1.display().to_string(), "--avg-chunk", "7"]);
    assert!(err.contains("chunk size options"), "{err}");
}

#[test]
fn tune_ranks_settings_on_a_history_and_draws_a_chart() {
    let tmp = tempfile::tempdir().unwrap();
    let (v1, v2) = (tmp.path().join("v1"), tmp.path().join("v2"));
    make_v1(&v1);
    make_v2(&v1, &v2);
    let plot = tmp.path().join("tune.svg");
    let args = [
        "tune",
        &v1.display().to_string(),
        &v2.display().to_string(),
        "--avg",
        "16,64",
        "--levels",
        "3",
        "--fixed",
        "64",
        "--json",
        "--plot",
        &plot.display().to_string(),
    ]
    .map(String::from);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let rows = json(&ferry_ok(&args));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3, "two CDC settings and one fixed");
    for r in rows {
        let updates = r["update_bytes"].as_array().unwrap();
        assert_eq!(updates.len(), 1);
        // v2 rewrites 64 KiB of a 6 MiB library and adds a file: an
        // update moves a small part of the version.
        assert!(updates[0].as_u64().unwrap() < 2 << 20, "{r}");
    }
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.starts_with("<svg"));

    let err = ferry_err(&["tune", &v1.display().to_string()]);
    assert!(!err.is_empty());
}
