//! An append-only audit log that plain git can read and that detects
//! tampering: every event is content-addressed, and `verify` names any
//! object that changed.
//!
//! `cargo run -p larder --example audit_log`

use larder::git::{EntryKind, Expected};
use larder::{Larder, Result};

fn main() -> Result<()> {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let repo = Larder::init(tmp.path())?;
    let audit = repo.log("audit")?;
    for (who, what) in [
        ("ci", "deployed v1.4.2"),
        ("ops", "rotated keys"),
        ("ci", "deployed v1.4.3"),
    ] {
        audit.append(
            "audit.entry",
            &serde_json::json!({ "who": who, "what": what }),
        )?;
    }
    for e in audit.events()? {
        let entry: serde_json::Value = e.payload().deserialize()?;
        println!("{} {} {}", e.timestamp(), &e.id().to_hex()[..12], entry);
    }
    let report = audit.wal().verify()?;
    println!(
        "verify: {} commits, {} events, {} problems",
        report.commits,
        report.events,
        report.problems.len()
    );

    // Someone rewrites history: the newest entry's chunk gets a changed byte.
    let git = repo.repo();
    let head = audit.wal().head()?.expect("three appends");
    let commit = git.read_commit(head)?;
    let mut root = git.read_tree(commit.tree)?;
    let events = root
        .iter_mut()
        .find(|e| e.name == "events" && e.kind == EntryKind::Tree)
        .expect("events/");
    let mut levels = vec![git.read_tree(events.id)?];
    for _ in 0..3 {
        let next = git.read_tree(levels.last().expect("a level")[0].id)?;
        levels.push(next);
    }
    let chunk = &mut levels[3][0];
    let mut bytes = git.read_blob(chunk.id)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    chunk.id = git.write_blob(&bytes)?;
    for i in (0..3).rev() {
        let id = git.write_tree(&levels[i + 1])?;
        levels[i][0].id = id;
    }
    events.id = git.write_tree(&levels[0])?;
    let tree = git.write_tree(&root)?;
    let forged = git.write_commit(tree, &commit.parents, &commit.message, None, commit.time)?;
    git.update_ref(
        audit.wal().ref_name(),
        Expected::MustBe(head),
        forged,
        "tamper",
    )?;

    let report = audit.wal().verify()?;
    for problem in &report.problems {
        println!("tampering detected: {problem}");
    }
    assert_eq!(report.problems.len(), 1);
    Ok(())
}
