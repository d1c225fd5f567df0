//! Copying objects between repositories on the same file system: the
//! transport for file-system remotes (gix cannot push).

use std::collections::HashSet;

use gix::ObjectId;
use gix::objs::Write as _;

use crate::{GitError, GitRepo, Result};

impl GitRepo {
    /// Copies into `self` every object reachable from `tips` in `source` that
    /// `self` lacks, and returns how many were copied.
    ///
    /// Objects are written referenced-first (blobs, then trees, then commits
    /// after their parents), so at every moment each object present in
    /// `self` has everything it references — a crash mid-copy leaves nothing
    /// dangling, and a commit already present means its whole history is.
    /// Every object is re-hashed as it is written; one whose bytes do not
    /// hash to its id is [`GitError::CorruptObject`] and nothing after it is
    /// copied.
    pub fn copy_reachable_from(&self, source: &GitRepo, tips: &[ObjectId]) -> Result<usize> {
        let mut visited: HashSet<ObjectId> = HashSet::new();
        let mut copied = 0;
        // Depth-first, emitting an object once everything it references is
        // written: (id, children-expanded?).
        let mut stack: Vec<(ObjectId, bool)> = tips.iter().map(|t| (*t, false)).collect();
        while let Some((id, expanded)) = stack.pop() {
            if expanded {
                self.copy_one(source, id)?;
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
        Ok(copied)
    }

    /// The objects `id` refers to: a commit's tree and parents, a tree's
    /// entries (submodule links excluded), nothing for a blob.
    fn references_of(&self, id: ObjectId) -> Result<Vec<ObjectId>> {
        let object = match self.gix().try_find_object(id) {
            Ok(Some(o)) => o,
            Ok(None) => return Err(GitError::ObjectMissing { id }),
            Err(e) => {
                return Err(GitError::CorruptObject {
                    id,
                    reason: e.to_string(),
                });
            }
        };
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

    fn copy_one(&self, source: &GitRepo, id: ObjectId) -> Result<()> {
        let object = match source.gix().try_find_object(id) {
            Ok(Some(o)) => o,
            Ok(None) => return Err(GitError::ObjectMissing { id }),
            Err(e) => {
                return Err(GitError::CorruptObject {
                    id,
                    reason: e.to_string(),
                });
            }
        };
        let written = self
            .gix()
            .write_buf(object.kind, &object.data)
            .map_err(|e| GitError::gix(format!("copying object {id}"), e))?;
        if written != id {
            return Err(GitError::CorruptObject {
                id,
                reason: format!("its bytes hash to {written}"),
            });
        }
        Ok(())
    }
}
