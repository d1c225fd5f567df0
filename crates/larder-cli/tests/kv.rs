//! `larder kv …` with the built binary: every subcommand, its output
//! formats and exit codes, watch across processes, `--remote`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use larder_testkit::fixtures::{bare_repo, work_repo};

fn larder(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("LARDER_ACTOR", "tester")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

#[test]
fn set_get_del_scan_history() {
    let dir = work_repo();
    let d = dir.path();
    let o = larder(d, &["kv", "set", "user/1", r#"{"name":"ada","n":1}"#]);
    assert_eq!(code(&o), 0, "{o:?}");
    assert!(stdout(&o).contains("@tester/"), "prints the version");
    assert_eq!(code(&larder(d, &["kv", "set", "user/2", "-5"])), 0);
    let o = larder(d, &["--json", "kv", "set", "other", r#""x""#]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["key"].as_str(), v["version"]["actor"].as_str()),
        (Some("other"), Some("tester"))
    );

    let o = larder(d, &["kv", "get", "user/1"]);
    assert_eq!(
        (code(&o), stdout(&o)),
        (0, "{\"n\":1,\"name\":\"ada\"}\n".to_owned())
    );
    let o = larder(d, &["--json", "kv", "get", "user/2"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["value"], -5);
    assert_eq!(v["version"]["actor"], "tester");
    assert_eq!(v["version"]["event"].as_str().unwrap().len(), 64);

    // Missing key: exit 1, one error line; --json prints null.
    let o = larder(d, &["kv", "get", "nope"]);
    assert_eq!(code(&o), 1);
    assert_eq!(stdout(&o), "");
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    let o = larder(d, &["--json", "kv", "get", "nope"]);
    assert_eq!((code(&o), stdout(&o)), (1, "null\n".to_owned()));

    let o = larder(d, &["kv", "scan", "user/"]);
    assert_eq!(
        stdout(&o),
        "user/1\t{\"n\":1,\"name\":\"ada\"}\nuser/2\t-5\n"
    );
    let o = larder(d, &["kv", "scan"]);
    assert_eq!(stdout(&o).lines().count(), 3);
    let o = larder(d, &["--json", "kv", "scan", "user/"]);
    let keys: Vec<String> = stdout(&o)
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(keys, ["user/1", "user/2"]);

    assert_eq!(code(&larder(d, &["kv", "del", "user/2"])), 0);
    assert_eq!(code(&larder(d, &["kv", "get", "user/2"])), 1);
    let o = larder(d, &["kv", "history", "user/2"]);
    let lines: Vec<String> = stdout(&o).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].ends_with("\t-5") && lines[1].ends_with("\t(deleted)"),
        "{lines:?}"
    );

    // Another log.
    assert_eq!(
        code(&larder(d, &["kv", "--log", "cfg", "set", "a", "1"])),
        0
    );
    assert_eq!(code(&larder(d, &["kv", "get", "a"])), 1);
    assert_eq!(
        stdout(&larder(d, &["kv", "get", "a", "--log", "cfg"])),
        "1\n"
    );

    // Plain git reads what larder kv wrote.
    larder_testkit::git(d, &["fsck", "--strict"]);
    let log = larder_testkit::git(d, &["log", "--oneline", "refs/larder/kv/wal"]);
    assert_eq!(log.lines().count(), 4);
}

#[test]
fn cas_exit_codes() {
    let dir = work_repo();
    let d = dir.path();
    assert_eq!(
        code(&larder(d, &["kv", "cas", "k", "--expect", "absent", "1"])),
        0
    );
    let o = larder(d, &["kv", "cas", "k", "--expect", "absent", "2"]);
    assert_eq!(code(&o), 3);
    assert!(stdout(&o).contains("holds 1"), "{}", stdout(&o));
    assert_eq!(
        code(&larder(d, &["kv", "cas", "k", "--expect", "5", "2"])),
        3
    );
    assert_eq!(
        code(&larder(d, &["kv", "cas", "k", "--expect", "1", "2"])),
        0
    );
    let o = larder(d, &["--json", "kv", "cas", "k", "--expect", "1", "3"]);
    assert_eq!(code(&o), 3);
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(
        (v["swapped"].as_bool(), v["current"].as_i64()),
        (Some(false), Some(2))
    );
    assert_eq!(stdout(&larder(d, &["kv", "get", "k"])), "2\n");
}

#[test]
fn bad_input_exits_2_and_writes_nothing() {
    let dir = work_repo();
    let d = dir.path();
    assert_eq!(code(&larder(d, &["kv", "set", "a", "1"])), 0);
    let head = larder_testkit::git(d, &["rev-parse", "refs/larder/kv/wal"]);
    for args in [
        &["kv", "set", "", "1"][..],
        &["kv", "set", "k", "not json"],
        &["kv", "set", &"x".repeat(1025), "1"],
        &["kv", "cas", "k", "--expect", "nope", "1"],
        &["kv", "--linearizable", "get", "a"],
        &["kv", "--log", "locks", "get", "a"],
    ] {
        let o = larder(d, args);
        assert_eq!(code(&o), 2, "{args:?}: {o:?}");
        assert!(!o.stderr.is_empty());
    }
    let o = larder(
        d,
        &[
            "kv",
            "--linearizable",
            "--remote",
            "no-such-remote",
            "get",
            "a",
        ],
    );
    assert_ne!(code(&o), 0);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no-such-remote"));
    assert_eq!(
        larder_testkit::git(d, &["rev-parse", "refs/larder/kv/wal"]),
        head
    );
}

/// Starts `larder kv watch <args>` with its stdout lines sent to a channel.
fn spawn_watch(d: &Path, args: &[&str]) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(d)
        .args(["kv", "watch"])
        .args(args)
        .env("LARDER_ACTOR", "watcher")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// Writes `key` until the watcher reports a write of it: from then on the
/// watcher is surely running (no sleep to guess its start-up time).
fn until_watching(d: &Path, rx: &mpsc::Receiver<String>, key: &str, line_start: &str) {
    for i in 0..100 {
        assert_eq!(code(&larder(d, &["kv", "set", key, &i.to_string()])), 0);
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            assert!(line.starts_with(line_start), "{line}");
            // Pings still in flight.
            while rx.recv_timeout(Duration::from_millis(300)).is_ok() {}
            return;
        }
    }
    panic!("the watcher never reported a write");
}

#[test]
fn watch_streams_writes_from_other_processes() {
    let dir = work_repo();
    let d = dir.path();
    assert_eq!(code(&larder(d, &["kv", "set", "cfg/before", "0"])), 0);
    let (mut child, rx) = spawn_watch(d, &["cfg/"]);
    until_watching(d, &rx, "cfg/ping", "cfg/ping\t");
    // The watcher holds the view file: these writers use in-memory views.
    assert_eq!(code(&larder(d, &["kv", "set", "cfg/a", "1"])), 0);
    assert_eq!(code(&larder(d, &["kv", "set", "other", "1"])), 0);
    assert_eq!(code(&larder(d, &["kv", "set", "cfg/b", r#""two""#])), 0);
    assert_eq!(code(&larder(d, &["kv", "del", "cfg/a"])), 0);
    let lines: Vec<String> = (0..3)
        .map(|_| rx.recv_timeout(Duration::from_secs(20)).unwrap())
        .collect();
    assert_eq!(lines, ["cfg/a\t1", "cfg/b\t\"two\"", "cfg/a\t(deleted)"]);
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn watch_count_stops_after_n_changes() {
    let dir = work_repo();
    let d = dir.path();
    let (mut child, rx) = spawn_watch(d, &["--json", "--count", "2"]);
    until_watching(d, &rx, "k", "{");
    for i in 0..100 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success());
            return;
        }
        assert_eq!(code(&larder(d, &["kv", "set", "k", &i.to_string()])), 0);
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("watch --count 2 did not stop");
}

#[test]
fn remote_pushes_after_writes_and_pulls_before_reads() {
    let remote = bare_repo();
    let r = remote.path().to_str().unwrap();
    let a = work_repo();
    let b = work_repo();
    let o = larder(
        a.path(),
        &["kv", "--remote", r, "set", "shared", r#""from a""#],
    );
    assert_eq!(code(&o), 0, "{o:?}");
    let o = larder(b.path(), &["kv", "--remote", r, "get", "shared"]);
    assert_eq!(
        (code(&o), stdout(&o)),
        (0, "\"from a\"\n".to_owned()),
        "{o:?}"
    );
    // Without --remote, b reads what it has (already pulled).
    assert_eq!(
        stdout(&larder(b.path(), &["kv", "get", "shared"])),
        "\"from a\"\n"
    );
    let o = larder(
        b.path(),
        &[
            "kv",
            "--remote",
            r,
            "cas",
            "shared",
            "--expect",
            r#""from a""#,
            r#""from b""#,
        ],
    );
    assert_eq!(code(&o), 0, "{o:?}");
    let o = larder(a.path(), &["kv", "--remote", r, "scan"]);
    assert_eq!(stdout(&o), "shared\t\"from b\"\n");
}

#[test]
fn linearizable_commands_go_through_the_authority() {
    let authority = bare_repo();
    let auth = authority.path().to_str().unwrap();
    let (a, b) = (work_repo(), work_repo());
    let lin = |dir: &Path, args: &[&str]| {
        let mut all = vec!["kv", "--linearizable", "--remote", auth];
        all.extend_from_slice(args);
        larder(dir, &all)
    };
    assert_eq!(code(&lin(a.path(), &["set", "k", "1"])), 0);
    // Another clone reads it with no sync of its own.
    let o = lin(b.path(), &["get", "k"]);
    assert_eq!((code(&o), stdout(&o)), (0, "1\n".to_owned()), "{o:?}");
    let o = lin(b.path(), &["cas", "k", "--expect", "2", "3"]);
    assert_eq!(code(&o), 3, "{o:?}");
    let o = lin(b.path(), &["cas", "k", "--expect", "1", "3"]);
    assert_eq!(code(&o), 0, "{o:?}");
    let o = lin(a.path(), &["scan"]);
    assert_eq!(stdout(&o), "k\t3\n");
    assert_eq!(code(&lin(a.path(), &["del", "k"])), 0);
    assert_eq!(code(&lin(b.path(), &["get", "k"])), 1);
    // The chain is on the authority, linear.
    let chain = larder_testkit::git(
        authority.path(),
        &["rev-list", "--count", "refs/larder/kv/chain"],
    );
    assert_eq!(chain.trim(), "3");
    // A stale chain lock: exit 1, one line naming the file.
    let lock = authority.path().join("refs/larder/kv/chain.lock");
    std::fs::write(&lock, "").unwrap();
    let o = lin(a.path(), &["set", "k", "4"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(code(&o), 1, "{o:?}");
    assert!(err.contains("chain.lock"), "{err}");
}
