//! An append-only audit log that plain git can read and that detects
//! tampering: every event is content-addressed, and `verify` names any
//! object that changed.
//!
//! `cargo run -p larder --example audit_log`

use larder::git::{EntryKind, Expected};
use larder::{Larder, Result};

pub fn main() -> Result<()> {
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
    // WAL format 2: the commit's tree names one blob, `<chunk-id>.bin`.
    let mut root = git.read_tree(commit.tree)?;
    let chunk = root
        .iter_mut()
        .find(|e| e.name.ends_with(".bin") && e.kind == EntryKind::Blob)
        .expect("the chunk");
    let mut bytes = git.read_blob(chunk.id)?;
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    chunk.id = git.write_blob(&bytes)?;
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
