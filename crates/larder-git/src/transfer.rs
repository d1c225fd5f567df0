//! Copying objects between repositories on the same file system: the
//! transport for file-system remotes (gix cannot push).

use std::collections::HashSet;

use gix::ObjectId;
use gix::objs::Write as _;

use crate::{GitError, GitRepo, Result};

/// Transfers of at least this many objects are written as one pack.
pub const PACK_THRESHOLD: usize = 64;

impl GitRepo {
    /// Copies into `self` every object reachable from `tips` in `source` that
    /// `self` lacks, and returns how many were copied.
    ///
    /// Objects are written referenced-first (blobs, then trees, then commits
    /// after their parents) — loose one by one for small transfers, as one
    /// pack (appearing all at once) from [`PACK_THRESHOLD`] objects up — so
    /// at every moment each object present in `self` has everything it
    /// references: a crash mid-copy leaves nothing dangling, and a commit
    /// already present means its whole history is. Every object is hashed
    /// as it is written; one whose bytes do not match its id is
    /// [`GitError::CorruptObject`].
    pub fn copy_reachable_from(&self, source: &GitRepo, tips: &[ObjectId]) -> Result<usize> {
        let mut visited: HashSet<ObjectId> = HashSet::new();
        let mut copied = 0;
        // Many objects go into one pack (two files instead of one file per
        // object: file creation dominates on real disks); a few stay loose.
        let mut batch: Vec<(ObjectId, gix::objs::Kind, Vec<u8>)> = Vec::new();
        // Depth-first, emitting an object once everything it references is
        // written: (id, children-expanded?).
        let mut stack: Vec<(ObjectId, bool)> = tips.iter().map(|t| (*t, false)).collect();
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                let object = source.find_any(id)?;
                batch.push((id, object.kind, object.data));
                copied += 1;
                continue;
            }
            if !visited.insert(id) || self.has_object(id) {
                continue;
            }
            stack.push((id, true));
            for child in source.references_of(id)? {
                if !visited.contains(&child) {
                    stack.push((child, false));
                }
            }
        }
        if batch.len() >= PACK_THRESHOLD {
            self.write_pack(&batch)?;
        } else {
            for (id, kind, data) in &batch {
                let written = self
                    .gix()
                    .write_buf(*kind, data)
                    .map_err(|e| GitError::gix(format!("copying object {id}"), e))?;
                if written != *id {
                    return Err(GitError::CorruptObject {
                        id: *id,
                        reason: format!("its bytes hash to {written}"),
                    });
                }
            }
        }
        Ok(copied)
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
