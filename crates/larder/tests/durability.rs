//! Durability from the top: `git config larder.fsync true` or
//! `Larder::with_durability` makes every log of the handle write with
//! `Durability::Fsync` — appends, merges, pulls.

use larder::Larder;
use larder::wal::Durability;
use larder_testkit::git;

#[test]
fn git_config_and_the_builder_choose_fsync_for_every_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let larder = Larder::init(&dir).unwrap();
    assert_eq!(larder.durability(), Durability::Buffered);
    assert_eq!(
        larder.log("x").unwrap().wal().options().durability,
        Durability::Buffered
    );
    git(&dir, &["config", "larder.fsync", "true"]);
    let larder = Larder::open(&dir).unwrap();
    assert_eq!(larder.durability(), Durability::Fsync);
    let log = larder.log("x").unwrap();
    assert_eq!(log.wal().options().durability, Durability::Fsync);
    log.append("e", &1).unwrap();
    // Everything still works under fsync: a sync through a bare remote.
    let remote = tmp.path().join("r.git");
    Larder::init_bare(&remote).unwrap();
    let report = larder
        .sync("x", remote.to_str().unwrap())
        .unwrap()
        .sync()
        .unwrap();
    assert!(report.pushed);
    assert_eq!(
        larder
            .sync("x", remote.to_str().unwrap())
            .unwrap()
            .wal()
            .options()
            .durability,
        Durability::Fsync
    );
    // The builder wins over the config.
    let relaxed = Larder::open(&dir)
        .unwrap()
        .with_durability(Durability::Buffered);
    assert_eq!(
        relaxed.log("x").unwrap().wal().options().durability,
        Durability::Buffered
    );
    git(&dir, &["fsck", "--full", "--strict"]);
}
