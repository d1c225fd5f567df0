//! The CLI in front of bad data: a quarantined remote head gets its own exit
//! code and a line naming it; a payload too deep to read back is refused at
//! append.

use std::path::Path;
use std::process::{Command, Output};

use larder_testkit::git;

fn larder(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_quarantined_head_is_named_and_exits_with_code_4() {
    let remote = tempfile::tempdir().unwrap();
    ok(&larder(remote.path(), &["init", "--bare"]));
    let remote_path = remote.path().display().to_string();
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for dir in [a.path(), b.path()] {
        ok(&larder(dir, &["init"]));
    }
    ok(&larder(
        a.path(),
        &["append", "--log", "notes", "--data", "1"],
    ));
    ok(&larder(
        a.path(),
        &["sync", "--log", "notes", "--remote", &remote_path],
    ));
    // A hostile replica publishes a head that is a blob.
    let blob = larder_testkit::git_with_stdin(
        remote.path(),
        &["hash-object", "-w", "--stdin"],
        Some(b"not a commit"),
    );
    git(
        remote.path(),
        &["update-ref", "refs/larder/notes/heads/mallory", &blob],
    );
    let out = larder(
        b.path(),
        &["pull", "--log", "notes", "--remote", &remote_path],
    );
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("refs/larder/notes/heads/mallory"),
        "{stderr}"
    );
    // The good head was merged all the same.
    let log = larder(b.path(), &["--json", "log", "--log", "notes"]);
    ok(&log);
    assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 1);
    // JSON output lists the rejected head.
    let out = larder(
        b.path(),
        &["--json", "pull", "--log", "notes", "--remote", &remote_path],
    );
    assert_eq!(out.status.code(), Some(4));
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(report["rejected"][0]["actor"], "mallory");
    // Deleted on the remote: the next pull is clean.
    git(
        remote.path(),
        &["update-ref", "-d", "refs/larder/notes/heads/mallory"],
    );
    ok(&larder(
        b.path(),
        &["pull", "--log", "notes", "--remote", &remote_path],
    ));
}

#[test]
fn a_payload_too_deep_to_read_is_refused_at_append() {
    let dir = tempfile::tempdir().unwrap();
    ok(&larder(dir.path(), &["init"]));
    let deep = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    ok(&larder(
        dir.path(),
        &["append", "--log", "notes", "--data", &deep(64)],
    ));
    for n in [65, 100, 127] {
        let out = larder(
            dir.path(),
            &["append", "--log", "notes", "--data", &deep(n)],
        );
        assert!(!out.status.success(), "depth {n} accepted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(&format!("{n} levels")), "{stderr}");
    }
    // The log still reads and takes appends.
    ok(&larder(
        dir.path(),
        &["append", "--log", "notes", "--data", "2"],
    ));
    let out = larder(dir.path(), &["--json", "log", "--log", "notes"]);
    ok(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
    ok(&larder(dir.path(), &["verify", "--log", "notes"]));
}

#[test]
fn whoami_prints_the_actor_and_actor_sources_apply() {
    let dir = tempfile::tempdir().unwrap();
    ok(&larder(dir.path(), &["init"]));
    let out = larder(dir.path(), &["whoami"]);
    ok(&out);
    let own = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(own.starts_with("actor-") && !own.contains('\n'), "{own}");
    // --actor wins, and the event carries it.
    ok(&larder(
        dir.path(),
        &["--actor", "robot-7", "append", "--log", "n", "--data", "1"],
    ));
    let log = larder(dir.path(), &["--json", "log", "--log", "n"]);
    let line: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&log.stdout).trim()).unwrap();
    assert_eq!(line["actor"], "robot-7");
    // LARDER_ACTOR, then git config larder.actor.
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(dir.path())
        .args(["--json", "whoami"])
        .env("LARDER_ACTOR", "from-env")
        .output()
        .unwrap();
    let who: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(
        (who["actor"].as_str(), who["source"].as_str()),
        (Some("from-env"), Some("LARDER_ACTOR"))
    );
    git(dir.path(), &["config", "larder.actor", "from-config"]);
    let out = larder(dir.path(), &["whoami"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "from-config");
    // A copied clone warns and gets a fresh actor.
    git(dir.path(), &["config", "--unset", "larder.actor"]);
    let top = tempfile::tempdir().unwrap();
    let copy = top.path().join("copy");
    assert!(
        Command::new("cp")
            .arg("-r")
            .arg(dir.path())
            .arg(&copy)
            .status()
            .unwrap()
            .success()
    );
    let out = larder(&copy, &["whoami"]);
    ok(&out);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is a copy of"),
        "{out:?}"
    );
    let fresh = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert_ne!(fresh, own);
    // A bad --actor is one clear line.
    let out = larder(dir.path(), &["--actor", "no spaces", "whoami"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only ASCII"));
}

#[test]
fn a_hub_reads_the_union_of_its_heads() {
    let top = tempfile::tempdir().unwrap();
    let hub = top.path().join("hub.git");
    std::fs::create_dir(&hub).unwrap();
    ok(&larder(&hub, &["init", "--bare"]));
    let hub_path = hub.display().to_string();
    for (name, n) in [("a", "1"), ("b", "2")] {
        let dir = top.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        ok(&larder(&dir, &["init"]));
        ok(&larder(&dir, &["append", "--log", "notes", "--data", n]));
        ok(&larder(
            &dir,
            &["push", "--log", "notes", "--remote", &hub_path],
        ));
    }
    // The hub has no log ref of its own, only the replicas' heads.
    assert!(git(&hub, &["for-each-ref", "refs/larder/notes/wal"]).is_empty());
    let before = larder_testkit::fixtures::files(&hub);
    let log = larder(&hub, &["--json", "log", "--log", "notes"]);
    ok(&log);
    assert_eq!(String::from_utf8_lossy(&log.stdout).lines().count(), 2);
    let verify = larder(&hub, &["--json", "verify", "--log", "notes"]);
    ok(&verify);
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&verify.stdout).trim()).unwrap();
    assert_eq!(
        (report["commits"].as_u64(), report["events"].as_u64()),
        (Some(2), Some(2))
    );
    // Reading the hub wrote nothing into it.
    assert_eq!(larder_testkit::fixtures::files(&hub), before);
}

#[test]
fn several_c_flags_compose_like_git() {
    let top = tempfile::tempdir().unwrap();
    let repo = top.path().join("repo");
    std::fs::create_dir(&repo).unwrap();
    ok(&larder(&repo, &["init"]));
    let out = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(top.path())
        .args(["-C", "repo", "append", "--log", "n", "--data", "1"])
        .output()
        .unwrap();
    ok(&out);
    // The event landed in top/repo, as `git -C top -C repo` would find it.
    assert_eq!(
        git(&repo, &["rev-list", "--count", "refs/larder/n/wal"]),
        "1"
    );
}
