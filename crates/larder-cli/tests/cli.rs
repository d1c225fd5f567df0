//! End-to-end: the built `larder` binary against temporary repositories.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn larder(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn init_append_log_verify_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let out = larder(dir.path(), &["--json", "init"]);
    assert!(out.status.success());
    let init: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert!(init["actor"].as_str().unwrap().starts_with("actor-"));

    let out = larder(
        dir.path(),
        &[
            "--json",
            "append",
            "--log",
            "issues",
            "--kind",
            "issue.created",
            "--data",
            r#"{"title":"bug"}"#,
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let appended: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(appended["count"], 1);

    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(dir.path())
        .args(["append", "--log", "issues", "--kind", "comment", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .as_mut()
        .unwrap()
        .write_all(b"{\"text\":\"one\"}\n{\"text\":\"two\"}\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    // Oldest first with --reverse (newest first is the default, as in git).
    let out = larder(
        dir.path(),
        &["--json", "log", "--log", "issues", "--reverse"],
    );
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[0]["kind"], "issue.created");
    assert_eq!(lines[0]["data"]["title"], "bug");
    assert_eq!(lines[2]["data"]["text"], "two");
    for l in &lines {
        assert_eq!(l["id"].as_str().unwrap().len(), 64);
    }
    let limited = larder(
        dir.path(),
        &["--json", "log", "--log", "issues", "--limit", "1"],
    );
    assert_eq!(stdout(&limited).lines().count(), 1);

    let since = appended["commit"].as_str().unwrap();
    let out = larder(
        dir.path(),
        &["--json", "log", "--log", "issues", "--since", since],
    );
    assert_eq!(stdout(&out).lines().count(), 2);

    let out = larder(dir.path(), &["verify", "--log", "issues"]);
    assert!(out.status.success());
    assert!(stdout(&out).contains("2 commits, 3 events verified"));
    // Plain git sees the log.
    let git = Command::new("git")
        .arg("-C")
        .arg(dir.path())
        .args(["log", "--oneline", "refs/larder/issues/wal"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&git.stdout).lines().count(), 2);
}

#[test]
fn user_mistakes_get_one_clear_line_and_a_failure_code() {
    let dir = tempfile::tempdir().unwrap();
    let missing = larder(&dir.path().join("nope"), &["log", "--log", "x"]);
    assert!(!missing.status.success());
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("larder: error: cannot open git repository"),
        "{err}"
    );
    assert!(!err.contains("panicked"));

    larder(dir.path(), &["init"]);
    let bad = larder(dir.path(), &["append", "--log", "x", "--data", "{not json"]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("invalid JSON"), "{err}");
    assert_eq!(err.lines().count(), 1);

    let unknown = larder(dir.path(), &["log", "--log", "nope"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no log named nope"));
    larder(dir.path(), &["append", "--log", "x", "--data", "1"]);
    let bad_since = larder(dir.path(), &["log", "--log", "x", "--since", "zz"]);
    assert!(!bad_since.status.success());
    let bad_name = larder(dir.path(), &["append", "--log", "a/b", "--data", "1"]);
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("invalid log name"));
}

#[test]
fn verify_exits_1_and_lists_bad_objects() {
    let dir = tempfile::tempdir().unwrap();
    larder(dir.path(), &["init"]);
    larder(dir.path(), &["append", "--log", "l", "--data", "1"]);
    let out = larder(dir.path(), &["append", "--log", "l", "--data", "2"]);
    assert!(out.status.success());
    // Corrupt the first commit's meta.json: point the ref at a commit whose
    // tree has an unexpected entry.
    let repo = larder::git::GitRepo::open(dir.path()).unwrap();
    let head = repo.ref_target("refs/larder/l/wal").unwrap().unwrap();
    let info = repo.read_commit(head).unwrap();
    let mut root = repo.read_tree(info.tree).unwrap();
    let blob = repo.write_blob(b"x").unwrap();
    root.push(larder::git::TreeEntry {
        name: "zz".into(),
        kind: larder::git::EntryKind::Blob,
        id: blob,
    });
    let tree = repo.write_tree(&root).unwrap();
    let bad = repo
        .write_commit(tree, &info.parents, &info.message, None, info.time)
        .unwrap();
    repo.update_ref(
        "refs/larder/l/wal",
        larder::git::Expected::MustBe(head),
        bad,
        "corrupt",
    )
    .unwrap();
    let out = larder(dir.path(), &["verify", "--log", "l"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("bad: commit"), "{}", stdout(&out));
}

#[test]
fn the_demo_runs_and_converges() {
    let dir = tempfile::tempdir().unwrap();
    let out = larder(dir.path(), &["--json", "demo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let steps: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let step = |name: &str| steps.iter().find(|s| s["step"] == name).unwrap()["detail"].clone();
    assert_eq!(step("converge")["equal"], true);
    assert_eq!(step("lock")["bob_refused"], true);
    assert!(step("lock")["bob_token"].as_u64() > step("lock")["alice_token"].as_u64());
    assert_eq!(step("verify")["problems"], 0);
    assert_eq!(step("snapshot")["events"], 4);
}

#[test]
fn sync_snapshot_lock_and_stats_through_the_cli() {
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("remote.git");
    let (a, b) = (top.path().join("a"), top.path().join("b"));
    assert!(larder(&remote, &["init", "--bare"]).status.success());
    let r = remote.display().to_string();
    for dir in [&a, &b] {
        assert!(larder(dir, &["init"]).status.success());
    }
    larder(
        &a,
        &[
            "append",
            "--log",
            "kv",
            "--kind",
            "kv.set",
            "--data",
            r#"["x", 1]"#,
        ],
    );
    let pushed = larder(&a, &["--json", "push", "--log", "kv", "--remote", &r]);
    let pushed: serde_json::Value = serde_json::from_str(stdout(&pushed).trim()).unwrap();
    assert_eq!(
        (pushed["pushed"].clone(), pushed["events_sent"].clone()),
        (true.into(), 1.into())
    );
    let pulled = larder(&b, &["--json", "sync", "--log", "kv", "--remote", &r]);
    let pulled: serde_json::Value = serde_json::from_str(stdout(&pulled).trim()).unwrap();
    assert_eq!(pulled["events_received"], 1);
    let out = larder(&b, &["--json", "pull", "--log", "kv", "--remote", &r]);
    assert!(out.status.success());

    // Snapshots.
    let created = larder(&b, &["--json", "snapshot", "create", "--log", "kv"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    larder(
        &b,
        &[
            "append",
            "--log",
            "kv",
            "--kind",
            "kv.set",
            "--data",
            r#"["y", 2]"#,
        ],
    );
    larder(&b, &["snapshot", "create", "--log", "kv"]);
    let listed = larder(&b, &["--json", "snapshot", "list", "--log", "kv"]);
    assert_eq!(stdout(&listed).lines().count(), 2);
    let gc = larder(
        &b,
        &["--json", "snapshot", "gc", "--log", "kv", "--keep", "1"],
    );
    assert!(stdout(&gc).contains("\"deleted\":1"), "{}", stdout(&gc));
    let stats = larder(&b, &["--json", "stats", "--log", "kv"]);
    let stats: serde_json::Value = serde_json::from_str(stdout(&stats).trim()).unwrap();
    assert_eq!(
        (
            stats["events"].clone(),
            stats["actors"].clone(),
            stats["snapshot_events"].clone()
        ),
        (2.into(), 2.into(), 2.into())
    );

    // chunk_bytes is the sum of the chunk blobs' sizes, as git sees them.
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .arg("-C")
            .arg(&b)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8(o.stdout).unwrap()
    };
    let mut blob_bytes = 0u64;
    for commit in git(&["log", "--format=%H", "refs/larder/kv/wal"]).lines() {
        for line in git(&["ls-tree", "-r", "-l", commit])
            .lines()
            .filter(|l| l.ends_with(".bin"))
        {
            blob_bytes += line
                .split_whitespace()
                .nth(3)
                .unwrap()
                .parse::<u64>()
                .unwrap();
        }
    }
    assert_eq!(stats["chunk_bytes"].as_u64().unwrap(), blob_bytes);

    // Locks through the shared remote.
    let got = larder(
        &a,
        &[
            "--json", "lock", "acquire", "deploy", "--ttl", "60s", "--remote", &r,
        ],
    );
    assert!(got.status.success());
    let got: serde_json::Value = serde_json::from_str(stdout(&got).trim()).unwrap();
    let token = got["token"].as_u64().unwrap();
    let held = larder(&b, &["--json", "lock", "acquire", "deploy", "--remote", &r]);
    assert_eq!(held.status.code(), Some(3), "held by another: exit code 3");
    assert!(stdout(&held).contains("\"held\":true"));
    let listed = larder(&b, &["--json", "lock", "list", "--remote", &r]);
    assert!(stdout(&listed).contains("\"resource\":\"deploy\""));
    // A later, separate process of `a` releases it by resource and token.
    let bad = larder(
        &b,
        &[
            "lock",
            "release",
            "deploy",
            "--token",
            &token.to_string(),
            "--remote",
            &r,
        ],
    );
    assert!(!bad.status.success(), "b does not hold it");
    let released = larder(
        &a,
        &[
            "lock",
            "release",
            "deploy",
            "--token",
            &token.to_string(),
            "--remote",
            &r,
        ],
    );
    assert!(
        released.status.success(),
        "{}",
        String::from_utf8_lossy(&released.stderr)
    );
    let next = larder(&b, &["--json", "lock", "acquire", "deploy", "--remote", &r]);
    let next: serde_json::Value = serde_json::from_str(stdout(&next).trim()).unwrap();
    assert_eq!(next["token"].as_u64().unwrap(), token + 1);
    let renewed = larder(
        &b,
        &[
            "--json", "lock", "renew", "deploy", "--ttl", "5m", "--remote", &r,
        ],
    );
    assert!(
        renewed.status.success(),
        "{}",
        String::from_utf8_lossy(&renewed.stderr)
    );
    let bad_ttl = larder(&b, &["lock", "acquire", "x", "--ttl", "5 parsecs"]);
    assert_eq!(bad_ttl.status.code(), Some(2));
}

#[test]
fn lock_acquisitions_from_two_processes_of_one_clone_exclude_each_other() {
    let dir = tempfile::tempdir().unwrap();
    assert!(larder(dir.path(), &["init"]).status.success());
    let first = larder(
        dir.path(),
        &["--json", "lock", "acquire", "deploy", "--ttl", "5m"],
    );
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let first: serde_json::Value = serde_json::from_str(stdout(&first).trim()).unwrap();
    let token = first["token"].as_u64().unwrap();
    assert!(first["holder_id"].as_str().is_some_and(|h| !h.is_empty()));
    // A second process of the same clone (same actor) is another holder.
    let second = larder(dir.path(), &["--json", "lock", "acquire", "deploy"]);
    assert_eq!(second.status.code(), Some(3), "{}", stdout(&second));
    let second: serde_json::Value = serde_json::from_str(stdout(&second).trim()).unwrap();
    assert_eq!(second["held"], true);
    assert_eq!(second["token"].as_u64(), Some(token));
    assert_eq!(second["holder_id"], first["holder_id"]);
    let text = larder(dir.path(), &["lock", "acquire", "deploy"]);
    assert_eq!(text.status.code(), Some(3));
    // A wrong token releases nothing; the one `acquire` printed does.
    let wrong = larder(
        dir.path(),
        &[
            "lock",
            "release",
            "deploy",
            "--token",
            &(token + 1).to_string(),
        ],
    );
    assert!(!wrong.status.success());
    let renewed = larder(
        dir.path(),
        &["lock", "renew", "deploy", "--token", &token.to_string()],
    );
    assert!(
        renewed.status.success(),
        "{}",
        String::from_utf8_lossy(&renewed.stderr)
    );
    let released = larder(
        dir.path(),
        &["lock", "release", "deploy", "--token", &token.to_string()],
    );
    assert!(
        released.status.success(),
        "{}",
        String::from_utf8_lossy(&released.stderr)
    );
    let next = larder(dir.path(), &["--json", "lock", "acquire", "deploy"]);
    let next: serde_json::Value = serde_json::from_str(stdout(&next).trim()).unwrap();
    assert_eq!(next["token"].as_u64(), Some(token + 1));
    assert_ne!(next["holder_id"], first["holder_id"]);
}
