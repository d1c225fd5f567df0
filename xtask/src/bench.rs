//! `cargo xtask bench`: runs the criterion benches and the measuring
//! examples, then renders one table — operation, bench id, measured value,
//! target — to stdout and into README.md between the
//! `<!-- bench-table -->` markers. Every row comes from a stored result of
//! one named bench or measurement; nothing in the table is typed by hand.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, run_with_env};

/// One row: the criterion bench id (or `measure/…` id), what it measures,
/// the unit its throughput is reported in (`time`, `MB/s`, `bytes`, or an
/// element rate such as `/s`), and the target it is held to (from the
/// issues; "—" when there is none).
struct Row {
    id: &'static str,
    operation: &'static str,
    unit: &'static str,
    target: &'static str,
}

const fn row(
    id: &'static str,
    operation: &'static str,
    unit: &'static str,
    target: &'static str,
) -> Row {
    Row {
        id,
        operation,
        unit,
        target,
    }
}

const ROWS: &[Row] = &[
    row(
        "codec/encode/10000",
        "encode a 10k-event chunk",
        "MB/s",
        "≥ 200 MB/s",
    ),
    row(
        "codec/decode/10000",
        "decode a 10k-event chunk",
        "MB/s",
        "≥ 200 MB/s",
    ),
    row(
        "codec/decode_verified/10000",
        "decode a 10k-event chunk, checking its id",
        "MB/s",
        "—",
    ),
    row(
        "wal_append/single_event",
        "single-event append",
        "/s",
        "≥ 2,500 /s",
    ),
    row(
        "wal_append/single_event_unconsolidated",
        "single-event append, no pack merging",
        "/s",
        "(compare)",
    ),
    row(
        "wal_append/gix_baseline_single",
        "the same objects written loose by plain gix",
        "/s",
        "(baseline)",
    ),
    row(
        "wal_append/single_event_fsync",
        "single-event append, fsync",
        "/s",
        "—",
    ),
    row(
        "wal_append/eight_threads_single_event",
        "8 threads appending single events (group commit)",
        "events/s",
        "≥ 10k events/s",
    ),
    row(
        "wal_append/batch_1000_events",
        "batched append, 1,000 events",
        "events/s",
        "≥ 300k events/s",
    ),
    row(
        "wal_append/batch_1000_events_unconsolidated",
        "batched append, no pack merging",
        "events/s",
        "(compare)",
    ),
    row(
        "wal_read/read_all_100k_in_1000_event_chunks",
        "read_all, 1,000-event chunks",
        "events/s",
        "≥ 1M events/s",
    ),
    row(
        "wal_read/read_all_10k_single_event_commits_compacted",
        "read_all, 10k single-event commits, compacted",
        "events/s",
        "≥ 150k events/s",
    ),
    row(
        "wal_read/read_all_10k_single_event_commits_as_appended",
        "read_all, 10k single-event commits as appended",
        "events/s",
        "(tiered packs)",
    ),
    row(
        "wal_read/read_since_last_10_of_1k_compacted",
        "read_since the last 10 of 1k commits",
        "time",
        "(compare)",
    ),
    row(
        "wal_read/read_since_last_10_of_10k_compacted",
        "read_since the last 10 of 10k commits",
        "time",
        "independent of length",
    ),
    row(
        "wal_read/read_since_last_10_of_10k_uncompacted",
        "read_since the last 10 of 10k commits, as appended",
        "time",
        "independent of length",
    ),
    row(
        "wal_compact/compact_1000_appends",
        "compact() after 1,000 appends",
        "time",
        "—",
    ),
    row(
        "measure/compact_2000_single_appends_bytes",
        "bytes on disk after compact(), 2,000 single-event appends (100-byte payloads)",
        "bytes",
        "≤ 1.2 MB",
    ),
    row(
        "measure/read_1m_events_peak_rss",
        "peak RSS, streaming read of 1M events (1,000-event commits)",
        "bytes",
        "bounded",
    ),
    row(
        "crdt_order/merge_sorted_16_streams_1M",
        "k-way merge of 1M events, 16 actors",
        "events/s",
        "≥ 5M events/s",
    ),
    row(
        "crdt_order/sort_events_1M_from_16_actors",
        "sort 1M events, 16 actors",
        "events/s",
        "≥ 5M events/s",
    ),
    row(
        "crdt_projection/kv_apply_1M_ops_100k_keys",
        "KV projection, 1M ops over 100k keys",
        "ops/s",
        "≥ 2M ops/s",
    ),
    row(
        "sync/pull_10k_events_in_100_event_chunks",
        "pull 10k events (file remote)",
        "time",
        "≤ 100 ms",
    ),
    row(
        "sync/push_10k_events_in_100_event_chunks",
        "push 10k events (file remote)",
        "time",
        "—",
    ),
    row(
        "sync/sync_round_16_actors",
        "one sync round of 16 actors",
        "time",
        "—",
    ),
    row(
        "sync/pull_nothing_new_10_heads",
        "pull with nothing new, 10 actors' heads",
        "time",
        "(growth)",
    ),
    row(
        "sync/pull_nothing_new_100_heads",
        "pull with nothing new, 100 actors' heads",
        "time",
        "(growth)",
    ),
    row(
        "sync/pull_nothing_new_1000_heads",
        "pull with nothing new, 1,000 actors' heads",
        "time",
        "≤ 50 ms",
    ),
    row(
        "sync/push_100_single_event_commits_to_200_packs",
        "push 100 new single-event commits into a remote of 200 packs",
        "time",
        "—",
    ),
    row(
        "sync/pull_100_single_event_commits_into_200_packs",
        "pull 100 new single-event commits into a replica of 200 packs",
        "time",
        "—",
    ),
    row(
        "snapshot/rebuild_from_snapshot_100k_plus_1k_tail",
        "rebuild from a 100k-event snapshot + 1k tail",
        "time",
        "≤ 20 ms",
    ),
    row(
        "snapshot/full_replay_101k_events",
        "full replay of 101k events",
        "time",
        "(compare)",
    ),
    row(
        "snapshot/create_100k_events_with_kv_state",
        "create a snapshot of 100k events with KV state",
        "time",
        "—",
    ),
    row(
        "lock/acquire_release_local",
        "lock acquire + release, local",
        "time",
        "≤ 0.5 ms",
    ),
    row(
        "lock/acquire_release_file_remote",
        "lock acquire + release, file remote",
        "time",
        "≤ 0.5 ms",
    ),
    row(
        "facade_append/single_event_log_1k",
        "facade append to a 1k-event log",
        "/s",
        "equal to the 100k row",
    ),
    row(
        "facade_append/single_event_log_100k",
        "facade append to a 100k-event log",
        "/s",
        "equal to the 1k row",
    ),
    row(
        "kv/get_warm_10k_keys",
        "key-value get, warm",
        "/s",
        "≥ 500k /s",
    ),
    row(
        "kv/scan_10k_keys",
        "key-value scan of 10k keys",
        "time",
        "≤ 10 ms",
    ),
    row(
        "kv/open_up_to_date_10k_keys",
        "open an up-to-date key-value store",
        "time",
        "≤ 10 ms",
    ),
    row(
        "kv/set_single_eventual",
        "key-value set, eventual",
        "/s",
        "≥ 1,500 /s",
    ),
    row(
        "kv/set_batch_1000_eventual",
        "key-value set, eventual, batches of 1,000",
        "keys/s",
        "≥ 300k keys/s",
    ),
    row(
        "kv/rebuild_100k_keys_from_snapshot_plus_10k_tail",
        "key-value rebuild, 100k keys from snapshot + 10k tail",
        "time",
        "(1M keys: ≤ 2 s)",
    ),
    row(
        "kv/rebuild_1000k_keys_from_snapshot_plus_10k_tail",
        "key-value rebuild, 1M keys from snapshot + 10k tail",
        "time",
        "≤ 2 s",
    ),
    row(
        "kv/set_single_linearizable",
        "linearizable set, one writer (local bare authority)",
        "/s",
        "≥ 300 /s",
    ),
    row(
        "kv/set_8_writers_linearizable",
        "linearizable set, 8 writers in one process",
        "/s",
        "≥ 2,000 /s",
    ),
];

/// The crates with criterion benches, in the order they run.
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

/// The measurements that are not timings (bytes on disk, peak memory): each
/// runs a release example that prints one `<id> <bytes>` line per result.
const MEASURES: &[(&str, &[&str])] = &[(
    "larder-wal",
    &[
        "run",
        "--release",
        "--locked",
        "-p",
        "larder-wal",
        "--example",
        "measure",
        "--",
    ],
)];

const START: &str = "<!-- bench-table:start (written by `cargo xtask bench`) -->";
const END: &str = "<!-- bench-table:end -->";

/// Runs the benches (`--quick` unless `--full`; repositories under `--dir`
/// when given) of the chosen crates (all by default) and the measurements, then prints the table and writes it into
/// README.md. `--table-only` skips running and renders what is stored.
pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let full = args.iter().any(|a| a == "--full");
    let table_only = args.iter().any(|a| a == "--table-only");
    let dir = match args.iter().position(|a| a == "--dir") {
        Some(i) => Some(
            args.get(i + 1)
                .filter(|d| !d.starts_with("--"))
                .ok_or("--dir needs a directory")?,
        ),
        None => None,
    };
    let chosen: Vec<&str> = args
        .iter()
        .filter(|a| !a.starts_with("--") && Some(*a) != dir)
        .map(String::as_str)
        .collect();
    let crates: Vec<&str> = if chosen.is_empty() {
        BENCH_CRATES.to_vec()
    } else {
        chosen
    };
    if !table_only {
        // The benches' repositories (and the measuring examples'): under
        // `--dir`, else cargo's target tmp dir, passed on as the testkit's
        // `LARDER_BENCH_DIR`.
        let scratch = match dir {
            Some(dir) => {
                let dir = std::path::absolute(dir).map_err(|e| format!("--dir {dir}: {e}"))?;
                if !dir.is_dir() {
                    return Err(format!("--dir {}: not a directory", dir.display()));
                }
                dir
            }
            None => root().join("target").join("tmp"),
        };
        record_file_system(&scratch)?;
        let env = [("LARDER_BENCH_DIR", scratch.as_os_str())];
        let quick: &[&str] = if full { &[] } else { &["--quick"] };
        for krate in &crates {
            let cmd = [
                &["bench", "--locked", "-p", krate, "--bench", "*", "--"],
                quick,
            ]
            .concat();
            run_with_env("cargo", &cmd, &env)?;
            if *krate == "larder-kv" {
                // The 1M-key rebuild row: the kv bench sizes that store by
                // an environment variable (100k keys otherwise).
                let cmd = [
                    &["bench", "--locked", "-p", krate, "--bench", "kv", "--"],
                    quick,
                    &["kv/rebuild"],
                ]
                .concat();
                let keys = [env[0], ("KV_BENCH_REBUILD_KEYS", "1000000".as_ref())];
                run_with_env("cargo", &cmd, &keys)?;
            }
        }
        for (krate, cmd) in MEASURES {
            if crates.contains(krate) {
                measure(cmd, &env)?;
            }
        }
    }
    let table = render()?;
    println!("\n{table}");
    write_readme(&table)
}

/// Where the description of the benches' file system is stored.
fn file_system_path() -> PathBuf {
    root().join("target/criterion/larder-bench-file-system.txt")
}

/// Stores which file system `dir` is on, for the table: what creating,
/// renaming and deleting small files costs — most of a write — depends on
/// it more than on anything else.
fn record_file_system(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let path = file_system_path();
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    let described = describe_file_system(dir);
    eprintln!("benches' repositories: {} ({described})", dir.display());
    std::fs::write(&path, described).map_err(|e| format!("{}: {e}", path.display()))
}

/// `dir`'s file system as `/proc/mounts` tells: its type (for ext4, with
/// or without a journal — without one, ext4 skips every inode freed in the
/// last ~30 s when it allocates one, so creating files right after
/// deleting many is slow), device, mount point and options.
fn describe_file_system(dir: &Path) -> String {
    let (Ok(dir), Ok(mounts)) = (
        std::fs::canonicalize(dir),
        std::fs::read_to_string("/proc/mounts"),
    ) else {
        return "an unknown file system".into();
    };
    let mount = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            Some((
                fields.next()?,
                fields.next()?,
                fields.next()?,
                fields.next()?,
            ))
        })
        .filter(|(_, at, _, _)| dir.starts_with(at))
        .max_by_key(|(_, at, _, _)| at.len());
    let Some((device, at, kind, options)) = mount else {
        return "an unknown file system".into();
    };
    let kind = if kind == "ext4" {
        let name = device.rsplit('/').next().unwrap_or(device);
        let journaled = std::fs::read_dir("/proc/fs/jbd2").is_ok_and(|entries| {
            entries.flatten().any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(&format!("{name}-"))
            })
        });
        if journaled {
            "ext4 with a journal".to_string()
        } else {
            "ext4 without a journal".to_string()
        }
    } else {
        kind.to_string()
    };
    format!("{kind} (`{device}` at `{at}`, `{options}`)")
}

/// Where a measurement's result is stored, beside criterion's.
fn measure_path(id: &str) -> PathBuf {
    root().join("target/criterion").join(id).join("measure.txt")
}

/// Runs one measuring example and stores each `<id> <bytes>` line it
/// prints.
fn measure(cmd: &[&str], env: &[(&str, &OsStr)]) -> Result<(), String> {
    eprintln!("$ cargo {}", cmd.join(" "));
    let out = Command::new("cargo")
        .args(cmd)
        .envs(env.iter().copied())
        .current_dir(root())
        .output()
        .map_err(|e| format!("cannot start cargo: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`cargo {}` failed: {}",
            cmd.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        eprintln!("{line}");
        let Some((id, value)) = line.split_once(' ') else {
            continue;
        };
        if !id.starts_with("measure/") || value.trim().parse::<u64>().is_err() {
            continue;
        }
        let path = measure_path(id);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        }
        std::fs::write(&path, value.trim()).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// The measured value of one row, formatted, or `None` when no result is
/// stored for it.
fn measured(row: &Row) -> Result<Option<String>, String> {
    if row.unit == "bytes" {
        let Ok(text) = std::fs::read_to_string(measure_path(row.id)) else {
            return Ok(None);
        };
        let bytes: f64 = text
            .trim()
            .parse()
            .map_err(|e| format!("{}: {e}", row.id))?;
        return Ok(Some(if bytes >= 1e6 {
            format!("{:.2} MB", bytes / 1e6)
        } else {
            format!("{:.0} kB", bytes / 1e3)
        }));
    }
    let base = root().join("target/criterion").join(row.id).join("new");
    let (Ok(est), Ok(meta)) = (
        std::fs::read_to_string(base.join("estimates.json")),
        std::fs::read_to_string(base.join("benchmark.json")),
    ) else {
        return Ok(None);
    };
    let est: serde_json::Value = serde_json::from_str(&est).map_err(|e| e.to_string())?;
    let meta: serde_json::Value = serde_json::from_str(&meta).map_err(|e| e.to_string())?;
    let Some(ns) = est["mean"]["point_estimate"].as_f64() else {
        return Ok(None);
    };
    let seconds = ns / 1e9;
    Ok(match row.unit {
        "MB/s" => meta["throughput"]["Bytes"]
            .as_f64()
            .map(|b| format!("{:.0} MB/s", b / seconds / 1e6)),
        "time" => Some(if seconds < 1e-3 {
            format!("{:.0} µs", seconds * 1e6)
        } else if seconds < 1.0 {
            format!("{:.1} ms", seconds * 1e3)
        } else {
            format!("{seconds:.2} s")
        }),
        unit => meta["throughput"]["Elements"].as_f64().map(|n| {
            let rate = n / seconds;
            if rate >= 1e6 {
                format!("{:.2}M {unit}", rate / 1e6)
            } else if rate >= 1e5 {
                format!("{:.0}k {unit}", rate / 1e3)
            } else if rate >= 1e4 {
                format!("{:.1}k {unit}", rate / 1e3)
            } else {
                format!("{rate:.0} {unit}")
            }
        }),
    })
}

/// The table of every row with a stored result.
fn render() -> Result<String, String> {
    let mut out = String::new();
    if let Ok(fs) = std::fs::read_to_string(file_system_path()) {
        out += &format!("The benches' repositories were on {}.\n\n", fs.trim());
    }
    out += "| operation | bench id | measured | target |\n|---|---|---|---|\n";
    let mut shown = 0;
    for row in ROWS {
        if let Some(m) = measured(row)? {
            out += &format!(
                "| {} | `{}` | {m} | {} |\n",
                row.operation, row.id, row.target
            );
            shown += 1;
        }
    }
    if shown == 0 {
        return Err("no stored results under target/criterion: run the benches first".into());
    }
    Ok(out)
}

/// Replaces the table between the markers in README.md.
fn write_readme(table: &str) -> Result<(), String> {
    let path = root().join("README.md");
    let readme = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let (Some(start), Some(end)) = (readme.find(START), readme.find(END)) else {
        return Err(format!("README.md lacks the markers {START} … {END}"));
    };
    if end < start {
        return Err("README.md's bench-table markers are out of order".into());
    }
    let updated = format!("{}{START}\n{table}{}", &readme[..start], &readme[end..]);
    std::fs::write(&path, updated).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("README.md: table written");
    Ok(())
}
