//! `cargo xtask`: one entry point for repository chores.
//!
//! - `cargo xtask ci`: the same steps as `.ci/run` (fmt, clippy, tests, format check).
//! - `cargo xtask format`: checks that every golden vector of the chunk
//!   format appears verbatim in `docs/format.md`.
//! - `cargo xtask bench [--full] [crate…]`: runs the criterion benches
//!   (criterion's `--quick` mode unless `--full`) and prints one table of
//!   operation, measured value and target, read from criterion's results.
//! - `cargo xtask soak [--rounds N] [--replicas K] [--seed S] [--kill-every M]`:
//!   drives the release `larder` binary through seeded rounds of appends and
//!   syncs with SIGKILLs, then checks convergence (`soak.rs`; not run in CI).
//! - `cargo xtask man [DIR]`: writes the `larder` man pages (clap_mangen,
//!   from the CLI's own definitions) into DIR, default `target/man`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod soak;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("format") => format_check(),
        Some("bench") => bench(&args[1..]),
        Some("soak") => soak::soak(&args[1..]),
        Some("man") => man(args.get(1).map(String::as_str)),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|format|bench [--full] [crate...]|man [DIR]|soak [--rounds N] [--replicas K] [--seed S] [--kill-every M] [--keep] [--larder PATH]>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn run(program: &str, args: &[&str]) -> Result<(), String> {
    eprintln!("$ {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed", args.join(" ")))
    }
}

/// Writes `larder.1` and one page per command into `dir` (default
/// `target/man`) through the CLI's hidden `__man` command, so the pages
/// come from the same clap definitions as `--help`.
fn man(dir: Option<&str>) -> Result<(), String> {
    let dir = dir.map_or_else(|| root().join("target").join("man"), PathBuf::from);
    let dir = dir.display().to_string();
    run(
        "cargo",
        &["run", "--quiet", "-p", "larder-cli", "--", "__man", &dir],
    )?;
    eprintln!("man pages in {dir} (try `man -l {dir}/larder.1`)");
    Ok(())
}

/// The CI pipeline; `.ci/run` runs exactly these steps.
fn ci() -> Result<(), String> {
    run("cargo", &["fmt", "--all", "--", "--check"])?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    run("cargo", &["test", "--workspace", "--locked"])?;
    format_check()
}

/// Every `name: value` line of the codec's golden snapshots must appear in
/// `docs/format.md`, so the documented bytes are the bytes the code writes.
fn format_check() -> Result<(), String> {
    let root = root();
    let doc_path = root.join("docs/format.md");
    let doc = std::fs::read_to_string(&doc_path)
        .map_err(|e| format!("cannot read {}: {e}", doc_path.display()))?;
    let snapshots = root.join("crates/larder-codec/tests/snapshots");
    let mut entries: Vec<_> = std::fs::read_dir(&snapshots)
        .map_err(|e| format!("cannot read {}: {e}", snapshots.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "snap"))
        .collect();
    entries.sort();
    let mut checked = 0;
    let mut missing = Vec::new();
    for path in &entries {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        // Skip insta's front matter (between the first two `---` lines).
        let body = text.splitn(3, "---\n").nth(2).unwrap_or("");
        for line in body.lines().filter(|l| l.contains(": ")) {
            checked += 1;
            if !doc.contains(line.trim()) {
                missing.push(format!("{}: {}", path.display(), line.trim()));
            }
        }
    }
    if checked == 0 {
        return Err("no golden vectors found: the check would prove nothing".into());
    }
    if !missing.is_empty() {
        return Err(format!(
            "docs/format.md is missing {} golden vector line(s):\n{}",
            missing.len(),
            missing.join("\n")
        ));
    }
    eprintln!("format: {checked} golden vector lines match docs/format.md");
    Ok(())
}

/// The benches, what unit their throughput is reported in, and the target
/// each is held to (from the issues; "—" when there is none).
const BENCHES: &[(&str, &str, &str)] = &[
    ("codec/encode/10000", "MB/s", ">= 200 MB/s"),
    ("codec/decode/10000", "MB/s", ">= 200 MB/s"),
    ("codec/decode_verified/10000", "MB/s", "—"),
    ("wal_append/single_event", "/s", ">= 2,500 /s"),
    (
        "wal_append/single_event_unconsolidated",
        "/s",
        "(consolidation off)",
    ),
    (
        "wal_append/eight_threads_single_event",
        "events/s",
        ">= 10k events/s",
    ),
    ("wal_append/gix_baseline_single", "/s", "baseline"),
    ("wal_append/single_event_fsync", "/s", "—"),
    (
        "wal_append/batch_1000_events",
        "events/s",
        ">= 300k events/s",
    ),
    (
        "wal_append/batch_1000_events_unconsolidated",
        "events/s",
        "(consolidation off)",
    ),
    (
        "wal_read/read_all_100k_in_1000_event_chunks",
        "events/s",
        ">= 1M events/s",
    ),
    (
        "wal_read/read_all_10k_single_event_commits_compacted",
        "events/s",
        ">= 150k events/s",
    ),
    (
        "wal_read/read_all_10k_single_event_commits_as_appended",
        "events/s",
        "(tiered packs)",
    ),
    (
        "wal_read/read_since_last_10_of_10k_uncompacted",
        "time",
        "independent of length",
    ),
    (
        "wal_read/read_since_last_10_of_10k_compacted",
        "time",
        "independent of length",
    ),
    (
        "wal_read/read_since_last_10_of_1k_compacted",
        "time",
        "(compare)",
    ),
    ("wal_compact/compact_1000_appends", "time", "—"),
    (
        "crdt_order/merge_sorted_16_streams_1M",
        "events/s",
        ">= 5M events/s",
    ),
    (
        "crdt_order/sort_events_1M_from_16_actors",
        "events/s",
        ">= 5M events/s",
    ),
    (
        "crdt_projection/kv_apply_1M_ops_100k_keys",
        "events/s",
        ">= 2M ops/s",
    ),
    (
        "sync/pull_10k_events_in_100_event_chunks",
        "time",
        "<= 300 ms",
    ),
    ("sync/push_10k_events_in_100_event_chunks", "time", "—"),
    ("sync/sync_round_16_actors", "time", "—"),
    (
        "snapshot/rebuild_from_snapshot_100k_plus_1k_tail",
        "time",
        "<= 20 ms",
    ),
    ("snapshot/full_replay_101k_events", "time", "(compare)"),
    ("snapshot/create_100k_events_with_kv_state", "time", "—"),
    ("lock/acquire_release_local", "time", "<= 2 ms"),
    ("lock/acquire_release_file_remote", "time", "<= 10 ms"),
    (
        "facade_append/single_event_log_1k",
        "/s",
        "equal to the 100k row",
    ),
    (
        "facade_append/single_event_log_100k",
        "/s",
        "equal to the 1k row",
    ),
    ("sync/pull_nothing_new_10_heads", "time", "(growth)"),
    ("sync/pull_nothing_new_100_heads", "time", "(growth)"),
    ("sync/pull_nothing_new_1000_heads", "time", "<= 50 ms"),
    (
        "sync/push_100_single_event_commits_to_200_packs",
        "time",
        "(presence per transfer)",
    ),
    (
        "sync/pull_100_single_event_commits_into_200_packs",
        "time",
        "(presence per transfer)",
    ),
    ("kv/get_warm_10k_keys", "/s", ">= 500k /s"),
    ("kv/scan_10k_keys", "time", "<= 10 ms"),
    ("kv/open_up_to_date_10k_keys", "time", "<= 10 ms"),
    ("kv/set_single_eventual", "/s", ">= 1,500 /s"),
    ("kv/set_batch_1000_eventual", "keys/s", ">= 300k keys/s"),
    (
        "kv/rebuild_100k_keys_from_snapshot_plus_10k_tail",
        "time",
        "(1M keys: <= 2 s)",
    ),
    (
        "kv/rebuild_1000k_keys_from_snapshot_plus_10k_tail",
        "time",
        "<= 2 s",
    ),
    ("kv/set_single_linearizable", "/s", ">= 300 /s"),
    ("kv/set_8_writers_linearizable", "/s", ">= 2,000 /s"),
];

const BENCH_CRATES: &[&str] = &[
    "larder-codec",
    "larder-wal",
    "larder-crdt",
    "larder-sync",
    "larder-snapshot",
    "larder-lock",
    "larder-kv",
    "larder",
];

/// Runs the benches and prints the summary table.
fn bench(args: &[String]) -> Result<(), String> {
    let full = args.iter().any(|a| a == "--full");
    let chosen: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--"))
        .map(String::as_str)
        .collect();
    let crates: Vec<&str> = if chosen.is_empty() {
        BENCH_CRATES.to_vec()
    } else {
        chosen
    };
    for krate in &crates {
        let mut cmd = vec!["bench", "--locked", "-p", krate, "--bench", "*", "--"];
        if !full {
            cmd.push("--quick");
        }
        run("cargo", &cmd)?;
    }
    print_table()
}

fn print_table() -> Result<(), String> {
    let dir = root().join("target/criterion");
    println!("\n| operation | measured | target |\n|---|---|---|");
    let mut shown = 0;
    for (id, unit, target) in BENCHES {
        let base = dir.join(id).join("new");
        let (Ok(est), Ok(meta)) = (
            std::fs::read_to_string(base.join("estimates.json")),
            std::fs::read_to_string(base.join("benchmark.json")),
        ) else {
            continue;
        };
        let est: serde_json::Value = serde_json::from_str(&est).map_err(|e| e.to_string())?;
        let meta: serde_json::Value = serde_json::from_str(&meta).map_err(|e| e.to_string())?;
        let Some(ns) = est["mean"]["point_estimate"].as_f64() else {
            continue;
        };
        let seconds = ns / 1e9;
        let measured = match *unit {
            "MB/s" => meta["throughput"]["Bytes"]
                .as_f64()
                .map(|b| format!("{:.0} MB/s", b / seconds / 1e6)),
            "time" => Some(if seconds < 1e-3 {
                format!("{:.0} µs", seconds * 1e6)
            } else {
                format!("{:.1} ms", seconds * 1e3)
            }),
            _ => meta["throughput"]["Elements"].as_f64().map(|n| {
                let rate = n / seconds;
                if rate >= 1e6 {
                    format!("{:.2}M {unit}", rate / 1e6)
                } else if rate >= 1e4 {
                    format!("{:.0}k {unit}", rate / 1e3)
                } else {
                    format!("{rate:.0} {unit}")
                }
            }),
        };
        if let Some(m) = measured {
            println!("| {id} | {m} | {target} |");
            shown += 1;
        }
    }
    if shown == 0 {
        return Err("no criterion results under target/criterion: run the benches first".into());
    }
    Ok(())
}
