//! Choosing the WAL commit format from the top: `git config larder.walFormat`
//! picks format 1 (for logs shared with older builds) or 2 (the default);
//! anything else is a typed error, never a silent choice. Both formats read.

use larder::wal::WalFormat;
use larder::{Larder, LarderError};
use larder_testkit::git;

#[test]
fn git_config_chooses_the_format_new_commits_are_written_in() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a");
    let larder = Larder::init(&dir).unwrap();
    assert_eq!(larder.wal_format().unwrap(), WalFormat::V2);
    larder.log("x").unwrap().append("e", &1).unwrap();

    git(&dir, &["config", "larder.walFormat", "1"]);
    let larder = Larder::open(&dir).unwrap();
    let log = larder.log("x").unwrap();
    assert_eq!(log.wal().options().format, WalFormat::V1);
    log.append("e", &2).unwrap();
    // The newest commit is format 1: meta.json beside events/.
    let files = git(&dir, &["ls-tree", "--name-only", "refs/larder/x/wal"]);
    assert_eq!(files.lines().collect::<Vec<_>>(), ["events", "meta.json"]);
    // Both commits read back, in order.
    let formats: Vec<u32> = log
        .wal()
        .commits_since(None)
        .unwrap()
        .map(|c| c.unwrap().meta.format)
        .collect();
    assert_eq!(formats, [2, 1]);
    let values: Vec<i32> = log
        .events()
        .unwrap()
        .iter()
        .map(|e| e.payload().deserialize().unwrap())
        .collect();
    assert_eq!(values, [1, 2]);
    git(&dir, &["fsck", "--full", "--strict"]);

    for bad in ["3", "two", "0"] {
        git(&dir, &["config", "larder.walFormat", bad]);
        let larder = Larder::open(&dir).unwrap();
        match larder.log("x") {
            Err(LarderError::Config { key, reason }) => {
                assert_eq!(key, "larder.walFormat");
                assert!(reason.contains(bad), "{reason}");
            }
            Err(other) => panic!("{bad}: expected a config error, got {other:?}"),
            Ok(_) => panic!("{bad}: expected a config error, got a log"),
        }
    }
}
