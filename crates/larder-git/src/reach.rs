//! Reachability for compaction: which objects some root reaches, and
//! whether larder can know every root of a repository at all.
//!
//! Compaction may drop an object only if nothing can name it. git's own
//! roots are the refs (loose and packed), `HEAD` and the other `*_HEAD`
//! files, every reflog entry, the index (and its cache tree), and the
//! `HEAD`s, indexes and reflogs of linked worktrees. larder walks the
//! first three. It does not read indexes, so in a repository with an index
//! or linked worktrees — a work tree someone uses with git — it keeps every
//! unreachable object and leaves pruning to `git gc`, which reads them.
//! Shallow and partial (promisor) clones lack objects by design, so a walk
//! there cannot tell "unreachable" from "beyond the boundary": kept too.

use std::collections::HashSet;
use std::path::Path;

use gix::ObjectId;

use crate::{GitError, GitRepo};

/// The roots of a repository's reachability (see [`GitRepo::roots`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Roots {
    /// Targets of refs: each must exist.
    pub(crate) refs: Vec<ObjectId>,
    /// Ids from reflogs and `*_HEAD` files: kept if they exist.
    pub(crate) other: Vec<ObjectId>,
}

impl GitRepo {
    /// Why this repository's unreachable objects must all be kept, if they
    /// must: it has roots larder does not read (an index, linked
    /// worktrees) or lacks objects by design (shallow, promisor packs).
    pub(crate) fn prune_blocker(&self) -> Option<String> {
        let git_dir = self.git_dir();
        // A linked worktree's own git dir holds its HEAD, index and reflogs;
        // the repository's (and the other worktrees') are elsewhere.
        if git_dir != self.repo.common_dir() {
            return Some(
                "it was opened through a linked worktree, whose git dir holds only that worktree's roots; compact the main repository"
                    .into(),
            );
        }
        if git_dir.join("index").exists() {
            return Some(
                "it has an index (a work tree used with git): larder does not read the objects an index names; `git gc` does"
                    .into(),
            );
        }
        if std::fs::read_dir(git_dir.join("worktrees")).is_ok_and(|mut d| d.next().is_some()) {
            return Some(
                "it has linked worktrees, whose HEADs and indexes larder does not read; `git gc` does"
                    .into(),
            );
        }
        if git_dir.join("shallow").exists() {
            return Some("it is a shallow clone".into());
        }
        let promisor = std::fs::read_dir(self.objects_dir().join("pack")).is_ok_and(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().ends_with(".promisor"))
        });
        if promisor {
            return Some("it is a partial clone (promisor packs)".into());
        }
        None
    }

    /// Every root: the target of every ref (loose or packed; symbolic refs
    /// through the ref they name) — `Roots::refs` — and, in
    /// `Roots::other`, every object id in `HEAD`, `FETCH_HEAD`, `ORIG_HEAD`
    /// and the other `*_HEAD` / `AUTO_MERGE` files of the git dir and both
    /// ids of every reflog entry (more than git's gc keeps: it ignores the
    /// `*_HEAD` files). `Err` names what could not be read: a root set with
    /// a gap must not decide what is garbage.
    pub(crate) fn roots(&self) -> std::result::Result<Roots, String> {
        let mut roots = Vec::new();
        let platform = self
            .repo
            .references()
            .map_err(|e| format!("listing references: {e}"))?;
        for r in platform
            .all()
            .map_err(|e| format!("listing references: {e}"))?
        {
            let r = r.map_err(|e| format!("reading a reference: {e}"))?;
            if let Some(id) = r.target().try_id() {
                roots.push(id.to_owned());
            }
        }
        let mut other = Vec::new();
        let git_dir = self.git_dir();
        let entries = std::fs::read_dir(git_dir)
            .map_err(|e| format!("listing {}: {e}", git_dir.display()))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pseudo = name == "AUTO_MERGE"
                || (name.ends_with("HEAD")
                    && name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
            if pseudo && entry.path().is_file() {
                let text = std::fs::read(entry.path())
                    .map_err(|e| format!("reading {}: {e}", entry.path().display()))?;
                other.extend(hex_ids(&text));
            }
        }
        collect_reflogs(&git_dir.join("logs"), &mut other)?;
        Ok(Roots { refs: roots, other })
    }

    /// Every object reachable from `roots`: commits (tree and parents),
    /// trees (entries; submodule links are another repository's), tags
    /// (their target), blobs. Blobs are recorded without being read. `Err`
    /// names a commit, tree or tag that cannot be read — what lies below it
    /// is unknown, so nothing may be called unreachable. A reflog entry or
    /// `*_HEAD` file naming an object that is gone altogether (git expires
    /// reflogs and prunes on its own) is skipped; a ref naming one is not.
    ///
    /// `local(id, buf)` may answer from objects the caller holds already
    /// (compaction has every entry of the packs it rewrites in memory): it
    /// fills `buf` with the object's bytes and returns its kind, or `None`
    /// to have the object read through the object store.
    pub(crate) fn reachable(
        &self,
        roots: &Roots,
        local: &mut dyn FnMut(ObjectId, &mut Vec<u8>) -> Option<gix::objs::Kind>,
    ) -> std::result::Result<HashSet<ObjectId>, String> {
        let mut seen: HashSet<ObjectId> = HashSet::new();
        let mut stack: Vec<ObjectId> = Vec::new();
        for root in &roots.refs {
            if seen.insert(*root) {
                stack.push(*root);
            }
        }
        let unreadable = |id: ObjectId, e: &dyn std::fmt::Display| {
            format!("object {id}, reachable from a ref or reflog, cannot be read: {e}")
        };
        for root in &roots.other {
            if seen.contains(root) {
                continue;
            }
            match self.find_any(*root) {
                Ok(_) => {
                    seen.insert(*root);
                    stack.push(*root);
                }
                Err(GitError::ObjectMissing { .. }) => {}
                Err(e) => return Err(unreadable(*root, &e)),
            }
        }
        let mut buf = Vec::new();
        while let Some(id) = stack.pop() {
            let kind = match local(id, &mut buf) {
                Some(kind) => kind,
                None => {
                    let object = self.find_any(id).map_err(|e| unreadable(id, &e))?;
                    buf = object.data;
                    object.kind
                }
            };
            let object = gix::objs::ObjectRef::from_bytes(&buf, kind, gix::hash::Kind::Sha1)
                .map_err(|e| unreadable(id, &e))?;
            let mut push = |child: ObjectId, seen: &mut HashSet<ObjectId>| {
                if seen.insert(child) {
                    stack.push(child);
                }
            };
            match object {
                gix::objs::ObjectRef::Commit(c) => {
                    push(c.tree(), &mut seen);
                    for parent in c.parents() {
                        push(parent, &mut seen);
                    }
                }
                gix::objs::ObjectRef::Tree(t) => {
                    for entry in &t.entries {
                        if entry.mode.is_commit() {
                            continue;
                        }
                        let child = entry.oid.to_owned();
                        if entry.mode.is_tree() {
                            push(child, &mut seen);
                        } else {
                            // A blob: recorded, never read.
                            seen.insert(child);
                        }
                    }
                }
                gix::objs::ObjectRef::Tag(t) => push(t.target(), &mut seen),
                gix::objs::ObjectRef::Blob(_) => {}
            }
        }
        Ok(seen)
    }
}

/// Both ids of every line of every reflog under `dir` (`<old> <new> …`;
/// the all-zero id of a ref's creation is skipped).
fn collect_reflogs(dir: &Path, roots: &mut Vec<ObjectId>) -> std::result::Result<(), String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("listing {}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("listing {}: {e}", dir.display()))?;
        let path = entry.path();
        // The entry itself, not what a link names: a link to a directory
        // above would walk in circles.
        let kind = entry
            .file_type()
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        if kind.is_dir() {
            collect_reflogs(&path, roots)?;
            continue;
        }
        // A link is read if it names a file (never followed into a
        // directory).
        if kind.is_symlink() && !path.is_file() {
            continue;
        }
        let text = std::fs::read(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
        for line in text.split(|b| *b == b'\n') {
            roots.extend(hex_ids(line.get(..81).unwrap_or(line)));
        }
    }
    Ok(())
}

/// Every 40-hex-digit word in `text` that is an object id other than the
/// null id.
fn hex_ids(text: &[u8]) -> Vec<ObjectId> {
    text.split(|b| !b.is_ascii_hexdigit())
        .filter(|word| word.len() == 40)
        .filter_map(|word| ObjectId::from_hex(word).ok())
        .filter(|id| !id.is_null())
        .collect()
}

impl GitRepo {
    /// After compaction wrote its new packs, before it deletes the old
    /// ones: whether every object it is about to drop is still
    /// unreachable. A ref moved meanwhile (a writer reusing an object it
    /// found stored — gix writes nothing for an object it has — or a
    /// transfer that found it held) may name one now: the roots are read
    /// again and, if they changed since `before`, walked again. `Err` says
    /// why nothing may be dropped.
    pub(crate) fn confirm_unreachable(
        &self,
        before: &Roots,
        dropped: &HashSet<ObjectId>,
    ) -> std::result::Result<(), String> {
        let now = self.roots()?;
        if now == *before {
            return Ok(());
        }
        let reachable = self.reachable(&now, &mut |_, _| None)?;
        match dropped.iter().find(|id| reachable.contains(*id)) {
            Some(id) => Err(format!(
                "object {id} became reachable while compacting (a ref moved to it)"
            )),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::hex_ids;

    #[test]
    fn hex_ids_finds_ids_in_reflog_lines_and_head_files() {
        let a = "1111111111111111111111111111111111111111";
        let b = "2222222222222222222222222222222222222222";
        let zero = "0000000000000000000000000000000000000000";
        let line = format!("{zero} {a} larder <l@x> 1700000000 +0000\tcreate");
        assert_eq!(hex_ids(line.as_bytes()).len(), 1);
        let fetch_head = format!("{a}\t\tbranch 'main' of /srv/r\n{b}\tnot-for-merge\t…\n");
        assert_eq!(hex_ids(fetch_head.as_bytes()).len(), 2);
        assert!(hex_ids(b"ref: refs/heads/main\n").is_empty());
        // 41 hex digits are not an id.
        assert!(hex_ids(format!("{a}1").as_bytes()).is_empty());
    }
}
