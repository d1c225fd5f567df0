//! Branch-aware logs with real git: `git checkout -b` forks a branch's
//! logs through the installed post-checkout hook, events written on a
//! feature branch stay there, and `git merge` (merge commit or
//! fast-forward) merges them through the post-merge hook.

use std::path::Path;
use std::process::{Command, Output};

use larder_testkit::git;

fn larder(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("LARDER_ACTOR", "tester")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The `data` of every event of log `log`, oldest first.
fn data(dir: &Path, log: &str) -> Vec<i64> {
    ok(&larder(dir, &["--json", "log", log, "--reverse"]))
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["data"]
                .as_i64()
                .unwrap()
        })
        .collect()
}

fn commit(dir: &Path, file: &str) {
    std::fs::write(dir.join(file), file).unwrap();
    git(dir, &["add", file]);
    git(dir, &["commit", "--quiet", "-m", file]);
}

#[test]
fn logs_follow_git_branches_through_checkout_and_merge() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    git(d, &["init", "--quiet", "-b", "main"]);
    git(d, &["config", "user.email", "t@example.com"]);
    git(d, &["config", "user.name", "t"]);
    git(d, &["config", "larder.branchLogs", "true"]);
    commit(d, "a");
    ok(&larder(d, &["hooks", "install"]));
    ok(&larder(d, &["append", "--log", "issues", "--data", "1"]));
    assert_eq!(data(d, "issues@main"), [1]);
    assert_eq!(
        data(d, "issues"),
        [1],
        "the plain name resolves to the branch's log"
    );

    // A new branch starts from main's log (post-checkout hook).
    git(d, &["checkout", "--quiet", "-b", "feature/login"]);
    ok(&larder(d, &["append", "--log", "issues", "--data", "2"]));
    commit(d, "b");
    assert_eq!(data(d, "issues@feature.login"), [1, 2]);
    assert_eq!(
        data(d, "issues@main"),
        [1],
        "feature events stay on the feature branch"
    );

    // main moves on; merging the feature merges its log (post-merge hook).
    git(d, &["checkout", "--quiet", "main"]);
    ok(&larder(d, &["append", "--log", "issues", "--data", "3"]));
    git(
        d,
        &[
            "merge",
            "--quiet",
            "--no-ff",
            "-m",
            "merge",
            "feature/login",
        ],
    );
    let mut merged = data(d, "issues@main");
    merged.sort();
    assert_eq!(merged, [1, 2, 3]);

    // A fast-forward merge merges too.
    git(d, &["checkout", "--quiet", "-b", "quick"]);
    ok(&larder(d, &["append", "--log", "issues", "--data", "4"]));
    commit(d, "c");
    git(d, &["checkout", "--quiet", "main"]);
    git(d, &["merge", "--quiet", "--ff-only", "quick"]);
    assert!(data(d, "issues@main").contains(&4));

    // An explicit merge between any two logs.
    ok(&larder(d, &["append", "--log", "other@x", "--data", "5"]));
    ok(&larder(d, &["merge-log", "other@x", "issues@main"]));
    assert!(data(d, "issues@main").contains(&5));
    let o = larder(d, &["merge-log", "nope@x", "issues@main"]);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}

#[test]
fn install_leaves_a_foreign_hook_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    git(d, &["init", "--quiet"]);
    let hook = d.join(".git/hooks/post-merge");
    std::fs::write(&hook, "#!/bin/sh\necho mine\n").unwrap();
    let o = larder(d, &["hooks", "install"]);
    assert_ne!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("post-merge"));
    assert_eq!(
        std::fs::read_to_string(&hook).unwrap(),
        "#!/bin/sh\necho mine\n"
    );
}
