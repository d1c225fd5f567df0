//! `larder key`, `larder trust`, `verify` and `pull` with signatures:
//! real repositories, a real bare remote, the built binary, exit codes.

use std::path::Path;
use std::process::{Command, Output};

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

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn keys_trust_and_a_strict_pull_through_the_command() {
    let top = tempfile::tempdir().unwrap();
    let remote = top.path().join("r.git");
    std::fs::create_dir_all(&remote).unwrap();
    ok(&larder(&remote, &["init", "--bare"]));
    let remote_s = remote.display().to_string();
    let (alice, bob, reader) = (
        top.path().join("alice"),
        top.path().join("bob"),
        top.path().join("reader"),
    );
    for (dir, actor) in [(&alice, "alice"), (&bob, "bob"), (&reader, "reader")] {
        std::fs::create_dir_all(dir).unwrap();
        ok(&larder(dir, &["init"]));
        git(dir, &["config", "larder.actor", actor]);
    }

    // key show without a key: exit 1, one line naming the fix.
    let out = larder(&alice, &["key", "show"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("larder key generate"),
        "{}",
        stderr(&out)
    );

    let generated = ok(&larder(&alice, &["key", "generate"]));
    let public = generated.lines().next().unwrap().to_owned();
    assert!(
        public.starts_with("ed25519:") && public.len() == 72,
        "{generated}"
    );
    assert_eq!(ok(&larder(&alice, &["key", "show"])).trim(), public);
    let again = larder(&alice, &["key", "generate"]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "an existing key is never overwritten"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(alice.join(".git/larder/keys/alice"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    ok(&larder(
        &alice,
        &["append", "--log", "n", "--data", "\"signed\""],
    ));
    ok(&larder(
        &alice,
        &["push", "--log", "n", "--remote", &remote_s],
    ));
    ok(&larder(
        &bob,
        &["append", "--log", "n", "--data", "\"unsigned\""],
    ));
    ok(&larder(
        &bob,
        &["push", "--log", "n", "--remote", &remote_s],
    ));

    // trust: a bad key is bad input (exit 2); add, list.
    let out = larder(&reader, &["trust", "add", "alice", "ed25519:1234"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1);
    assert!(ok(&larder(&reader, &["trust", "add", "alice", &public])).starts_with("trusted alice"));
    assert!(
        ok(&larder(&reader, &["trust", "add", "alice", &public])).starts_with("already trusted")
    );
    assert_eq!(
        ok(&larder(&reader, &["trust", "list"])).trim(),
        format!("alice {public}")
    );
    git(&reader, &["config", "larder.requireSignatures", "true"]);
    let listed = ok(&larder(&reader, &["--json", "trust", "list"]));
    assert!(listed.contains("\"required\":true"), "{listed}");

    // A strict pull: bob's head is quarantined (exit 4, named with its reason), alice's merges.
    let out = larder(&reader, &["pull", "--log", "n", "--remote", &remote_s]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("heads/bob") && err.contains("unsigned event by bob"),
        "{err}"
    );
    let log = ok(&larder(&reader, &["log", "n"]));
    assert!(log.contains("signed") && !log.contains("unsigned"), "{log}");
    let verified = ok(&larder(&reader, &["verify", "--log", "n"]));
    assert!(
        verified.contains("1 verified, 0 unsigned, 0 refused"),
        "{verified}"
    );

    // Removing alice's key: her merged event is now reported by verify (exit 1).
    ok(&larder(&reader, &["trust", "remove", "alice"]));
    let out = larder(&reader, &["verify", "--log", "n"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        ok_stdout(&out).contains("no key is trusted for alice"),
        "{}",
        ok_stdout(&out)
    );

    // A bad policy line: exit 1, naming file and line.
    std::fs::write(reader.join(".git/larder/trust"), "# ok\nalice not-a-key\n").unwrap();
    let out = larder(&reader, &["trust", "list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("larder/trust:2: "),
        "{}",
        stderr(&out)
    );
    // A malformed key file: the append fails, naming file and line.
    std::fs::write(alice.join(".git/larder/keys/alice"), "ed25519-secret:xyz\n").unwrap();
    let out = larder(&alice, &["append", "--log", "n", "--data", "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("keys/alice:1: "), "{}", stderr(&out));
}

fn ok_stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
