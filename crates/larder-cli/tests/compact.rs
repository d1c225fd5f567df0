//! `larder compact`: packs loose objects and merges packs in any
//! repository, bare included; kept packs stay; damaged packs are named.

use std::path::Path;
use std::process::{Command, Output};

use larder::git::{GitRepo, ObjectBatch};
use larder_testkit::fixtures::count_objects;
use larder_testkit::git;

fn larder(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_larder"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn compact_packs_loose_objects_and_merges_packs_in_a_bare_repository() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let mut ids = Vec::new();
    for n in 0..50 {
        ids.push(repo.write_blob(format!("loose {n}").as_bytes()).unwrap());
    }
    let mut packs = Vec::new();
    for n in 0..6 {
        let mut batch = ObjectBatch::new();
        ids.push(batch.blob(format!("packed {n}").into_bytes()).unwrap());
        packs.push(repo.write_batch(&batch, false).unwrap().unwrap());
    }
    std::fs::write(packs[0].with_extension("keep"), b"").unwrap();
    assert_eq!(count_objects(dir.path()), (50, 6));

    let out = larder(dir.path(), &["--json", "compact"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(report["loose_objects_packed"], 50);
    assert_eq!(
        report["packs_merged"], 6,
        "five packs and the loose objects' pack"
    );
    assert_eq!(
        report["packs_after"], 2,
        "the kept pack, and a cruft pack: no ref reaches these objects, and they are young"
    );
    assert_eq!(report["unreachable_kept"], 55);
    assert_eq!(report["unreachable_dropped"], 0);
    assert_eq!(report["damaged_packs"], serde_json::json!([]));
    assert_eq!(count_objects(dir.path()), (0, 2));
    assert!(packs[0].exists());
    git(dir.path(), &["fsck", "--strict"]);
    let fresh = GitRepo::open(dir.path()).unwrap();
    for id in &ids {
        assert!(fresh.has_object(*id));
    }

    // Nothing left to do: a second run says so.
    let out = larder(dir.path(), &["compact"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("packed 0 loose objects; merged 0 packs"),
        "{text}"
    );
}

#[test]
fn compact_with_a_log_keeps_it_readable() {
    let dir = tempfile::tempdir().unwrap();
    assert!(larder(dir.path(), &["init"]).status.success());
    for n in 0..20 {
        let data = format!(r#"{{"n":{n}}}"#);
        let out = larder(dir.path(), &["append", "--log", "issues", "--data", &data]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = larder(dir.path(), &["--json", "compact", "--log", "issues"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap();
    assert_eq!(report["packs_after"], 1);
    let out = larder(dir.path(), &["--json", "log", "--log", "issues"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 20);
    assert!(
        !larder(dir.path(), &["compact", "--log", "nope"])
            .status
            .success()
    );
}

/// A bare repository with one reachable commit (on `refs/heads/main`) and
/// 10 unreachable loose blobs; returns the blobs.
fn with_unreachable_blobs(dir: &Path) -> Vec<larder::git::ObjectId> {
    let repo = GitRepo::init_bare(dir).unwrap();
    let blobs: Vec<_> = (0..10)
        .map(|n| {
            repo.write_blob(format!("unreachable {n}").as_bytes())
                .unwrap()
        })
        .collect();
    let tree = repo.write_tree(&[]).unwrap();
    let commit = repo
        .write_commit(tree, &[], "kept\n", None, 1_700_000_000)
        .unwrap();
    git(dir, &["update-ref", "refs/heads/main", &commit.to_string()]);
    blobs
}

fn compact_report(dir: &Path, args: &[&str]) -> serde_json::Value {
    let out = larder(dir, &[&["--json", "compact"], args].concat());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).unwrap()
}

#[test]
fn compact_prune_chooses_when_unreachable_objects_go() {
    // Default (14 days): young unreachable objects stay, in a cruft pack.
    let dir = tempfile::tempdir().unwrap();
    let blobs = with_unreachable_blobs(dir.path());
    let report = compact_report(dir.path(), &[]);
    assert_eq!(report["unreachable_kept"], 10);
    assert_eq!(report["unreachable_dropped"], 0);

    // `now`: every unreachable object goes, the reachable ones stay.
    let report = compact_report(dir.path(), &["--prune", "now"]);
    assert_eq!(report["unreachable_dropped"], 10);
    assert_eq!(report["unreachable_kept"], 0);
    let fresh = GitRepo::open(dir.path()).unwrap();
    assert!(blobs.iter().all(|b| !fresh.has_object(*b)));
    git(dir.path(), &["fsck", "--strict"]);

    // `never`: all kept, however old; an age in hours keeps young ones.
    for args in [["--prune", "never"], ["--prune", "12h"]] {
        let dir = tempfile::tempdir().unwrap();
        let blobs = with_unreachable_blobs(dir.path());
        let report = compact_report(dir.path(), &args);
        assert_eq!(report["unreachable_dropped"], 0, "{args:?}");
        let fresh = GitRepo::open(dir.path()).unwrap();
        assert!(blobs.iter().all(|b| fresh.has_object(*b)), "{args:?}");
    }

    // A value that is no age is refused before anything is touched.
    for bad in ["soon", "14x", "d", "-1d", "14", "+14d", "1500ms"] {
        let out = larder(dir.path(), &["compact", &format!("--prune={bad}")]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(bad) && err.contains("--prune"), "{bad}: {err}");
    }
}

#[test]
fn compact_names_a_damaged_pack_and_merges_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let mut packs = Vec::new();
    for n in 0..3 {
        let mut batch = ObjectBatch::new();
        batch
            .blob(format!("packed blob number {n}").into_bytes())
            .unwrap();
        packs.push(repo.write_batch(&batch, false).unwrap().unwrap());
    }
    let mut bytes = std::fs::read(&packs[1]).unwrap();
    bytes[16] ^= 0x40;
    std::fs::write(&packs[1], bytes).unwrap();
    let out = larder(dir.path(), &["compact"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("merged 2 packs"), "{text}");
    assert!(
        text.contains(&format!("damaged: pack {}", packs[1].display())),
        "{text}"
    );
    assert!(packs[1].exists());
}

#[test]
fn verify_and_stats_name_a_damaged_pack() {
    let dir = tempfile::tempdir().unwrap();
    assert!(larder(dir.path(), &["init"]).status.success());
    let out = larder(dir.path(), &["append", "--log", "issues", "--data", "1"]);
    assert!(out.status.success());
    // A pack the log does not need, damaged: no walk of the log meets it.
    let repo = GitRepo::open(dir.path()).unwrap();
    let mut batch = ObjectBatch::new();
    batch.blob(b"an unrelated packed blob".to_vec()).unwrap();
    let pack = repo.write_batch(&batch, false).unwrap().unwrap();
    let mut bytes = std::fs::read(&pack).unwrap();
    bytes[16] ^= 0x40;
    std::fs::write(&pack, bytes).unwrap();
    for cmd in ["verify", "stats"] {
        let out = larder(dir.path(), &[cmd, "--log", "issues"]);
        assert_eq!(out.status.code(), Some(1), "{cmd}: {out:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&pack.display().to_string()), "{cmd}: {text}");
    }
}
