//! Issue 14: `log` like `git log`, clear errors for misuse (one line, exit
//! code 2), honest listings and counts, and the commands people expect
//! (`status`, `lock check`, `lock gc`, `snapshot show`, `completions`,
//! `demo --keep`). Real repositories in temporary directories, the built
//! binary.

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

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A misuse: exit code 2 and exactly one line on stderr containing `what`.
fn refused(out: &Output, what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("larder: error: "), "{err}");
    assert!(err.contains(what), "wanted {what:?} in {err}");
}

fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    ok(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A repository with log `issues`: four appends, kinds k1..k4, data 1..4.
fn four_appends() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    ok(&larder(dir.path(), &["init"]));
    for i in 1..=4 {
        ok(&larder(
            dir.path(),
            &[
                "append",
                "--log",
                "issues",
                "--kind",
                &format!("k{i}"),
                "--data",
                &i.to_string(),
            ],
        ));
    }
    dir
}

fn kinds(out: &Output) -> Vec<String> {
    json_lines(out)
        .iter()
        .map(|v| v["kind"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn log_reads_like_git_log() {
    let dir = four_appends();
    let d = dir.path();
    // Positional name, newest first; --log still works.
    assert_eq!(
        kinds(&larder(d, &["--json", "log", "issues"])),
        ["k4", "k3", "k2", "k1"]
    );
    assert_eq!(
        kinds(&larder(d, &["--json", "log", "--log", "issues"])),
        ["k4", "k3", "k2", "k1"]
    );
    // -n / --limit / --max-count, --reverse.
    assert_eq!(
        kinds(&larder(d, &["--json", "log", "issues", "-n", "2"])),
        ["k4", "k3"]
    );
    assert_eq!(
        kinds(&larder(d, &["--json", "log", "issues", "--limit", "1"])),
        ["k4"]
    );
    assert_eq!(
        kinds(&larder(
            d,
            &["--json", "log", "issues", "--reverse", "--max-count", "2"]
        )),
        ["k1", "k2"]
    );
    // Each event's WAL commit and RFC 3339 time.
    let lines = json_lines(&larder(d, &["--json", "log", "issues"]));
    let commits: Vec<String> = git(d, &["rev-list", "refs/larder/issues/wal"])
        .lines()
        .map(str::to_owned)
        .collect();
    for (line, commit) in lines.iter().zip(&commits) {
        assert_eq!(line["commit"].as_str().unwrap(), commit);
        let time = line["time"].as_str().unwrap();
        assert!(
            time.len() == 24 && time.ends_with('Z') && time.as_bytes()[10] == b'T',
            "{time}"
        );
    }
    // Text: commit id, time, actor, kind, data.
    let text = ok(&larder(d, &["log", "issues", "-n", "1"]));
    let fields: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(fields[0], &commits[0][..12]);
    assert_eq!(fields[1], lines[0]["time"].as_str().unwrap());
    assert_eq!(&fields[3..], ["k4", "4"]);

    // --since / --until: revspecs, abbreviated and full ids.
    assert_eq!(
        kinds(&larder(
            d,
            &[
                "--json",
                "log",
                "issues",
                "--since",
                "refs/larder/issues/wal~2"
            ]
        )),
        ["k4", "k3"]
    );
    assert_eq!(
        kinds(&larder(
            d,
            &[
                "--json",
                "log",
                "issues",
                "--until",
                "refs/larder/issues/wal~2"
            ]
        )),
        ["k2", "k1"]
    );
    let k2 = &commits[2];
    assert_eq!(
        kinds(&larder(
            d,
            &["--json", "log", "issues", "--since", &k2[..7]]
        )),
        ["k4", "k3"]
    );
    assert_eq!(
        kinds(&larder(
            d,
            &[
                "--json",
                "log",
                "issues",
                "--since",
                &commits[3],
                "--until",
                &commits[1]
            ]
        )),
        ["k3", "k2"]
    );
    // A --since newer than --until: nothing in between, as in git.
    assert!(
        kinds(&larder(
            d,
            &[
                "--json",
                "log",
                "issues",
                "--since",
                &commits[0],
                "--until",
                &commits[2]
            ]
        ))
        .is_empty()
    );
    // Dates: every event is after 2000 and before 2999.
    assert_eq!(
        kinds(&larder(
            d,
            &["--json", "log", "issues", "--since", "2000-01-01"]
        ))
        .len(),
        4
    );
    assert!(
        kinds(&larder(
            d,
            &["--json", "log", "issues", "--until", "2000-01-01T00:00:00Z"]
        ))
        .is_empty()
    );
    // --at: the log as of a point; before it began is an error naming it.
    assert_eq!(
        kinds(&larder(
            d,
            &[
                "--json",
                "log",
                "issues",
                "--at",
                "refs/larder/issues/wal~2"
            ]
        )),
        ["k2", "k1"]
    );
    let o = larder(d, &["log", "issues", "--at", "2000-01-01T00:00:00Z"]);
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("before log"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    let t3 = lines[1]["time"].as_str().unwrap();
    assert_eq!(
        kinds(&larder(d, &["--json", "log", "issues", "--since", t3])),
        ["k4", "k3"]
    );
    // --kind, and --actor as a filter.
    assert_eq!(
        kinds(&larder(d, &["--json", "log", "issues", "--kind", "k2"])),
        ["k2"]
    );
    ok(&larder(
        d,
        &[
            "--actor", "bob", "append", "--log", "issues", "--kind", "b", "--data", "5",
        ],
    ));
    assert_eq!(
        kinds(&larder(d, &["--json", "log", "issues", "--actor", "bob"])),
        ["b"]
    );
    assert_eq!(
        kinds(&larder(d, &["--json", "log", "issues", "-n", "1"])),
        ["b"]
    );
}

#[test]
fn log_refuses_bad_revisions_and_dates_in_one_line() {
    let dir = four_appends();
    let d = dir.path();
    refused(
        &larder(d, &["log", "issues", "--since", "nope~1"]),
        "--since \"nope~1\" is not a revision",
    );
    refused(
        &larder(d, &["log", "issues", "--until", "2024-13-01"]),
        "not a valid date",
    );
    refused(
        &larder(d, &["log", "issues", "--since", "zz"]),
        "is not a revision",
    );
    refused(
        &larder(d, &["log", "issues", "--since", "abcdef12"]),
        "no commit of log issues starts with it",
    );
    // A commit of another log is not in this one.
    ok(&larder(d, &["append", "--log", "other", "--data", "1"]));
    let other = git(d, &["rev-parse", "refs/larder/other/wal"]);
    refused(
        &larder(d, &["log", "issues", "--since", other.trim()]),
        "not in log issues",
    );
    refused(
        &larder(d, &["log", "issues", "--since", "refs/larder/other/wal"]),
        "not in log issues",
    );
}

#[test]
fn an_unknown_log_is_an_error_on_every_command_with_a_suggestion() {
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("remote.git");
    ok(&larder(&remote, &["init", "--bare"]));
    let r = remote.display().to_string();
    let a = top.path().join("a");
    ok(&larder(&a, &["init"]));
    ok(&larder(&a, &["append", "--log", "issues", "--data", "1"]));
    for args in [
        vec!["log", "isues"],
        vec!["verify", "--log", "isues"],
        vec!["stats", "--log", "isues"],
        vec!["snapshot", "list", "--log", "isues"],
        vec!["snapshot", "create", "--log", "isues"],
        vec!["snapshot", "gc", "--log", "isues", "--keep", "1"],
        vec!["push", "--log", "isues", "--remote", &r],
        vec!["pull", "--log", "isues", "--remote", &r],
        vec!["sync", "--log", "isues", "--remote", &r],
    ] {
        let out = larder(&a, &args);
        refused(&out, "no log named isues ");
        assert!(
            stderr(&out).contains("did you mean issues?"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(ok(&larder(&a, &["--json", "status"])).contains("\"issues\""));
    }
    // Nothing was created by the misspelt name.
    assert!(git(&a, &["for-each-ref", "refs/larder/isues"]).is_empty());
    // A log only the remote has is fetched by pull or sync.
    ok(&larder(&a, &["sync", "--log", "issues", "--remote", &r]));
    let b = top.path().join("b");
    ok(&larder(&b, &["init"]));
    let pulled = ok(&larder(
        &b,
        &["--json", "pull", "--log", "issues", "--remote", &r],
    ));
    assert!(pulled.contains("\"events_received\":1"), "{pulled}");
    // JSON errors carry the exit code.
    let out = larder(&b, &["--json", "log", "isues"]);
    assert_eq!(out.status.code(), Some(2));
    let err: serde_json::Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert_eq!(err["exit_code"], 2);
}

#[test]
fn a_fresh_clone_is_told_to_pull_a_log_its_remote_has() {
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("remote.git");
    ok(&larder(&remote, &["init", "--bare"]));
    let a = top.path().join("a");
    ok(&larder(&a, &["init"]));
    ok(&larder(&a, &["append", "--log", "issues", "--data", "1"]));
    ok(&larder(
        &a,
        &[
            "push",
            "--log",
            "issues",
            "--remote",
            &remote.display().to_string(),
        ],
    ));
    let b = top.path().join("b");
    git(
        top.path(),
        &["clone", "-q", &remote.display().to_string(), "b"],
    );
    let out = larder(&b, &["log", "issues"]);
    refused(
        &out,
        "remote origin has it: run `larder pull --log issues --remote origin`",
    );
    ok(&larder(&b, &["pull", "--log", "issues"]));
    assert_eq!(
        json_lines(&larder(&b, &["--json", "log", "issues"])).len(),
        1
    );
}

#[test]
fn reserved_and_invalid_log_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    ok(&larder(dir.path(), &["init"]));
    for name in ["locks", "heads", "snapshots", "wal"] {
        refused(
            &larder(dir.path(), &["append", "--log", name, "--data", "1"]),
            "reserved for larder's own refs",
        );
    }
    refused(
        &larder(dir.path(), &["append", "--log", "a/b", "--data", "1"]),
        "invalid log name",
    );
    refused(&larder(dir.path(), &["log", "a@{1}"]), "invalid log name");
    assert!(git(dir.path(), &["for-each-ref", "refs/larder/"]).is_empty());
    // A lock taken afterwards lists cleanly (a log named `locks` used to
    // show up as a malformed lock).
    ok(&larder(dir.path(), &["lock", "acquire", "deploy"]));
    let out = larder(dir.path(), &["lock", "list"]);
    assert!(!ok(&out).contains("bad:"));
}

#[test]
fn json_input_is_exact_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&larder(d, &["init"]));
    refused(
        &larder(
            d,
            &["append", "--log", "n", "--data", "18446744073709551616"],
        ),
        "does not fit in 64 bits",
    );
    refused(
        &larder(d, &["append", "--log", "n", "--data", r#"{"a":1,"a":2}"#]),
        "\"a\" appears twice",
    );
    refused(
        &larder(d, &["append", "--log", "n", "--data", "{not json"]),
        "invalid JSON",
    );
    // Negative numbers are values, not flags; the extremes survive exactly.
    ok(&larder(d, &["append", "--log", "n", "--data", "-5"]));
    ok(&larder(
        d,
        &["append", "--log", "n", "--data", "18446744073709551615"],
    ));
    ok(&larder(
        d,
        &[
            "append",
            "--log",
            "n",
            "--data",
            "[-9223372036854775808, 1.5]",
        ],
    ));
    let data: Vec<String> = json_lines(&larder(d, &["--json", "log", "n", "--reverse"]))
        .iter()
        .map(|v| v["data"].to_string())
        .collect();
    assert_eq!(
        data,
        ["-5", "18446744073709551615", "[-9223372036854775808,1.5]"]
    );
}

#[test]
fn listings_with_bad_entries_exit_1_after_the_whole_listing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&larder(d, &["init"]));
    ok(&larder(d, &["lock", "acquire", "good"]));
    // A lock ref that points at a blob.
    let blob = larder_testkit::git_with_stdin(d, &["hash-object", "-w", "--stdin"], Some(b"junk"));
    git(d, &["update-ref", "refs/larder/locks/zzzz", &blob]);
    let out = larder(d, &["lock", "list"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("good ") && text.contains("bad: "), "{text}");

    ok(&larder(d, &["append", "--log", "n", "--data", "1"]));
    ok(&larder(d, &["snapshot", "create", "--log", "n"]));
    git(
        d,
        &[
            "update-ref",
            "refs/larder/n/snapshots/00000000000000000001-0000000000000000",
            &blob,
        ],
    );
    let out = larder(d, &["snapshot", "list", "--log", "n"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(text.lines().any(|l| l.starts_with("bad: ")), "{text}");
}

#[test]
fn status_shows_logs_unpushed_commits_and_view_freshness() {
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("remote.git");
    ok(&larder(&remote, &["init", "--bare"]));
    let a = top.path().join("a");
    ok(&larder(&a, &["init"]));
    git(
        &a,
        &["remote", "add", "origin", &remote.display().to_string()],
    );
    let empty = ok(&larder(&a, &["status"]));
    assert!(empty.contains("no logs yet"), "{empty}");
    ok(&larder(&a, &["append", "--log", "kv", "--data", "1"]));
    let status = |dir: &Path| -> serde_json::Value {
        serde_json::from_str(ok(&larder(dir, &["--json", "status"])).trim()).unwrap()
    };
    let s = status(&a);
    assert_eq!(s["log"], "kv");
    assert_eq!(s["commits"], 1);
    assert_eq!(s["remotes"][0]["remote"], "origin");
    assert_eq!(s["remotes"][0]["unpushed_commits"], 1);
    assert_eq!(s["view"]["state"], "none");
    ok(&larder(&a, &["sync", "--log", "kv"]));
    assert_eq!(status(&a)["remotes"][0]["unpushed_commits"], 0);
    ok(&larder(&a, &["append", "--log", "kv", "--data", "2"]));
    ok(&larder(&a, &["append", "--log", "kv", "--data", "3"]));
    let s = status(&a);
    assert_eq!(s["remotes"][0]["unpushed_commits"], 2);
    assert_eq!(s["remotes"][0]["unpushed_events"], 2);
    let text = ok(&larder(&a, &["status"]));
    assert!(
        text.contains("remote origin: 2 commits (2 events) unpushed"),
        "{text}"
    );
}

#[test]
fn lock_check_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&larder(d, &["init"]));
    let free: serde_json::Value =
        serde_json::from_str(ok(&larder(d, &["--json", "lock", "check", "deploy"])).trim())
            .unwrap();
    assert_eq!(
        (free["live"].clone(), free["token"].clone()),
        (false.into(), 0.into())
    );
    ok(&larder(d, &["lock", "acquire", "deploy", "--ttl", "5m"]));
    let held: serde_json::Value =
        serde_json::from_str(ok(&larder(d, &["--json", "lock", "check", "deploy"])).trim())
            .unwrap();
    assert_eq!(
        (held["live"].clone(), held["token"].clone()),
        (true.into(), 1.into())
    );
    assert!(ok(&larder(d, &["lock", "check", "deploy"])).contains("deploy actor-"));
    ok(&larder(d, &["lock", "release", "deploy"]));
    let gc: serde_json::Value =
        serde_json::from_str(ok(&larder(d, &["--json", "lock", "gc"])).trim()).unwrap();
    assert_eq!(gc["trimmed"], 1);
    // Tokens stay monotonic after the trim.
    let next: serde_json::Value =
        serde_json::from_str(ok(&larder(d, &["--json", "lock", "acquire", "deploy"])).trim())
            .unwrap();
    assert_eq!(next["token"], 2);
}

#[test]
fn snapshot_show_names_what_a_snapshot_holds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&larder(d, &["init"]));
    ok(&larder(
        d,
        &[
            "append",
            "--log",
            "kv",
            "--kind",
            "kv.set",
            "--data",
            r#"["a", 1]"#,
        ],
    ));
    let created: serde_json::Value = serde_json::from_str(
        ok(&larder(d, &["--json", "snapshot", "create", "--log", "kv"])).trim(),
    )
    .unwrap();
    let name = created["name"].as_str().unwrap();
    let shown: serde_json::Value = serde_json::from_str(
        ok(&larder(
            d,
            &["--json", "snapshot", "show", "--log", "kv", name],
        ))
        .trim(),
    )
    .unwrap();
    assert_eq!(shown["events"], 1);
    assert_eq!(shown["commit"], created["commit"]);
    assert_eq!(
        shown["wal_head"].as_str().unwrap(),
        git(d, &["rev-parse", "refs/larder/kv/wal"]).trim()
    );
    assert_eq!(shown["projection"]["name"], "larder.kv");
    let text = ok(&larder(d, &["snapshot", "show", "--log", "kv", name]));
    assert!(text.starts_with(&format!("snapshot {name}\n")), "{text}");
    let typo = &name[..name.len() - 1];
    let out = larder(d, &["snapshot", "show", "--log", "kv", typo]);
    refused(&out, &format!("no snapshot named {typo:?}"));
    assert!(stderr(&out).contains("did you mean"), "{}", stderr(&out));
}

#[test]
fn completions_and_man_pages_come_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let bash = ok(&larder(dir.path(), &["completions", "bash"]));
    assert!(
        bash.contains("_larder()") && bash.contains("status"),
        "{bash}"
    );
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        assert!(!ok(&larder(dir.path(), &["completions", shell])).is_empty());
    }
    assert_eq!(
        larder(dir.path(), &["completions", "tcsh"]).status.code(),
        Some(2)
    );
    let man = dir.path().join("man");
    ok(&larder(dir.path(), &["__man", &man.display().to_string()]));
    let page = std::fs::read_to_string(man.join("larder.1")).unwrap();
    assert!(page.contains(".TH larder 1"), "{page}");
    assert!(man.join("larder-log.1").exists());
    // The hidden command stays out of the help.
    assert!(!ok(&larder(dir.path(), &["--help"])).contains("__man"));
}

#[test]
fn demo_keep_leaves_the_repositories() {
    let top = tempfile::tempdir().unwrap();
    let keep = top.path().join("demo");
    let out = ok(&larder(
        top.path(),
        &["demo", "--keep", &keep.display().to_string()],
    ));
    assert!(out.contains("kept everything in"), "{out}");
    for part in ["remote.git", "alice", "bob"] {
        assert!(keep.join(part).exists(), "{part}");
    }
    assert_eq!(
        json_lines(&larder(&keep.join("alice"), &["--json", "log", "kv"])).len(),
        4
    );
    // Not into a directory with something in it.
    refused(
        &larder(top.path(), &["demo", "--keep", &keep.display().to_string()]),
        "not empty",
    );
}

/// `git daemon` on a loopback port serving `base` with pushes enabled, or
/// `None` (the test prints a note and skips) when it cannot start.
struct Daemon(std::process::Child, u16);

impl Daemon {
    fn start(base: &Path) -> Option<Daemon> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let child = Command::new("git")
            .arg("daemon")
            .arg("--export-all")
            .arg("--enable=receive-pack")
            .arg("--reuseaddr")
            .arg("--listen=127.0.0.1")
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .ok()?;
        let mut daemon = Daemon(child, port);
        for _ in 0..250 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(daemon);
            }
            if daemon.0.try_wait().ok().flatten().is_some() {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_network_push_counts_what_it_sent() {
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("remote.git");
    ok(&larder(&remote, &["init", "--bare"]));
    let Some(daemon) = Daemon::start(top.path()) else {
        eprintln!("note: git daemon did not start; skipping the network push count test");
        return;
    };
    let url = format!("git://127.0.0.1:{}/remote.git", daemon.1);
    let a = top.path().join("a");
    ok(&larder(&a, &["init"]));
    let sent = |args: &[&str]| -> (u64, u64, bool) {
        let out = larder(&a, args);
        let v: serde_json::Value = serde_json::from_str(ok(&out).trim()).unwrap();
        (
            v["commits_sent"].as_u64().unwrap(),
            v["events_sent"].as_u64().unwrap(),
            v["pushed"].as_bool().unwrap(),
        )
    };
    ok(&larder(&a, &["append", "--log", "n", "--data", "1"]));
    ok(&larder(&a, &["append", "--log", "n", "--data", "2"]));
    assert_eq!(
        sent(&["--json", "sync", "--log", "n", "--remote", &url]),
        (2, 2, true)
    );
    ok(&larder(&a, &["append", "--log", "n", "--data", "3"]));
    assert_eq!(
        sent(&["--json", "sync", "--log", "n", "--remote", &url]),
        (1, 1, true)
    );
    // A push alone counts from what the last push left.
    ok(&larder(&a, &["append", "--log", "n", "--data", "[4, 5]"]));
    assert_eq!(
        sent(&["--json", "push", "--log", "n", "--remote", &url]),
        (1, 1, true)
    );
    assert_eq!(
        sent(&["--json", "push", "--log", "n", "--remote", &url]),
        (0, 0, false)
    );
    // The remote has all four commits.
    assert_eq!(git(&remote, &["rev-list", "--count", "--all"]).trim(), "4");
}

#[test]
fn status_of_a_hub_lists_the_published_heads() {
    let top = tempfile::tempdir().unwrap();
    let hub = top.path().join("hub.git");
    ok(&larder(&hub, &["init", "--bare"]));
    let a = top.path().join("a");
    ok(&larder(&a, &["init"]));
    ok(&larder(&a, &["append", "--log", "n", "--data", "1"]));
    ok(&larder(
        &a,
        &["push", "--log", "n", "--remote", &hub.display().to_string()],
    ));
    let s: serde_json::Value =
        serde_json::from_str(ok(&larder(&hub, &["--json", "status"])).trim()).unwrap();
    assert_eq!(s["log"], "n");
    assert_eq!(s["commits"], 1);
    assert_eq!(s["published_heads"].as_array().unwrap().len(), 1);
    assert!(ok(&larder(&hub, &["status"])).contains("1 published head(s), 1 commits"));
}

#[test]
fn argument_errors_are_one_line_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    refused(
        &larder(d, &["log", "x", "--limt", "3"]),
        "tip: a similar argument exists: '--limit'",
    );
    refused(
        &larder(d, &["append", "--log", "x"]),
        "--data <DATA>; see `larder append --help`",
    );
    refused(
        &larder(d, &["lock", "acquire", "x", "--ttl", "5 parsecs"]),
        "unknown unit",
    );
    refused(&larder(d, &["completions", "tcsh"]), "invalid value 'tcsh'");
    let out = larder(d, &["--json", "frob"]);
    assert_eq!(out.status.code(), Some(2));
    let err: serde_json::Value = serde_json::from_str(stderr(&out).trim()).unwrap();
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("unrecognized subcommand 'frob'")
    );
    // Help and version still print as usual.
    assert!(ok(&larder(d, &["log", "--help"])).contains("Usage: larder log"));
    assert!(ok(&larder(d, &["--version"])).starts_with("larder "));
}

#[test]
fn status_says_how_far_the_view_is_behind() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&larder(d, &["init"]));
    ok(&larder(
        d,
        &[
            "append",
            "--log",
            "kv",
            "--kind",
            "kv.set",
            "--data",
            r#"["a", 1]"#,
        ],
    ));
    {
        // A program keeps the key-value view; it is at the head.
        let repo = larder::Larder::open(d).unwrap();
        let viewed = repo
            .log_with_view::<larder::crdt::KvProjection>(
                "kv",
                larder::snapshot::SnapshotPolicy::OFF,
            )
            .unwrap();
        assert!(viewed.state().get("a").is_some());
    }
    let view = |d: &Path| -> serde_json::Value {
        let s: serde_json::Value =
            serde_json::from_str(ok(&larder(d, &["--json", "status"])).trim()).unwrap();
        s["view"].clone()
    };
    assert_eq!(view(d)["state"], "fresh");
    ok(&larder(
        d,
        &[
            "append",
            "--log",
            "kv",
            "--kind",
            "kv.set",
            "--data",
            r#"["b", 2]"#,
        ],
    ));
    ok(&larder(
        d,
        &[
            "append",
            "--log",
            "kv",
            "--kind",
            "kv.set",
            "--data",
            r#"["c", 3]"#,
        ],
    ));
    let v = view(d);
    assert_eq!(
        (v["state"].as_str(), v["commits_behind"].as_u64()),
        (Some("behind"), Some(2))
    );
    assert!(ok(&larder(d, &["status"])).contains("view: 2 commits behind"));
}

#[test]
fn a_reader_that_stops_early_is_no_panic() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&larder(d, &["init"]));
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(d)
        .args(["append", "--log", "n", "--stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines: String = (0..5000).map(|i| format!("{{\"n\":{i}}}\n")).collect();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    // `larder log n | head -1`: 5,000 lines (far more than a pipe holds).
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(d)
        .args(["log", "n"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    assert!(first.ends_with("{\"n\":4999}\n"), "{first}");
    let out = child.wait_with_output().unwrap();
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn import_keeps_times_and_authors_and_a_rerun_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&larder(d, &["init"]));
    let file = d.join("history.jsonl");
    std::fs::write(
        &file,
        concat!(
            r#"{"time": "2021-03-04T05:06:07Z", "author": "ada", "kind": "opened", "data": {"title": "bug"}, "key": "GH-1"}"#,
            "\n\n",
            r#"{"time": 1614834368000, "author": "grace", "kind": "comment", "data": "me too"}"#,
            "\n"
        ),
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let out = ok(&larder(d, &["--json", "import", "--log", "issues", f]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (v["imported"].as_u64(), v["skipped"].as_u64()),
        (Some(2), Some(0))
    );
    let out = ok(&larder(d, &["import", "--log", "issues", f]));
    assert!(
        out.contains("imported 0 event(s)") && out.contains("2 already there"),
        "{out}"
    );
    let lines = json_lines(&larder(d, &["--json", "log", "issues", "--reverse"]));
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["time"], "2021-03-04T05:06:07.000Z");
    assert_eq!(lines[0]["actor"], "ada");
    assert_eq!(lines[1]["actor"], "grace");
    // A bad line: exit 2 naming file and line, nothing written.
    let head = git(d, &["rev-parse", "refs/larder/issues/wal"]);
    std::fs::write(
        &file,
        concat!(
            r#"{"time": 1614834369000, "author": "ada", "kind": "c", "data": 1}"#,
            "\n",
            r#"{"time": "yesterday", "author": "ada", "kind": "c", "data": 2}"#,
            "\n"
        ),
    )
    .unwrap();
    refused(
        &larder(d, &["import", "--log", "issues", f]),
        "history.jsonl:2: time",
    );
    std::fs::write(
        &file,
        r#"{"time": 1614834369000, "author": "Ada L.", "kind": "c", "data": 1}"#,
    )
    .unwrap();
    refused(
        &larder(d, &["import", "--log", "issues", f]),
        "history.jsonl:1:",
    );
    assert_eq!(git(d, &["rev-parse", "refs/larder/issues/wal"]), head);
}

#[test]
fn watch_streams_events_as_they_land_with_resume_positions() {
    use std::io::{BufRead, BufReader};
    let tmp = tempfile::tempdir().unwrap();
    let remote = tmp.path().join("remote.git");
    git(
        tmp.path(),
        &["init", "--quiet", "--bare", remote.to_str().unwrap()],
    );
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for d in [&a, &b] {
        std::fs::create_dir(d).unwrap();
        ok(&larder(d, &["init"]));
    }
    let r = remote.to_str().unwrap();
    ok(&larder(
        &a,
        &["--actor", "alice", "append", "--log", "feed", "--data", "0"],
    ));
    let mut child = Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(&a)
        .args(["--json", "watch", "feed", "--from", "start", "--count", "3"])
        .args(["--remote", r, "--every", "100ms"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next =
        || -> serde_json::Value { serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap() };
    assert_eq!(next()["data"], 0, "catch-up from the start");
    ok(&larder(
        &a,
        &["--actor", "alice", "append", "--log", "feed", "--data", "1"],
    ));
    let live = next();
    assert_eq!(live["data"], 1);
    // bob's event reaches alice's watch through the remote it pulls.
    ok(&larder(
        &b,
        &["--actor", "bob", "append", "--log", "feed", "--data", "2"],
    ));
    ok(&larder(
        &b,
        &["--actor", "bob", "push", "--log", "feed", "--remote", r],
    ));
    let synced = next();
    assert_eq!(
        (synced["data"].as_i64(), synced["actor"].as_str()),
        (Some(2), Some("bob"))
    );
    assert!(child.wait().unwrap().success());
    // Resuming from a printed position, and bad positions.
    let position = live["position"].as_str().unwrap().to_owned();
    let out = ok(&larder(
        &a,
        &[
            "--json", "watch", "feed", "--from", &position, "--count", "1",
        ],
    ));
    assert!(out.contains("\"bob\""), "{out}");
    refused(&larder(&a, &["watch", "feed", "--from", "nope"]), "--from");
    let foreign = ok(&larder(
        &a,
        &[
            "--actor", "alice", "append", "--log", "other", "--data", "9",
        ],
    ));
    let foreign = foreign.split_whitespace().last().unwrap().to_owned();
    let o = larder(&a, &["watch", "feed", "--from", &foreign]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("not in the history"), "{}", stderr(&o));
}

#[test]
fn fsync_flag_and_config_make_writes_durable() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&larder(d, &["init"]));
    ok(&larder(
        d,
        &["--fsync", "append", "--log", "x", "--data", "1"],
    ));
    git(d, &["config", "larder.fsync", "true"]);
    ok(&larder(d, &["append", "--log", "x", "--data", "2"]));
    assert_eq!(json_lines(&larder(d, &["--json", "log", "x"])).len(), 2);
}
