//! Compaction drops what nothing can name, and only that: unreachable
//! objects older than the grace period go, younger ones stay in a cruft
//! pack whose `.mtimes` git reads too, a writer's pack that no ref names
//! yet survives, reflogs and `*_HEAD` files are roots, deltas never lose
//! their base, and repositories whose roots larder cannot see (an index)
//! or cannot trust (a damaged pack) keep everything. `git fsck --full
//! --strict` is the oracle after every compaction.
//!
//! Ages are set with file times (no sleeping): a pack whose data file is
//! 30 days old holds 30-day-old objects.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use larder_git::{
    CompactOptions, Consolidation, DEFAULT_PRUNE_GRACE, EntryKind, Expected, GitRepo, ObjectBatch,
    ObjectId, TreeEntry, Unreachable,
};
use larder_testkit::fixtures::{assert_fsck, bare_repo, files, work_repo};
use larder_testkit::{git, git_with_stdin};

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const REF: &str = "refs/larder/t/wal";

fn backdate(path: &Path, age: Duration) {
    std::fs::File::open(path)
        .unwrap()
        .set_modified(SystemTime::now() - age)
        .unwrap();
}

/// A commit of one file holding `text`, on `parent`, written as one pack
/// (as an append writes it). Returns (commit, tree, blob, pack).
fn commit_pack(repo: &GitRepo, text: &str, parent: Option<ObjectId>) -> ([ObjectId; 3], PathBuf) {
    let mut batch = ObjectBatch::new();
    let blob = batch.blob(text.as_bytes().to_vec()).unwrap();
    let tree = batch
        .tree(&[TreeEntry {
            name: "f".into(),
            kind: EntryKind::Blob,
            id: blob,
        }])
        .unwrap();
    let commit = batch
        .commit(tree, parent.as_slice(), "m", None, 1_700_000_000)
        .unwrap();
    let pack = repo.write_batch(&batch, false).unwrap().unwrap();
    ([commit, tree, blob], pack)
}

fn compact(dir: &Path, unreachable: Unreachable) -> Consolidation {
    GitRepo::open(dir)
        .unwrap()
        .compact_opts(
            &CompactOptions {
                max_size: u64::MAX,
                unreachable,
            },
            &|_| {},
        )
        .unwrap()
}

const DEFAULT: Unreachable = Unreachable::DropOlderThan(DEFAULT_PRUNE_GRACE);

/// Whether a freshly opened handle finds `id`.
fn present(dir: &Path, id: ObjectId) -> bool {
    GitRepo::open(dir).unwrap().has_object(id)
}

fn pack_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let pack_dir = if dir.join("objects").is_dir() {
        dir.join("objects/pack")
    } else {
        dir.join(".git/objects/pack")
    };
    let mut found: Vec<PathBuf> = std::fs::read_dir(pack_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    found.sort();
    found
}

/// A bare repository made by git, opened by larder.
fn opened_bare_repo() -> (tempfile::TempDir, GitRepo) {
    let dir = bare_repo();
    let repo = GitRepo::open(dir.path()).unwrap();
    (dir, repo)
}

fn oid(hex: &str) -> ObjectId {
    ObjectId::from_hex(hex.trim().as_bytes()).unwrap()
}

#[test]
fn old_unreachable_objects_go_and_young_ones_stay_in_a_cruft_pack() {
    let (dir, repo) = opened_bare_repo();
    let (reachable, reachable_pack) = commit_pack(&repo, "reachable", None);
    repo.update_ref(REF, Expected::MustNotExist, reachable[0], "t")
        .unwrap();
    let (old, old_pack) = commit_pack(&repo, "old garbage", Some(reachable[0]));
    let (young, _) = commit_pack(&repo, "young garbage", Some(reachable[0]));
    backdate(&old_pack, 30 * DAY);
    // Age never drops a reachable object.
    backdate(&reachable_pack, 30 * DAY);

    let done = compact(dir.path(), DEFAULT);
    assert_eq!(
        (
            done.unreachable_dropped,
            done.unreachable_kept,
            done.packs_merged
        ),
        (3, 3, 3),
        "{done:?}"
    );
    assert_eq!(done.prune_skipped, None);
    for id in reachable.iter().chain(&young) {
        assert!(present(dir.path(), *id), "{id} must stay");
    }
    for id in &old {
        assert!(!present(dir.path(), *id), "{id} must go");
    }
    assert_eq!(pack_files(dir.path(), "pack").len(), 2);
    assert_eq!(pack_files(dir.path(), "mtimes").len(), 1, "one cruft pack");
    assert_fsck(dir.path());

    // Nothing left to do: the two packs stay as they are.
    let before = files(dir.path());
    let again = compact(dir.path(), DEFAULT);
    assert_eq!((again.packs_merged, again.unreachable_kept), (0, 3));
    assert_eq!(files(dir.path()), before);

    // Once the young garbage is as old, it goes too; the cruft pack with it.
    for file in pack_files(dir.path(), "pack") {
        backdate(&file, 30 * DAY);
    }
    // The cruft pack's own times say "young": its file time does not count.
    let still = compact(dir.path(), DEFAULT);
    assert_eq!(still.unreachable_dropped, 0, "{still:?}");
    let now = compact(dir.path(), Unreachable::DropOlderThan(Duration::ZERO));
    assert_eq!(now.unreachable_dropped, 3, "{now:?}");
    assert_eq!(pack_files(dir.path(), "pack").len(), 1);
    assert!(pack_files(dir.path(), "mtimes").is_empty());
    assert_fsck(dir.path());
}

#[test]
fn a_writers_pack_that_no_ref_names_yet_survives_compaction() {
    let (dir, repo) = opened_bare_repo();
    let (first, first_pack) = commit_pack(&repo, "first", None);
    repo.update_ref(REF, Expected::MustNotExist, first[0], "t")
        .unwrap();
    backdate(&first_pack, 30 * DAY);
    // An appender has written its pack and is about to move the ref.
    let (pending, _) = commit_pack(&repo, "pending", Some(first[0]));

    let done = compact(dir.path(), DEFAULT);
    assert_eq!((done.unreachable_kept, done.unreachable_dropped), (3, 0));
    repo.update_ref(REF, Expected::MustBe(first[0]), pending[0], "t")
        .unwrap();
    assert_fsck(dir.path());
    assert_eq!(
        git(dir.path(), &["rev-list", "--count", REF]),
        "2",
        "the appended commit and its parent"
    );
    let fresh = GitRepo::open(dir.path()).unwrap();
    assert_eq!(fresh.read_blob(pending[2]).unwrap(), b"pending");
    // Once its ref moved it is reachable: the next compaction puts it in
    // the main pack, and nothing is kept as cruft.
    let again = compact(dir.path(), DEFAULT);
    assert_eq!((again.unreachable_kept, again.unreachable_dropped), (0, 0));
    assert!(pack_files(dir.path(), "mtimes").is_empty());
    assert_fsck(dir.path());

    // The control: without a grace period (`--prune=now`, for a repository
    // nobody writes to) the same pending pack is dropped — which is what
    // the grace period protects a concurrent appender from.
    let (lost, _) = commit_pack(&repo, "lost", Some(pending[0]));
    let now = compact(dir.path(), Unreachable::DropOlderThan(Duration::ZERO));
    assert_eq!(now.unreachable_dropped, 3);
    assert!(!present(dir.path(), lost[0]));
}

#[test]
fn git_reads_the_object_times_larder_writes_in_a_cruft_pack() {
    let (dir, repo) = opened_bare_repo();
    let (young, _) = commit_pack(&repo, "young garbage", None);
    compact(dir.path(), DEFAULT);
    let cruft = pack_files(dir.path(), "pack");
    assert_eq!(cruft.len(), 1);
    // The cruft pack's files look 30 days old; its objects' times do not.
    for file in pack_files(dir.path(), "pack")
        .into_iter()
        .chain(pack_files(dir.path(), "idx"))
        .chain(pack_files(dir.path(), "mtimes"))
    {
        backdate(&file, 30 * DAY);
    }
    // The control: a plain pack of unreachable objects as old.
    let (old, old_pack) = commit_pack(&repo, "old garbage", None);
    backdate(&old_pack, 30 * DAY);

    git(
        dir.path(),
        &["gc", "--quiet", "--cruft", "--prune=1.week.ago"],
    );
    assert_fsck(dir.path());
    for id in &young {
        assert!(
            present(dir.path(), *id),
            "git kept {id} by its recorded time"
        );
    }
    for id in &old {
        assert!(
            !present(dir.path(), *id),
            "git dropped {id} by its pack's time"
        );
    }
}

#[test]
fn larder_reads_the_object_times_git_writes_in_a_cruft_pack() {
    let dir = bare_repo();
    let old = oid(&git_with_stdin(
        dir.path(),
        &["hash-object", "-w", "--stdin"],
        Some(b"old garbage"),
    ));
    let young = oid(&git_with_stdin(
        dir.path(),
        &["hash-object", "-w", "--stdin"],
        Some(b"young garbage"),
    ));
    let hex = old.to_string();
    backdate(
        &dir.path().join("objects").join(&hex[..2]).join(&hex[2..]),
        30 * DAY,
    );
    // git packs both into a cruft pack that records each loose file's time;
    // the pack file itself is new.
    git(dir.path(), &["repack", "--cruft", "-d", "-q"]);
    assert_eq!(pack_files(dir.path(), "mtimes").len(), 1);

    let done = compact(dir.path(), DEFAULT);
    assert_eq!((done.unreachable_dropped, done.unreachable_kept), (1, 1));
    assert!(!present(dir.path(), old));
    assert!(present(dir.path(), young));
    assert_fsck(dir.path());
}

#[test]
fn reflog_entries_and_head_files_are_roots() {
    let (dir, repo) = opened_bare_repo();
    let (a, _) = commit_pack(&repo, "only in a reflog", None);
    let (b, _) = commit_pack(&repo, "the ref's value", None);
    let (c, _) = commit_pack(&repo, "only in ORIG_HEAD", None);
    let (d, _) = commit_pack(&repo, "garbage", None);
    let a_hex = a[0].to_string();
    let b_hex = b[0].to_string();
    git(
        dir.path(),
        &["update-ref", "--create-reflog", "refs/heads/main", &a_hex],
    );
    git(
        dir.path(),
        &["update-ref", "refs/heads/main", &b_hex, &a_hex],
    );
    std::fs::write(dir.path().join("ORIG_HEAD"), format!("{}\n", c[0])).unwrap();
    // A reflog line naming an object that is gone does not block pruning.
    let log = dir.path().join("logs/refs/heads/main");
    let mut text = std::fs::read_to_string(&log).unwrap();
    text.push_str(&format!(
        "{b_hex} {} t <t@t> 1700000000 +0000\tgone\n",
        "1234567890123456789012345678901234567890"
    ));
    std::fs::write(&log, &text).unwrap();
    for pack in pack_files(dir.path(), "pack") {
        backdate(&pack, 30 * DAY);
    }

    let done = compact(dir.path(), DEFAULT);
    assert_eq!(done.prune_skipped, None);
    assert_eq!(done.unreachable_dropped, 3, "{done:?}");
    for id in a.iter().chain(&b).chain(&c) {
        assert!(present(dir.path(), *id));
    }
    assert!(!present(dir.path(), d[0]));
    // (git fsck refuses the reflog line naming a missing object.)
    let lines: Vec<&str> = text.lines().filter(|l| !l.ends_with("gone")).collect();
    std::fs::write(&log, format!("{}\n", lines.join("\n"))).unwrap();
    assert_fsck(dir.path());
}

#[test]
fn a_delta_whose_base_is_dropped_is_written_whole() {
    let dir = bare_repo();
    let kept_text: String = (0..300)
        .map(|n| format!("line {n} of the file\n"))
        .collect();
    let dropped_text = format!("{kept_text}{}", "one more line at the end\n".repeat(40));
    let write = |text: &str| {
        oid(&git_with_stdin(
            dir.path(),
            &["hash-object", "-w", "--stdin"],
            Some(text.as_bytes()),
        ))
    };
    let (kept_blob, dropped_blob) = (write(&kept_text), write(&dropped_text));
    let tree = |blob: ObjectId| {
        oid(&git_with_stdin(
            dir.path(),
            &["mktree"],
            Some(format!("100644 blob {blob}\tf\n").as_bytes()),
        ))
    };
    let (kept_tree, dropped_tree) = (tree(kept_blob), tree(dropped_blob));
    let kept = oid(&git_with_stdin(
        dir.path(),
        &["commit-tree", &kept_tree.to_string()],
        Some(b"kept"),
    ));
    let dropped = oid(&git_with_stdin(
        dir.path(),
        &[
            "commit-tree",
            &dropped_tree.to_string(),
            "-p",
            &kept.to_string(),
        ],
        Some(b"dropped"),
    ));
    git(
        dir.path(),
        &["update-ref", "refs/heads/main", &kept.to_string()],
    );
    // One pack of all six, by git, with the smaller blob a delta of the
    // larger one (git takes larger objects as bases).
    let list = format!(
        "{kept}\n{dropped}\n{kept_tree}\n{dropped_tree}\n{kept_blob} f\n{dropped_blob} f\n"
    );
    let base = dir.path().join("objects/pack/pack");
    git_with_stdin(
        dir.path(),
        &["pack-objects", "-q", base.to_str().unwrap()],
        Some(list.as_bytes()),
    );
    git(dir.path(), &["prune-packed"]);
    let idx = pack_files(dir.path(), "idx");
    let listing = git(dir.path(), &["verify-pack", "-v", idx[0].to_str().unwrap()]);
    let delta_line = listing
        .lines()
        .find(|l| l.starts_with(&kept_blob.to_string()))
        .unwrap();
    assert!(
        delta_line.ends_with(&dropped_blob.to_string()),
        "precondition: git stored the kept blob as a delta of the other: {delta_line}"
    );
    backdate(&pack_files(dir.path(), "pack")[0], 30 * DAY);

    let done = compact(dir.path(), DEFAULT);
    assert_eq!(done.unreachable_dropped, 3, "{done:?}");
    assert!(!present(dir.path(), dropped_blob));
    assert_fsck(dir.path());
    assert_eq!(
        git(dir.path(), &["cat-file", "blob", &kept_blob.to_string()]),
        kept_text.trim_end()
    );
}

#[test]
fn copies_of_one_object_in_several_packs_are_written_once() {
    let (dir, repo) = opened_bare_repo();
    let (ids, _) = commit_pack(&repo, "twice", None);
    repo.update_ref(REF, Expected::MustNotExist, ids[0], "t")
        .unwrap();
    // The same three objects again, in a pack of their own (one more
    // object makes it another file).
    let mut batch = ObjectBatch::new();
    let blob = batch.blob(b"twice".to_vec()).unwrap();
    let tree = batch
        .tree(&[TreeEntry {
            name: "f".into(),
            kind: EntryKind::Blob,
            id: blob,
        }])
        .unwrap();
    batch.commit(tree, &[], "m", None, 1_700_000_000).unwrap();
    batch.blob(b"one more".to_vec()).unwrap();
    repo.write_batch(&batch, false).unwrap().unwrap();
    assert_eq!(pack_files(dir.path(), "pack").len(), 2);

    let done = compact(dir.path(), DEFAULT);
    assert_eq!(
        (done.duplicates_dropped, done.objects, done.unreachable_kept),
        (3, 4, 1),
        "{done:?}"
    );
    assert_eq!(pack_files(dir.path(), "pack").len(), 2, "main and cruft");
    assert_fsck(dir.path());
}

/// A source repository whose ref names one commit (with its tree and
/// blob, written as one pack): what a push or pull would send.
fn pushed_source() -> (tempfile::TempDir, GitRepo, [ObjectId; 3]) {
    let source_dir = bare_repo();
    let source = GitRepo::open(source_dir.path()).unwrap();
    let (ids, _) = commit_pack(&source, "pushed again", None);
    source
        .update_ref(REF, Expected::MustNotExist, ids[0], "t")
        .unwrap();
    (source_dir, source, ids)
}

/// A transfer (a push, a pull) checks what the destination has, copies the
/// rest, then moves a ref. If the destination held an object only in a
/// cruft pack, old enough to drop, and the transfer referred to that copy,
/// a compaction running between the copy and the ref move would drop it.
/// Here the compaction runs exactly there; the ref then must read.
#[test]
fn a_transfer_never_refers_to_a_copy_compaction_may_drop() {
    let (_source_dir, source, ids) = pushed_source();

    // The destination holds the same objects, unreachable (an earlier
    // push that never moved its ref), in a cruft pack git made, recording
    // them as 10 days old.
    let (dir, repo) = opened_bare_repo();
    commit_pack(&repo, "pushed again", None);
    let old = Unreachable::DropOlderThan(7 * DAY);
    for pack in pack_files(dir.path(), "pack") {
        backdate(&pack, 10 * DAY);
    }
    let before = repo.cruft_object_ids().len();
    // Made by git, so its bytes differ from larder's own packs.
    git(
        dir.path(),
        &["repack", "--cruft", "--cruft-expiration=never", "-d", "-q"],
    );
    let cruft = pack_files(dir.path(), "mtimes");
    assert_eq!((before, cruft.len()), (0, 1));
    assert_eq!(repo.cruft_object_ids().len(), 3);

    // The push copies them again instead of relying on the cruft copies…
    assert_eq!(repo.copy_reachable_from(&source, &[ids[0]]).unwrap(), 3);
    // …a compaction runs before the ref moves: the old copies go, the
    // fresh ones stay…
    let done = compact(dir.path(), old);
    assert_eq!(
        (done.unreachable_dropped, done.unreachable_kept),
        (0, 3),
        "{done:?}"
    );
    // …and the ref, once moved, reads.
    repo.update_ref(REF, Expected::MustNotExist, ids[0], "t")
        .unwrap();
    assert_fsck(dir.path());
    // Reachable now, the next compaction moves them to the main pack, and
    // a transfer finds them there.
    assert_eq!(compact(dir.path(), old).unreachable_kept, 0);
    assert_eq!(repo.copy_reachable_from(&source, &[ids[0]]).unwrap(), 0);
}

/// The same, where the transfer's pack is byte for byte the cruft pack
/// larder's compaction made of an earlier copy of the same objects: it
/// lands on the same file name, and must not take on the cruft pack's
/// recorded (old) times.
#[test]
fn a_transfer_pack_equal_to_a_cruft_pack_is_not_cruft() {
    let (_source_dir, source, ids) = pushed_source();

    let (dir, repo) = opened_bare_repo();
    // An earlier push's pack, 10 days old, its ref never moved: compaction
    // with a two-week grace keeps it as a cruft pack, recording 10 days.
    assert_eq!(repo.copy_reachable_from(&source, &[ids[0]]).unwrap(), 3);
    backdate(&pack_files(dir.path(), "pack")[0], 10 * DAY);
    assert_eq!(compact(dir.path(), DEFAULT).unreachable_kept, 3);
    let cruft = pack_files(dir.path(), "mtimes");
    assert_eq!(cruft.len(), 1);

    // The retried push writes the very same pack.
    assert_eq!(repo.copy_reachable_from(&source, &[ids[0]]).unwrap(), 3);
    assert_eq!(pack_files(dir.path(), "pack").len(), 1, "the same file");
    assert!(
        pack_files(dir.path(), "mtimes").is_empty(),
        "no cruft any more"
    );
    // A compaction dropping what is a week old, before the ref moves, keeps it.
    let done = compact(dir.path(), Unreachable::DropOlderThan(7 * DAY));
    assert_eq!(done.unreachable_dropped, 0, "{done:?}");
    repo.update_ref(REF, Expected::MustNotExist, ids[0], "t")
        .unwrap();
    assert_fsck(dir.path());
}

#[test]
fn large_objects_written_at_the_fastest_level_are_compressed_again() {
    let (dir, repo) = opened_bare_repo();
    let text: String = (0..8_000)
        .map(|n| format!("{{\"order\":{n},\"sku\":\"SKU-{:05}\"}}\n", n * 7 % 20_000))
        .collect();
    let (ids, pack) = commit_pack(&repo, &text, None);
    repo.update_ref(REF, Expected::MustNotExist, ids[0], "t")
        .unwrap();
    commit_pack(&repo, "a second pack, so there is something to merge", None);
    let before = std::fs::metadata(&pack).unwrap().len();
    let done = compact(dir.path(), Unreachable::Keep);
    assert_eq!(done.recompressed, 1, "{done:?}");
    let after = std::fs::metadata(&pack_files(dir.path(), "pack")[0])
        .unwrap()
        .len();
    assert!(after < before, "{after} bytes, {before} before");
    assert_fsck(dir.path());
    assert_eq!(
        GitRepo::open(dir.path())
            .unwrap()
            .read_blob(ids[2])
            .unwrap(),
        text.as_bytes()
    );
    // Written at the default level now: not again.
    commit_pack(&repo, "another", None);
    assert_eq!(compact(dir.path(), Unreachable::Keep).recompressed, 0);
}

#[test]
fn nothing_unreachable_is_dropped_where_larder_cannot_see_every_root() {
    // A work tree used with git: its index names objects no ref reaches.
    let dir = work_repo();
    std::fs::write(dir.path().join("staged.txt"), "staged, never committed").unwrap();
    git(dir.path(), &["add", "staged.txt"]);
    let staged = oid(&git(dir.path(), &["rev-parse", ":staged.txt"]));
    let repo = GitRepo::open(dir.path()).unwrap();
    let (garbage, _) = commit_pack(&repo, "garbage", None);
    for loose in files(&dir.path().join(".git/objects")) {
        backdate(&loose, 30 * DAY);
    }
    let done = compact(dir.path(), DEFAULT);
    assert!(
        done.prune_skipped
            .as_deref()
            .is_some_and(|r| r.contains("index")),
        "{done:?}"
    );
    assert_eq!(done.unreachable_dropped, 0);
    assert!(present(dir.path(), staged));
    assert!(present(dir.path(), garbage[0]));
    assert_fsck(dir.path());
    git(dir.path(), &["commit", "-q", "-m", "still committable"]);
}

#[test]
fn nothing_unreachable_is_dropped_next_to_a_damaged_pack() {
    let (dir, repo) = opened_bare_repo();
    let (garbage, garbage_pack) = commit_pack(&repo, "garbage", None);
    let (_, damaged) = commit_pack(&repo, "in a damaged pack", None);
    commit_pack(&repo, "a third pack", None);
    backdate(&garbage_pack, 30 * DAY);
    let mut bytes = std::fs::read(&damaged).unwrap();
    bytes[16] ^= 0x40;
    std::fs::write(&damaged, bytes).unwrap();

    let done = compact(dir.path(), DEFAULT);
    assert_eq!(done.damaged.len(), 1);
    assert!(
        done.prune_skipped
            .as_deref()
            .is_some_and(|r| r.contains("damaged"))
    );
    assert_eq!(done.unreachable_dropped, 0);
    assert!(present(dir.path(), garbage[0]));
    assert!(damaged.exists(), "a damaged pack is left where it is");
}

/// A commit the receiver holds may name a blob that sits only in a cruft
/// pack (gix writes nothing for an object it finds in any pack, cruft
/// included). A transfer of a child keeping that blob at the same path
/// sends it again rather than count it held: the cruft copy may go.
#[test]
fn a_blob_a_held_parent_names_but_only_a_cruft_pack_holds_is_sent() {
    let (dir, repo) = opened_bare_repo();
    // `b` unreachable and young: compaction keeps it in a cruft pack.
    let ([_, _, b], _) = commit_pack(&repo, "shared", None);
    compact(dir.path(), DEFAULT);
    assert!(repo.cruft_object_ids().contains(&b));

    let tree_with = |batch: &mut ObjectBatch, other: &str| {
        let o = batch.blob(other.as_bytes().to_vec()).unwrap();
        batch
            .tree(&[
                TreeEntry {
                    name: "f".into(),
                    kind: EntryKind::Blob,
                    id: b,
                },
                TreeEntry {
                    name: "g".into(),
                    kind: EntryKind::Blob,
                    id: o,
                },
            ])
            .unwrap()
    };
    // The receiver's parent commit, in an ordinary pack, naming `b`.
    let mut held = ObjectBatch::new();
    let tree = tree_with(&mut held, "one");
    let parent = held.commit(tree, &[], "p", None, 1_700_000_000).unwrap();
    repo.write_batch(&held, false).unwrap();
    repo.update_ref(REF, Expected::MustNotExist, parent, "t")
        .unwrap();

    // The source: the same parent, and a child keeping `f`.
    let source_dir = bare_repo();
    let source = GitRepo::open(source_dir.path()).unwrap();
    let mut batch = ObjectBatch::new();
    batch.blob(b"shared".to_vec()).unwrap();
    let tree = tree_with(&mut batch, "one");
    assert_eq!(
        batch.commit(tree, &[], "p", None, 1_700_000_000).unwrap(),
        parent
    );
    let tree = tree_with(&mut batch, "two");
    let child = batch
        .commit(tree, &[parent], "c", None, 1_700_000_001)
        .unwrap();
    source.write_batch(&batch, false).unwrap();

    repo.copy_reachable_from(&source, &[child]).unwrap();
    repo.update_ref(REF, Expected::MustBe(parent), child, "t")
        .unwrap();
    // The cruft copy goes (its grace period over): the log still reads.
    for file in pack_files(dir.path(), "mtimes") {
        for extension in ["idx", "pack", "mtimes"] {
            std::fs::remove_file(file.with_extension(extension)).unwrap();
        }
    }
    assert_fsck(dir.path());
}

/// Opened through a linked worktree (made without a checkout, so it has
/// no index of its own), a repository's other roots — the main reflogs,
/// the other worktrees — are out of sight: nothing unreachable is dropped.
#[test]
fn nothing_unreachable_is_dropped_through_a_linked_worktree() {
    let (dir, repo) = opened_bare_repo();
    let ([main, _, _], _) = commit_pack(&repo, "main", None);
    repo.update_ref("refs/heads/main", Expected::MustNotExist, main, "t")
        .unwrap();
    let (garbage, _) = commit_pack(&repo, "garbage", None);
    for pack in pack_files(dir.path(), "pack") {
        backdate(&pack, 30 * DAY);
    }
    let linked = tempfile::tempdir().unwrap();
    let worktree = linked.path().join("wt");
    git(
        dir.path(),
        &[
            "worktree",
            "add",
            "--no-checkout",
            "--detach",
            worktree.to_str().unwrap(),
            &main.to_string(),
        ],
    );
    let done = GitRepo::open(&worktree)
        .unwrap()
        .compact_opts(
            &CompactOptions {
                max_size: u64::MAX,
                unreachable: DEFAULT,
            },
            &|_| {},
        )
        .unwrap();
    assert!(
        done.prune_skipped
            .as_deref()
            .is_some_and(|r| r.contains("linked worktree")),
        "{done:?}"
    );
    assert_eq!(done.unreachable_dropped, 0);
    assert!(present(dir.path(), garbage[0]));
}
