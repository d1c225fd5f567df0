//! Copying objects between repositories on the same file system: the
//! transport for file-system remotes (gix cannot push). What the receiver
//! lacks is decided in `haves.rs`.

use std::collections::HashSet;

use gix::ObjectId;

use crate::{GitError, GitRepo, Result};

impl GitRepo {
    /// Copies into `self` every object reachable from `tips` in `source` that
    /// `self` lacks, and returns how many were copied.
    ///
    /// Objects are written as one pack, however few: two files appear at
    /// once (the index renamed last), never one loose file per object — a
    /// remote that many replicas push to would otherwise collect tens of
    /// thousands of loose files, and the pack is merged with its neighbours
    /// by [`GitRepo::consolidate_packs`]. So at every moment either all of
    /// a transfer's objects are present or none: a crash mid-copy leaves
    /// nothing dangling, and a commit already present means its whole
    /// history is. Every object is hashed as it is written; one whose bytes
    /// do not match its id is [`GitError::CorruptObject`](crate::GitError::CorruptObject)
    /// and nothing is written.
    ///
    /// What `self` lacks is decided once per call, not per object: see
    /// [`Haves`](crate::Haves) — one snapshot of the object store that
    /// never rescans, asked about commits (and objects at paths new to a
    /// commit); the walk stops at commits `self` holds, and the trees and
    /// blobs of new commits are compared with their parents' trees. For several copies into one repository (a pull of many
    /// heads), [`GitRepo::haves`] and [`Haves::copy_from`](crate::Haves::copy_from)
    /// open the snapshot once for all of them. An object `self` holds only
    /// in a cruft pack (unreachable, kept by compaction for its grace
    /// period, see [`GitRepo::compact_opts`]) counts as absent and is
    /// copied again: the ref the caller moves next must not depend on a
    /// copy that may be about to go.
    pub fn copy_reachable_from(&self, source: &GitRepo, tips: &[ObjectId]) -> Result<usize> {
        self.haves().copy_from(source, tips)
    }

    /// Copies commit `id` and every object under its tree from `source` as
    /// one pack, without asking this store which it has — for a commit
    /// whose parents this repository holds and whose tree is new, such as
    /// a WAL append (its tree holds only its own chunk). Asking costs a
    /// rescan of the pack directory per absent object on gix's store;
    /// writing an object this store already has is harmless (git reads
    /// either copy). The parents are not copied: if this repository lacks
    /// one, use [`GitRepo::copy_reachable_from`]. With `fsync` the pack,
    /// its index and the directory are on disk before this returns.
    /// Returns how many objects were written.
    pub fn copy_commit_from(&self, source: &GitRepo, id: ObjectId, fsync: bool) -> Result<usize> {
        let commit = source.find_any(id)?;
        if commit.kind != gix::objs::Kind::Commit {
            return Err(GitError::WrongObjectKind {
                id,
                expected: "commit",
                actual: commit.kind.to_string(),
            });
        }
        let tree = gix::objs::CommitRef::from_bytes(&commit.data, gix::hash::Kind::Sha1)
            .map_err(|e| GitError::CorruptObject {
                id,
                reason: e.to_string(),
            })?
            .tree();
        let mut batch: Vec<(ObjectId, gix::objs::Kind, Vec<u8>)> = Vec::new();
        let mut visited: HashSet<ObjectId> = HashSet::new();
        // Depth-first, children before the tree that names them.
        let mut stack: Vec<(ObjectId, bool)> = vec![(tree, false)];
        while let Some((oid, expanded)) = stack.pop() {
            if expanded {
                let object = source.find_any(oid)?;
                batch.push((oid, object.kind, object.data));
                continue;
            }
            if !visited.insert(oid) {
                continue;
            }
            stack.push((oid, true));
            for child in source.references_of(oid)? {
                if !visited.contains(&child) {
                    stack.push((child, false));
                }
            }
        }
        batch.push((id, commit.kind, commit.data));
        let n = batch.len();
        self.write_pack_with(&batch, fsync)?;
        Ok(n)
    }

    /// The objects `id` refers to: a commit's tree and parents, a tree's
    /// entries (submodule links excluded), nothing for a blob.
    fn references_of(&self, id: ObjectId) -> Result<Vec<ObjectId>> {
        let object = self.find_any(id)?;
        let corrupt = |e: &dyn std::fmt::Display| GitError::CorruptObject {
            id,
            reason: e.to_string(),
        };
        Ok(match object.kind {
            gix::objs::Kind::Commit => {
                let c = gix::objs::CommitRef::from_bytes(&object.data, gix::hash::Kind::Sha1)
                    .map_err(|e| corrupt(&e))?;
                std::iter::once(c.tree()).chain(c.parents()).collect()
            }
            gix::objs::Kind::Tree => {
                let t = gix::objs::TreeRef::from_bytes(&object.data, gix::hash::Kind::Sha1)
                    .map_err(|e| corrupt(&e))?;
                t.entries
                    .iter()
                    .filter(|e| !e.mode.is_commit())
                    .map(|e| e.oid.to_owned())
                    .collect()
            }
            _ => Vec::new(),
        })
    }
}
