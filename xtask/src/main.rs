//! `cargo xtask`: one entry point for repository chores.
//!
//! - `cargo xtask ci`: the same steps as `.ci/run` (fmt, clippy, tests, format check).
//! - `cargo xtask format`: checks that every golden vector (the chunk
//!   format's, and the ids of the WAL commit vector) appears verbatim in
//!   `docs/format.md`.
//! - `cargo xtask bench [--full] [--table-only] [--dir DIR] [crate…]`: runs
//!   the criterion benches (criterion's `--quick` mode unless `--full`; their
//!   repositories under DIR when given) and the measuring
//!   examples (bytes on disk, peak memory), prints one table of operation,
//!   bench id, measured value and target, and writes it into README.md
//!   (`bench.rs`).
//! - `cargo xtask soak [--rounds N] [--replicas K] [--seed S] [--kill-every M] [--keep] [--larder PATH]`:
//!   drives the release `larder` binary through seeded rounds of appends and
//!   syncs with SIGKILLs, then checks convergence (`soak.rs`; not run in CI).
//! - `cargo xtask man [DIR]`: writes the `larder` man pages (clap_mangen,
//!   from the CLI's own definitions) into DIR, default `target/man`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod bench;
mod soak;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("format") => format_check(),
        Some("bench") => bench::bench(&args[1..]),
        Some("soak") => soak::soak(&args[1..]),
        Some("man") => man(args.get(1).map(String::as_str)),
        _ => {
            eprintln!(
                "usage: cargo xtask <ci|format|bench [--full] [--table-only] [--dir DIR] [crate...]|man [DIR]|soak [--rounds N] [--replicas K] [--seed S] [--kill-every M] [--keep] [--larder PATH]>"
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

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

pub(crate) fn run(program: &str, args: &[&str]) -> Result<(), String> {
    run_with_env(program, args, &[])
}

/// [`run`] with extra environment variables, printed before the command.
pub(crate) fn run_with_env(
    program: &str,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Result<(), String> {
    let shown: String = env
        .iter()
        .map(|(key, value)| format!("{key}={} ", value.to_string_lossy()))
        .collect();
    eprintln!("$ {shown}{program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .envs(env.iter().copied())
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

/// Every `name: value` line of the codec's golden snapshots, and the ids of
/// the WAL commit golden vector, must appear in `docs/format.md`, so the
/// documented bytes are the bytes the code writes.
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
    // The WAL commit golden vector: the ids its test asserts (checked there
    // against git) must be the ones docs/format.md quotes.
    let wal_golden = root.join("crates/larder-wal/tests/golden.rs");
    let wal = std::fs::read_to_string(&wal_golden)
        .map_err(|e| format!("cannot read {}: {e}", wal_golden.display()))?;
    for name in ["BLOB_ID", "TREE_ID", "COMMIT_ID"] {
        let id = wal
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("const {name}: &str = \"")))
            .and_then(|rest| rest.strip_suffix("\";"))
            .ok_or_else(|| format!("{}: no {name} constant", wal_golden.display()))?;
        checked += 1;
        if !doc.contains(id) {
            missing.push(format!("{}: {name} {id}", wal_golden.display()));
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
