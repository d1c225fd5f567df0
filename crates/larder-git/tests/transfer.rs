//! Copies between repositories decide once per transfer what the receiver
//! holds (`Haves`): they send exactly what it lacks when it holds part of
//! the history (written by git or by larder, in one pack or 200), never
//! skip an object it lacks — in seeded random histories with merges, moved
//! and reverted files, nor when the source's copy of a tree the receiver
//! holds is corrupt — and bring tags with what they name. `git` is the
//! oracle.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use larder_git::{EntryKind, Expected, GitError, GitRepo, ObjectId, TreeEntry};
use larder_testkit::fixtures::count_objects;
use larder_testkit::git;
use larder_testkit::{Rng, run_seeds};

/// Writes `files` (path → content, `/` between directories) as a tree.
fn write_files(repo: &GitRepo, files: &BTreeMap<String, Vec<u8>>) -> ObjectId {
    let mut entries = Vec::new();
    let mut dirs: BTreeMap<String, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
    for (path, data) in files {
        match path.split_once('/') {
            Some((dir, rest)) => {
                dirs.entry(dir.to_owned())
                    .or_default()
                    .insert(rest.to_owned(), data.clone());
            }
            None => entries.push(TreeEntry {
                name: path.clone(),
                kind: EntryKind::Blob,
                id: repo.write_blob(data).unwrap(),
            }),
        }
    }
    for (name, sub) in dirs {
        entries.push(TreeEntry {
            name,
            kind: EntryKind::Tree,
            id: write_files(repo, &sub),
        });
    }
    repo.write_tree(&entries).unwrap()
}

/// The ids `git rev-list --objects` lists for `tips` in `dir`.
fn objects_of(dir: &Path, tips: &[ObjectId]) -> BTreeSet<String> {
    if tips.is_empty() {
        return BTreeSet::new();
    }
    let mut args = vec!["rev-list".to_owned(), "--objects".to_owned()];
    args.extend(tips.iter().map(|t| t.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    git(dir, &args)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// Points `refs/heads/t<i>` at each tip, then `git fsck --strict` must pass:
/// every object the tips reach is present and intact.
fn assert_complete(dir: &Path, tips: &[ObjectId]) {
    let repo = GitRepo::open(dir).unwrap();
    for (i, tip) in tips.iter().enumerate() {
        let name = format!("refs/heads/t{i}");
        let expected = repo
            .ref_target(&name)
            .unwrap()
            .map_or(Expected::MustNotExist, Expected::MustBe);
        repo.update_ref(&name, expected, *tip, "test").unwrap();
    }
    git(dir, &["fsck", "--full", "--strict", "--no-dangling"]);
}

/// Writes `path` in the work tree at `dir`.
fn put(dir: &Path, path: &str, text: &str) {
    let file = dir.join(path);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(file, text).unwrap();
}

/// Commits everything in the work tree at `dir` and returns the commit.
fn git_commit(dir: &Path, message: &str) -> ObjectId {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "--quiet", "-m", message]);
    git(dir, &["rev-parse", "HEAD"]).parse().unwrap()
}

#[test]
fn a_receiver_holding_part_of_a_git_history_gets_exactly_the_rest() {
    let src = larder_testkit::fixtures::work_repo();
    let s = src.path();
    put(s, "a/x", "x1");
    put(s, "a/y", "y1");
    put(s, "b/z", "z1");
    put(s, "top", "t1");
    git_commit(s, "one");
    put(s, "a/x", "x2");
    let old = git_commit(s, "two");
    git(s, &["branch", "old"]);
    git(s, &["checkout", "--quiet", "-b", "side"]);
    put(s, "b/z", "z2");
    put(s, "c/new", "n1");
    git_commit(s, "side");
    git(s, &["checkout", "--quiet", "-"]);
    put(s, "top", "t2");
    put(s, "a/sub/deep", "d1");
    git_commit(s, "three");
    git(s, &["merge", "--quiet", "--no-edit", "side"]);
    put(s, "a/sub/deep", "d2");
    let new = git_commit(s, "four");

    // The receiver got `old` from git itself: a pack and a ref of git's.
    let dst = larder_testkit::fixtures::bare_repo();
    let d = dst.path();
    git(
        d,
        &[
            "fetch",
            "--quiet",
            &s.display().to_string(),
            "refs/heads/old:refs/heads/old",
        ],
    );
    let receiver = GitRepo::open(d).unwrap();
    let source = GitRepo::open(s).unwrap();
    let missing: BTreeSet<String> = objects_of(s, &[new])
        .difference(&objects_of(s, &[old]))
        .cloned()
        .collect();
    let copied = receiver.copy_reachable_from(&source, &[new]).unwrap();
    assert_eq!(copied, missing.len(), "exactly the objects it lacked");
    assert_complete(d, &[new]);
    assert_eq!(receiver.copy_reachable_from(&source, &[new]).unwrap(), 0);
}

/// One commit on `parent` whose tree holds one file `e` with content `n`.
/// Two empty bare repositories made by larder: a source and a receiver.
fn source_and_receiver() -> (tempfile::TempDir, GitRepo, tempfile::TempDir, GitRepo) {
    let (s, d) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let source = GitRepo::init_bare(s.path()).unwrap();
    let receiver = GitRepo::init_bare(d.path()).unwrap();
    (s, source, d, receiver)
}

fn small_commit(repo: &GitRepo, parent: Option<ObjectId>, n: usize) -> ObjectId {
    let files = BTreeMap::from([("e".to_owned(), format!("event {n}\n").into_bytes())]);
    let tree = write_files(repo, &files);
    let parents: Vec<ObjectId> = parent.into_iter().collect();
    repo.write_commit(tree, &parents, &format!("c{n}\n"), None, n as i64)
        .unwrap()
}

#[test]
fn a_receiver_with_200_packs_gets_exactly_the_missing_objects() {
    let (s, source, d, receiver) = source_and_receiver();
    let mut chain = Vec::new();
    for n in 0..250 {
        chain.push(small_commit(&source, chain.last().copied(), n));
    }
    // Each of the first 200 commits arrives on its own: 200 packs.
    for commit in &chain[..200] {
        assert_eq!(
            receiver.copy_reachable_from(&source, &[*commit]).unwrap(),
            3
        );
    }
    assert_eq!(count_objects(d.path()), (0, 200));
    // A handle opened now, and one opened before the packs piled up.
    for handle in [GitRepo::open(d.path()).unwrap(), receiver.clone()] {
        assert_eq!(
            handle.copy_reachable_from(&source, &[chain[199]]).unwrap(),
            0
        );
    }
    let copied = receiver
        .copy_reachable_from(&source, &[chain[249]])
        .unwrap();
    assert_eq!(copied, 50 * 3);
    assert_eq!(count_objects(d.path()), (0, 201));
    assert_complete(d.path(), &[chain[249]]);
    assert_eq!(
        objects_of(d.path(), &[chain[249]]),
        objects_of(s.path(), &[chain[249]])
    );
}

/// A random history: commits over a small set of paths and contents, so
/// blobs and whole subtrees recur — under other names, in reverted files,
/// across branches — with merges and a second root now and then.
fn random_history(repo: &GitRepo, rng: &mut Rng, len: usize) -> Vec<ObjectId> {
    // No path is both a file and a directory.
    let paths: Vec<String> = (0..3)
        .flat_map(|d| (0..3).map(move |f| format!("d{d}/s{}/f{f}", f % 2)))
        .chain((0..3).map(|f| format!("f{f}")))
        .chain((0..2).map(|f| format!("d{f}/g")))
        .collect();
    let mut commits: Vec<(ObjectId, BTreeMap<String, Vec<u8>>)> = Vec::new();
    for n in 0..len {
        let (parents, mut files) = if commits.is_empty() || rng.percent(5) {
            (Vec::new(), BTreeMap::new())
        } else if commits.len() > 1 && rng.percent(25) {
            let a = rng.below(commits.len() as u64) as usize;
            let b = rng.below(commits.len() as u64) as usize;
            let mut files = commits[a].1.clone();
            files.extend(commits[b].1.clone());
            let mut parents = vec![commits[a].0];
            if b != a {
                parents.push(commits[b].0);
            }
            (parents, files)
        } else {
            // Mostly on one of the newest commits, sometimes far back.
            let back = if rng.percent(80) {
                rng.below(3.min(commits.len() as u64)) as usize
            } else {
                rng.below(commits.len() as u64) as usize
            };
            let (id, files) = &commits[commits.len() - 1 - back];
            (vec![*id], files.clone())
        };
        for _ in 0..=rng.below(3) {
            let path = &paths[rng.below(paths.len() as u64) as usize];
            match rng.below(10) {
                0 => {
                    files.remove(path);
                }
                1 if !commits.is_empty() => {
                    // A revert: the content an old commit had there.
                    let old = &commits[rng.below(commits.len() as u64) as usize].1;
                    match old.get(path) {
                        Some(data) => files.insert(path.clone(), data.clone()),
                        None => files.remove(path),
                    };
                }
                _ => {
                    let content = format!("content {}\n", rng.below(12)).into_bytes();
                    files.insert(path.clone(), content);
                }
            }
        }
        let tree = write_files(repo, &files);
        let commit = repo
            .write_commit(tree, &parents, &format!("c{n}"), None, n as i64)
            .unwrap();
        commits.push((commit, files));
    }
    commits.into_iter().map(|(id, _)| id).collect()
}

#[test]
fn random_histories_arrive_complete_whatever_the_receiver_holds() {
    run_seeds("LARDER_TRANSFER_SEED", 0..24, |seed| {
        let mut rng = Rng::new(seed);
        let (s, d) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let source = GitRepo::init_bare(s.path()).unwrap();
        let receiver = GitRepo::init_bare(d.path()).unwrap();
        let commits = random_history(&source, &mut rng, 40);
        // The receiver first gets a few commits of the first half, by git
        // (its own pack and refs) or by larder.
        let mut held = Vec::new();
        for i in 0..rng.below(4) {
            let pick = commits[rng.below(commits.len() as u64 / 2) as usize];
            if seed % 2 == 0 {
                let name = format!("refs/heads/p{i}");
                source
                    .update_ref(&name, Expected::MustNotExist, pick, "test")
                    .unwrap();
                let spec = format!("{name}:{name}");
                let url = s.path().display().to_string();
                git(d.path(), &["fetch", "--quiet", &url, &spec]);
            } else {
                receiver.copy_reachable_from(&source, &[pick]).unwrap();
            }
            held.push(pick);
        }
        // Then everything, in several copies through one `Haves`.
        let tips: Vec<ObjectId> = (0..1 + rng.below(3))
            .map(|_| commits[commits.len() / 2 + rng.below(commits.len() as u64 / 2) as usize])
            .chain([commits[commits.len() - 1]])
            .collect();
        let mut haves = GitRepo::open(d.path()).unwrap().haves();
        let mut copied = 0;
        for tip in &tips {
            copied += haves.copy_from(&source, &[*tip]).unwrap();
        }
        let wanted = objects_of(s.path(), &tips);
        let missing = wanted.difference(&objects_of(s.path(), &held)).count();
        assert!(copied >= missing, "seed {seed}: {copied} < {missing}");
        assert!(
            copied <= wanted.len(),
            "seed {seed}: {copied} > {}",
            wanted.len()
        );
        assert_complete(d.path(), &tips);
        assert_eq!(haves.copy_from(&source, &tips).unwrap(), 0);
    });
}

/// Overwrites the loose object `id` in the bare repository at `dir` with
/// the loose object `with`: `id` then reads as `with`'s bytes.
fn corrupt_loose(dir: &Path, id: ObjectId, with: ObjectId) {
    let path = |id: ObjectId| {
        let hex = id.to_string();
        dir.join("objects").join(&hex[..2]).join(&hex[2..])
    };
    let target = path(id);
    // Loose objects are read-only: replace the file, do not write into it.
    std::fs::remove_file(&target).unwrap();
    std::fs::copy(path(with), &target).unwrap();
}

#[test]
fn a_corrupt_source_copy_of_a_tree_the_receiver_holds_hides_nothing() {
    let (s, source, d, receiver) = source_and_receiver();
    let a = BTreeMap::from([("a".to_owned(), b"a".to_vec())]);
    let old_tree = write_files(&source, &a);
    let parent = source
        .write_commit(old_tree, &[], "parent", None, 0)
        .unwrap();
    receiver.copy_reachable_from(&source, &[parent]).unwrap();

    // The child adds `x`; the source's copy of the parent's tree is made to
    // read as the child's tree, so it too seems to name `x`.
    let mut ax = a.clone();
    ax.insert("x".to_owned(), b"x".to_vec());
    let new_tree = write_files(&source, &ax);
    let child = source
        .write_commit(new_tree, &[parent], "child", None, 1)
        .unwrap();
    corrupt_loose(s.path(), old_tree, new_tree);
    let source = GitRepo::open(s.path()).unwrap();

    // The parent's tree is compared as the receiver holds it, so `x` is
    // sent: the child's tree, `x` and the commit.
    assert_eq!(receiver.copy_reachable_from(&source, &[child]).unwrap(), 3);
    assert_complete(d.path(), &[child]);
}

#[test]
fn one_haves_serves_many_copies_and_survives_a_bad_one() {
    let (s, source, d, receiver) = source_and_receiver();
    let base = small_commit(&source, None, 0);
    receiver.copy_reachable_from(&source, &[base]).unwrap();
    let a1 = small_commit(&source, Some(base), 1);
    let a2 = small_commit(&source, Some(a1), 2);
    let b1 = small_commit(&source, Some(a2), 3);
    let bad = small_commit(&source, Some(b1), 4);
    // The same tree as the bad commit's: what the failed copy planned must
    // not count as written.
    let tree = source.read_commit(bad).unwrap().tree;
    let good = source.write_commit(tree, &[b1], "good", None, 5).unwrap();

    let mut haves = receiver.haves();
    assert_eq!(haves.copy_from(&source, &[a2]).unwrap(), 6);
    // What the first copy wrote is not sent again (the snapshot predates it).
    assert_eq!(haves.copy_from(&source, &[b1]).unwrap(), 3);

    // The bad commit's blob reads as another blob's bytes.
    let blob = source.read_tree(tree).unwrap()[0].id;
    let hex = blob.to_string();
    let blob_file = s.path().join("objects").join(&hex[..2]).join(&hex[2..]);
    let intact = std::fs::read(&blob_file).unwrap();
    let other = source.write_blob(b"another blob").unwrap();
    corrupt_loose(s.path(), blob, other);
    let corrupt_source = GitRepo::open(s.path()).unwrap();
    let packs = count_objects(d.path());
    assert!(matches!(
        haves.copy_from(&corrupt_source, &[bad]),
        Err(GitError::CorruptObject { id, .. }) if id == blob
    ));
    assert_eq!(count_objects(d.path()), packs, "nothing written");

    // Repaired, the good head sharing that tree brings all of it.
    std::fs::remove_file(&blob_file).unwrap();
    std::fs::write(&blob_file, intact).unwrap();
    let source = GitRepo::open(s.path()).unwrap();
    assert_eq!(haves.copy_from(&source, &[good]).unwrap(), 3);
    assert_complete(d.path(), &[good]);
}

#[test]
fn a_tag_arrives_with_what_it_names() {
    let src = larder_testkit::fixtures::work_repo();
    let s = src.path();
    put(s, "f", "one");
    git_commit(s, "one");
    put(s, "f", "two");
    let commit = git_commit(s, "two");
    git(s, &["tag", "-a", "-m", "release", "v1"]);
    let tag: ObjectId = git(s, &["rev-parse", "v1"]).parse().unwrap();
    let tree: ObjectId = git(s, &["rev-parse", "HEAD^{tree}"]).parse().unwrap();
    let dst = larder_testkit::fixtures::bare_repo();
    let receiver = GitRepo::open(dst.path()).unwrap();
    let source = GitRepo::open(s).unwrap();
    // 1 tag + 2 commits × (commit, tree, blob).
    assert_eq!(receiver.copy_reachable_from(&source, &[tag]).unwrap(), 7);
    receiver
        .update_ref("refs/tags/v1", Expected::MustNotExist, tag, "test")
        .unwrap();
    git(dst.path(), &["fsck", "--full", "--strict", "--no-dangling"]);
    assert_eq!(
        git(dst.path(), &["rev-parse", "v1^{commit}"]),
        commit.to_string()
    );
    // A tree given as a tip: it is held now, nothing to send.
    assert_eq!(receiver.copy_reachable_from(&source, &[tree]).unwrap(), 0);
}

#[test]
fn a_long_lived_handle_sees_what_others_wrote_since_it_last_looked() {
    let (_s, source, d, receiver) = source_and_receiver();
    let first = small_commit(&source, None, 0);
    let second = small_commit(&source, Some(first), 1);
    let third = small_commit(&source, Some(second), 2);
    let fourth = small_commit(&source, Some(third), 3);
    receiver.copy_reachable_from(&source, &[first]).unwrap();
    // The handle's store learns of that pack (a read that misses rescans).
    receiver.read_commit(first).unwrap();
    let mut haves = receiver.haves();
    // Asked only about a commit it holds: nothing sent, nothing listed.
    assert_eq!(haves.copy_from(&source, &[first]).unwrap(), 0);

    // Another handle (another process, say) brings `second`.
    let other = GitRepo::open(d.path()).unwrap();
    assert_eq!(other.copy_reachable_from(&source, &[second]).unwrap(), 3);
    // The long-lived handle's store has not seen that pack: a transfer's
    // first miss brings it up to date, so only `third` travels.
    assert_eq!(receiver.copy_reachable_from(&source, &[third]).unwrap(), 3);
    // So does the older `Haves`, at its own first miss: it sees the pack
    // of `third`, which its store did not know either.
    assert_eq!(haves.copy_from(&source, &[fourth]).unwrap(), 3);
    assert_complete(d.path(), &[fourth]);
}

/// A tree built by git from `ls-tree`-style lines (`git mktree`), in the
/// bare repository at `dir`.
fn mktree(dir: &Path, lines: &str) -> ObjectId {
    larder_testkit::git_with_stdin(dir, &["mktree", "--missing"], Some(lines.as_bytes()))
        .parse()
        .unwrap()
}

/// A parent's tree naming an id as a submodule commit does not make the
/// receiver hold a blob of that id: a child using the id as a file gets
/// the blob sent.
#[test]
fn a_blob_whose_id_a_parent_names_as_a_submodule_is_sent() {
    let (s, source, d, receiver) = source_and_receiver();
    let contents = b"contents that also name a submodule";
    // The trees first (git refuses a submodule link to a blob it has).
    let x: ObjectId =
        larder_testkit::git_with_stdin(s.path(), &["hash-object", "--stdin"], Some(contents))
            .parse()
            .unwrap();
    let parent_tree = mktree(s.path(), &format!("160000 commit {x}\tsub\n"));
    let child_tree = mktree(
        s.path(),
        &format!("100644 blob {x}\tf\n160000 commit {x}\tsub\n"),
    );
    assert_eq!(source.write_blob(contents).unwrap(), x);
    let parent = source
        .write_commit(parent_tree, &[], "parent\n", None, 1_700_000_000)
        .unwrap();
    // Submodule links are not followed: the receiver holds no `x`.
    receiver.copy_reachable_from(&source, &[parent]).unwrap();
    assert!(!GitRepo::open(d.path()).unwrap().has_object(x));
    let child = source
        .write_commit(child_tree, &[parent], "child\n", None, 1_700_000_001)
        .unwrap();
    receiver.copy_reachable_from(&source, &[child]).unwrap();
    assert!(GitRepo::open(d.path()).unwrap().has_object(x));
    assert_complete(d.path(), &[child]);
}

/// A receiver whose commits name git's empty tree without a stored copy
/// (what transfers before larder sent it left behind) gets the copy with
/// the next commit on the empty tree, although the parent "has" it.
#[test]
fn the_empty_tree_is_sent_even_where_a_parent_names_it() {
    let (_s, source, d, receiver) = source_and_receiver();
    let empty = source.write_tree(&[]).unwrap();
    assert!(empty.is_empty_tree());
    let parent = source
        .write_commit(empty, &[], "parent\n", None, 1_700_000_000)
        .unwrap();
    // The receiver holds the parent commit alone, as an old transfer left it.
    let bytes = larder_testkit::git(_s.path(), &["cat-file", "commit", &parent.to_string()]);
    let stored = larder_testkit::git_with_stdin(
        d.path(),
        &["hash-object", "-t", "commit", "-w", "--stdin"],
        Some(format!("{bytes}\n").as_bytes()),
    );
    assert_eq!(stored, parent.to_string());
    let loose_empty_tree = d
        .path()
        .join("objects")
        .join(&empty.to_string()[..2])
        .join(&empty.to_string()[2..]);
    assert!(!loose_empty_tree.exists());
    let child = source
        .write_commit(empty, &[parent], "child\n", None, 1_700_000_001)
        .unwrap();
    receiver.copy_reachable_from(&source, &[child]).unwrap();
    assert_complete(d.path(), &[child]);
}

/// A commit whose parent is not a commit is refused, naming the object.
#[test]
fn a_parent_that_is_not_a_commit_is_refused() {
    let (_s, source, _d, receiver) = source_and_receiver();
    let tree = source.write_tree(&[]).unwrap();
    let blob = source.write_blob(b"not a commit").unwrap();
    let forged = source
        .write_commit(tree, &[blob], "forged\n", None, 1_700_000_000)
        .unwrap();
    match receiver.copy_reachable_from(&source, &[forged]) {
        Err(GitError::WrongObjectKind { id, .. }) => assert_eq!(id, blob),
        other => panic!("{other:?}"),
    }
}
