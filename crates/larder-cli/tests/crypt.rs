//! `larder crypt`: a key made on one replica, moved as one line of text to
//! another (argument, standard input or `LARDER_LOG_KEY`), `larder log`
//! with and without it, and the exit codes of bad keys. Real repositories,
//! a real bare remote, the built binary.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

const MARKER: &str = "PLAINTEXT-MARKER-c11";

fn larder_env(dir: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_larder"));
    cmd.arg("-C")
        .arg(dir)
        .args(args)
        .env_remove("LARDER_LOG_KEY")
        .env_remove("LARDER_ACTOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn larder(dir: &Path, args: &[&str]) -> Output {
    larder_env(dir, args, &[], None)
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// Exit code `code` and one error line on stderr containing `what`.
fn failed(out: &Output, code: i32, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(what), "wanted {what:?} in {err}");
}

/// `log --json --reverse` as (id, data, encrypted) per event, oldest first.
fn log_json(dir: &Path, env: &[(&str, &str)]) -> Vec<(String, serde_json::Value, bool)> {
    ok(&larder_env(
        dir,
        &["--json", "log", "s", "--reverse"],
        env,
        None,
    ))
    .lines()
    .map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        (
            v["id"].as_str().unwrap().to_owned(),
            v["data"].clone(),
            v["encrypted"].as_bool().unwrap(),
        )
    })
    .collect()
}

fn replica(top: &Path, name: &str, remote: &Path) -> std::path::PathBuf {
    let dir = top.join(name);
    ok(&larder(&dir, &["init"]));
    larder_testkit::git(
        &dir,
        &["remote", "add", "origin", &remote.display().to_string()],
    );
    dir
}

#[test]
fn a_key_moves_between_replicas_as_one_line() {
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("remote.git");
    ok(&larder(&remote, &["init", "--bare"]));
    let a = replica(top.path(), "a", &remote);
    let b = replica(top.path(), "b", &remote);
    let c = replica(top.path(), "c", &remote);

    let init = ok(&larder(&a, &["--json", "crypt", "init", "--log", "s"]));
    let init: serde_json::Value = serde_json::from_str(init.trim()).unwrap();
    assert_eq!(init["key_id"].as_str().unwrap().len(), 16);
    failed(
        &larder(&a, &["crypt", "init", "--log", "s"]),
        2,
        "already has a key",
    );
    for i in 0..3 {
        let data = format!("{{\"secret\": \"{MARKER}\", \"n\": {i}}}");
        ok(&larder(&a, &["append", "--log", "s", "--data", &data]));
    }
    ok(&larder(&a, &["sync", "--log", "s"]));
    ok(&larder(&b, &["sync", "--log", "s"]));
    ok(&larder(&c, &["sync", "--log", "s"]));

    // B has no key: every event is listed as encrypted, exit 0.
    let b_view = log_json(&b, &[]);
    assert_eq!(b_view.len(), 3);
    assert!(
        b_view
            .iter()
            .all(|(_, data, enc)| *enc && data == "encrypted")
    );
    let text = ok(&larder(&b, &["log", "s"]));
    assert!(
        text.lines().all(|l| l.ends_with(" \"encrypted\"")),
        "{text}"
    );
    // ... and cannot append plaintext to it.
    failed(
        &larder(&b, &["append", "--log", "s", "--data", "1"]),
        1,
        "larder crypt import --log s",
    );

    // A reads plaintext; the same ids in the same order.
    let a_view = log_json(&a, &[]);
    assert_eq!(
        a_view.iter().map(|e| &e.0).collect::<Vec<_>>(),
        b_view.iter().map(|e| &e.0).collect::<Vec<_>>()
    );
    for (i, (_, data, enc)) in a_view.iter().enumerate() {
        assert!(*enc);
        assert_eq!(data["secret"], MARKER);
        assert_eq!(data["n"], i);
    }

    // The key as one line: through standard input to B ...
    let line = ok(&larder(&a, &["crypt", "export", "--log", "s"]));
    assert!(line.starts_with("larder-key-v1:s:"), "{line}");
    ok(&larder_env(
        &b,
        &["crypt", "import", "--log", "s", "-"],
        &[],
        Some(&line),
    ));
    assert_eq!(log_json(&b, &[]), a_view);
    ok(&larder(
        &b,
        &["append", "--log", "s", "--data", "\"from b\""],
    ));
    // ... and through LARDER_LOG_KEY to C, who has no key file.
    ok(&larder(&b, &["sync", "--log", "s"]));
    ok(&larder(&a, &["sync", "--log", "s"]));
    ok(&larder(&c, &["sync", "--log", "s"]));
    let env = [("LARDER_LOG_KEY", line.trim())];
    let c_view = log_json(&c, &env);
    assert_eq!(c_view, log_json(&a, &[]));
    assert_eq!(c_view.len(), 4);
    assert_eq!(c_view[3].1, "from b");
    assert!(!c.join(".git/larder/keys/s.key").exists());
    // Importing the same line again is fine; another key is refused.
    ok(&larder(&b, &["crypt", "import", "--log", "s", line.trim()]));
    let other = format!("larder-key-v1:s:{}", "ab".repeat(32));
    failed(
        &larder(&b, &["crypt", "import", "--log", "s", &other]),
        2,
        "already has a key",
    );

    // A wrong key is an error naming the event (exit 1).
    let wrong = [("LARDER_LOG_KEY", other.as_str())];
    let out = larder_env(&c, &["log", "s"], &wrong, None);
    failed(&out, 1, "wrong key");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        c_view.iter().any(|(id, ..)| err.contains(id.as_str())),
        "{err}"
    );

    // No blob in any repository shows the plaintext.
    for repo in [&a, &b, &c, &remote] {
        let objects = larder_testkit::git(repo, &["rev-list", "--objects", "--all"]);
        for id in objects.lines().map(|l| l.split(' ').next().unwrap()) {
            let out = larder_testkit::git_output(repo, &["cat-file", "-p", id], None);
            assert!(!String::from_utf8_lossy(&out.stdout).contains(MARKER));
        }
    }
}

#[test]
fn malformed_keys_are_refused_naming_where_they_came_from() {
    let top = tempfile::tempdir().unwrap();
    let a = top.path().join("a");
    ok(&larder(&a, &["init"]));
    ok(&larder(&a, &["crypt", "init", "--log", "s"]));
    ok(&larder(&a, &["append", "--log", "s", "--data", "1"]));

    failed(
        &larder(&a, &["crypt", "import", "--log", "t", "not-a-key"]),
        2,
        "the key line given",
    );
    failed(&larder(&a, &["crypt", "export", "--log", "t"]), 1, "no key");
    let bad_env = [("LARDER_LOG_KEY", "larder-key-v1:s:1234")];
    failed(
        &larder_env(&a, &["log", "s"], &bad_env, None),
        2,
        "LARDER_LOG_KEY",
    );
    let file = a.join(".git/larder/keys/s.key");
    std::fs::write(&file, "garbage\n").unwrap();
    for args in [
        &["log", "s"][..],
        &["append", "--log", "s", "--data", "2"],
        &["crypt", "export", "--log", "s"],
    ] {
        failed(&larder(&a, args), 2, &file.display().to_string());
    }
    let json = larder(&a, &["--json", "log", "s"]);
    let err: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&json.stderr).trim()).unwrap();
    assert_eq!(err["exit_code"], 2);
    assert!(err["error"].as_str().unwrap().contains("s.key"));
}
