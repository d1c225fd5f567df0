//! Quickstart: a log in a repository, shared through a remote, with a
//! key-value view, a snapshot and a lease lock.
//!
//! `cargo run -p larder --example quickstart`

use larder::crdt::KvProjection;
use larder::snapshot::SnapshotPolicy;
use larder::{Larder, Result};

pub fn main() -> Result<()> {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let remote = tmp.path().join("shared.git");
    Larder::init_bare(&remote)?;
    let remote = remote.display().to_string();

    // Two replicas of one project.
    let laptop = Larder::init(tmp.path().join("laptop"))?;
    let server = Larder::init(tmp.path().join("server"))?;

    // Append typed events; the key-value view follows every append.
    let mut settings = laptop.log_with_view::<KvProjection>("settings", SnapshotPolicy::OFF)?;
    // A write reports success once it is on the log; a view refresh that
    // failed after it would be in `after_commit` (`value()` logs it).
    settings
        .append_batch(&[("kv.set", KvProjection::set_payload("theme", &"dark")?)])?
        .value();
    settings
        .append_batch(&[("kv.set", KvProjection::set_payload("lang", &"en")?)])?
        .value();
    settings.sync(&laptop, &remote)?.value();

    // The other replica pulls and sees the same state.
    let mut mirror = server.log_with_view::<KvProjection>("settings", SnapshotPolicy::OFF)?;
    let report = mirror.sync(&server, &remote)?.value();
    println!("server received {} events", report.events_received);
    assert_eq!(
        mirror.state().state_hash_hex(),
        settings.state().state_hash_hex()
    );
    println!(
        "theme = {:?}",
        mirror
            .state()
            .get("theme")
            .map(|v| v.deserialize::<String>())
    );

    // A snapshot, and a lock with a fencing token.
    let snapshot = server
        .snapshots("settings")?
        .create_with::<KvProjection>()?;
    println!(
        "snapshot {} covers {} events",
        snapshot.name, snapshot.meta.event_count
    );
    let lease = server.locks_on(&remote)?.acquire("deploy", 30_000)?;
    println!("deploy lock held with fencing token {}", lease.token);
    Ok(())
}

trait HashHex {
    fn state_hash_hex(&self) -> String;
}

impl HashHex for KvProjection {
    fn state_hash_hex(&self) -> String {
        larder::crdt::Projection::state_hash(self).to_string()
    }
}
