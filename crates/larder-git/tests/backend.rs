//! The backend's contracts: compare-and-swap outcomes, name validation,
//! ancestry, and verified object copies — against real repositories.

use larder_git::{EntryKind, Expected, GitError, GitRepo, TreeEntry};

fn commit(repo: &GitRepo, parents: &[larder_git::ObjectId], text: &str) -> larder_git::ObjectId {
    let blob = repo.write_blob(text.as_bytes()).unwrap();
    let tree = repo
        .write_tree(&[TreeEntry {
            name: "f".into(),
            kind: EntryKind::Blob,
            id: blob,
        }])
        .unwrap();
    repo.write_commit(tree, parents, text, None, 0).unwrap()
}

#[test]
fn compare_and_swap_reports_the_winner() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init_bare(dir.path()).unwrap();
    let a = commit(&repo, &[], "a");
    let b = commit(&repo, &[a], "b");
    let c = commit(&repo, &[a], "c");
    repo.update_ref("refs/t/x", Expected::MustNotExist, a, "t")
        .unwrap();
    match repo.update_ref("refs/t/x", Expected::MustNotExist, b, "t") {
        Err(GitError::RefConflict { actual, .. }) => assert_eq!(actual, Some(a)),
        other => panic!("expected RefConflict, got {other:?}"),
    }
    repo.update_ref("refs/t/x", Expected::MustBe(a), b, "t")
        .unwrap();
    match repo.update_ref("refs/t/x", Expected::MustBe(a), c, "t") {
        Err(e @ GitError::RefConflict { .. }) => {
            assert!(e.is_conflict());
            assert!(matches!(e, GitError::RefConflict { actual: Some(x), .. } if x == b));
        }
        other => panic!("expected RefConflict, got {other:?}"),
    }
    assert!(matches!(
        repo.update_ref("refs/t/none", Expected::MustBe(a), c, "t"),
        Err(GitError::RefConflict { actual: None, .. })
    ));
    assert!(matches!(
        repo.delete_ref("refs/t/x", a),
        Err(GitError::RefConflict { .. })
    ));
    repo.delete_ref("refs/t/x", b).unwrap();
    assert_eq!(repo.ref_target("refs/t/x").unwrap(), None);
    for bad in ["HEAD", "refs/t/a..b", "refs/t/x.lock", "refs/t/sp ace"] {
        assert!(
            matches!(
                repo.update_ref(bad, Expected::MustNotExist, a, "t"),
                Err(GitError::InvalidRefName { .. })
            ),
            "{bad}"
        );
    }
}

#[test]
fn ancestry_and_walks() {
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init(dir.path()).unwrap();
    let a = commit(&repo, &[], "a");
    let b = commit(&repo, &[a], "b");
    let c = commit(&repo, &[a], "c");
    let m = commit(&repo, &[b, c], "m");
    assert!(repo.is_ancestor(a, m).unwrap());
    assert!(repo.is_ancestor(m, m).unwrap());
    assert!(!repo.is_ancestor(b, c).unwrap());
    let walked: Vec<_> = repo
        .walk(&[m], &[b])
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(walked.len(), 2);
    assert!(walked.contains(&m) && walked.contains(&c));
}

#[test]
fn copies_are_complete_and_hash_verified() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let src = GitRepo::init_bare(d1.path()).unwrap();
    let dst = GitRepo::init_bare(d2.path()).unwrap();
    let mut head = commit(&src, &[], "0");
    for i in 1..40 {
        head = commit(&src, &[head], &i.to_string());
    }
    // 40 commits x 3 objects: above the pack threshold.
    let copied = dst.copy_reachable_from(&src, &[head]).unwrap();
    assert_eq!(copied, 120);
    assert_eq!(
        dst.copy_reachable_from(&src, &[head]).unwrap(),
        0,
        "nothing missing any more"
    );
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(d2.path())
        .args(["fsck", "--full", "--strict"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A source object whose bytes do not match its id is refused.
    let bad = commit(&src, &[head], "bad");
    let hex = bad.to_string();
    let path = d1.path().join("objects").join(&hex[..2]).join(&hex[2..]);
    let other = src.write_blob(b"something else").unwrap().to_string();
    std::fs::copy(
        d1.path()
            .join("objects")
            .join(&other[..2])
            .join(&other[2..]),
        &path,
    )
    .unwrap();
    let fresh = GitRepo::open(d1.path()).unwrap();
    assert!(matches!(
        dst.copy_reachable_from(&fresh, &[bad]),
        Err(GitError::CorruptObject { .. })
    ));
}

#[test]
fn an_unconfigured_machine_can_commit_and_log_refs() {
    // Non-bare repositories keep reflogs for refs/remotes/*; they need a
    // committer even when no user.name is configured.
    let dir = tempfile::tempdir().unwrap();
    let repo = GitRepo::init(dir.path()).unwrap();
    let a = commit(&repo, &[], "a");
    repo.update_ref("refs/remotes/origin/x", Expected::MustNotExist, a, "t")
        .unwrap();
    let info = repo.read_commit(a).unwrap();
    assert_eq!(info.message, "a");
    assert_eq!(
        repo.list_refs("refs/remotes/").unwrap(),
        vec![("refs/remotes/origin/x".to_string(), a)]
    );
}

#[test]
fn push_porcelain_output_becomes_typed_outcomes() {
    use larder_git::{PushOutcome, parse_push};
    let r = "refs/larder/kv/heads/a";
    let ok = format!("To /remote\n \t0123:{r}\t[new branch]\nDone\n");
    assert_eq!(parse_push("u", r, &ok, "").unwrap(), PushOutcome::Updated);
    let same = format!("To /remote\n=\t0123:{r}\t[up to date]\nDone\n");
    assert_eq!(
        parse_push("u", r, &same, "").unwrap(),
        PushOutcome::UpToDate
    );
    for reason in [
        "[rejected] (fetch first)",
        "[rejected] (stale info)",
        "[rejected] (non-fast-forward)",
        "[remote rejected] (failed to update ref)",
    ] {
        let out = format!("To /remote\n!\t0123:{r}\t{reason}\nDone\n");
        assert!(
            matches!(parse_push("u", r, &out, "").unwrap(), PushOutcome::Lost(s) if s == reason)
        );
    }
    let hook =
        format!("To /remote\n!\t0123:{r}\t[remote rejected] (pre-receive hook declined)\nDone\n");
    assert!(
        matches!(parse_push("u", r, &hook, ""), Err(GitError::Remote { reason, .. }) if reason.contains("hook declined"))
    );
    let auth = parse_push("u", r, "", "fatal: Authentication failed for 'https://x'\n");
    assert!(
        matches!(auth, Err(GitError::Remote { reason, .. }) if reason.starts_with("authentication failed"))
    );
    let other = parse_push("u", r, "", "fatal: could not read from remote repository\n");
    assert!(
        matches!(other, Err(GitError::Remote { reason, .. }) if reason.starts_with("remote failed"))
    );
}

#[test]
fn a_commit_and_its_tree_copy_onto_a_repository_holding_its_parent() {
    let src_dir = tempfile::tempdir().unwrap();
    let dst_dir = tempfile::tempdir().unwrap();
    let src = GitRepo::init_bare(src_dir.path()).unwrap();
    let dst = GitRepo::init_bare(dst_dir.path()).unwrap();
    let first = commit(&src, &[], "one");
    dst.copy_reachable_from(&src, &[first]).unwrap();
    let second = commit(&src, &[first], "two");
    // Only the commit and its own tree travel; the parent is not asked for.
    let copied = dst.copy_commit_from(&src, second, false).unwrap();
    assert!(copied >= 2, "{copied}");
    dst.update_ref("refs/heads/main", Expected::MustNotExist, second, "t")
        .unwrap();
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(dst_dir.path())
        .args(["fsck", "--full", "--strict"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A tree is not a commit: a typed error, nothing written.
    let tree = src.read_commit(second).unwrap().tree;
    assert!(matches!(
        dst.copy_commit_from(&src, tree, false),
        Err(GitError::WrongObjectKind { .. })
    ));
}
