//! insta snapshots of the help texts and of `--json` outputs, so a change
//! to the command-line interface shows up in review.

use std::path::Path;
use std::process::Command;

fn larder(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_texts() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("help_top", vec!["--help"]),
        ("help_append", vec!["append", "--help"]),
        ("help_log", vec!["log", "--help"]),
        ("help_lock", vec!["lock", "--help"]),
        ("help_lock_acquire", vec!["lock", "acquire", "--help"]),
        ("help_snapshot", vec!["snapshot", "--help"]),
        ("help_sync", vec!["sync", "--help"]),
        ("help_status", vec!["status", "--help"]),
        ("help_snapshot_show", vec!["snapshot", "show", "--help"]),
        ("help_completions", vec!["completions", "--help"]),
        ("help_demo", vec!["demo", "--help"]),
    ] {
        insta::assert_snapshot!(name, larder(dir.path(), &args));
    }
}

/// Replaces values that differ between runs.
fn redact(mut v: serde_json::Value) -> String {
    for key in [
        "actor",
        "holder",
        "holder_id",
        "expires_ms",
        "commit",
        "git_dir",
        "id",
        "hlc",
        "head",
        "name",
        "wal_head",
        "created_ms",
        "time",
    ] {
        if let Some(field) = v.get_mut(key)
            && !field.is_null()
        {
            *field = serde_json::Value::String(format!("[{key}]"));
        }
    }
    serde_json::to_string_pretty(&v).unwrap()
}

fn json(dir: &Path, args: &[&str]) -> String {
    let out = larder(dir, args);
    let values: Vec<String> = out
        .lines()
        .map(|l| redact(serde_json::from_str(l).unwrap()))
        .collect();
    values.join("\n")
}

#[test]
fn json_outputs() {
    let dir = tempfile::tempdir().unwrap();
    insta::assert_snapshot!("json_init", json(dir.path(), &["--json", "init"]));
    insta::assert_snapshot!(
        "json_append",
        json(
            dir.path(),
            &[
                "--json",
                "append",
                "--log",
                "kv",
                "--kind",
                "kv.set",
                "--data",
                r#"["k", {"n": 1}]"#
            ]
        )
    );
    insta::assert_snapshot!(
        "json_log",
        json(dir.path(), &["--json", "log", "--log", "kv"])
    );
    insta::assert_snapshot!(
        "json_verify",
        json(dir.path(), &["--json", "verify", "--log", "kv"])
    );
    insta::assert_snapshot!(
        "json_lock_acquire",
        json(
            dir.path(),
            &["--json", "lock", "acquire", "r", "--ttl", "1m"]
        )
    );
    insta::assert_snapshot!(
        "json_lock_list",
        json(dir.path(), &["--json", "lock", "list"])
    );
    insta::assert_snapshot!(
        "json_snapshot_create",
        json(dir.path(), &["--json", "snapshot", "create", "--log", "kv"])
    );
    insta::assert_snapshot!(
        "json_snapshot_gc",
        json(
            dir.path(),
            &["--json", "snapshot", "gc", "--log", "kv", "--keep", "5"]
        )
    );
}

/// Text output through a pipe (not a terminal): results on stdout, and no
/// progress on stderr at all.
#[test]
fn text_outputs_without_a_terminal() {
    let dir = tempfile::tempdir().unwrap();
    larder(dir.path(), &["init"]);
    larder(
        dir.path(),
        &[
            "append",
            "--log",
            "kv",
            "--kind",
            "kv.set",
            "--data",
            r#"["k", 1]"#,
        ],
    );
    let mut shown = Vec::new();
    for args in [
        vec!["verify", "--log", "kv"],
        vec!["stats", "--log", "kv"],
        vec!["log", "nope"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_larder"))
            .arg("-C")
            .arg(dir.path())
            .args(&args)
            .output()
            .unwrap();
        shown.push(format!(
            "$ larder {}\n[exit {}]\nstdout: {}stderr: {}",
            args.join(" "),
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    insta::assert_snapshot!("text_piped", shown.join("\n"));
}
