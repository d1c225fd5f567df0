//! Objects: writing blobs, trees and commits, and reading any object back
//! with misses confirmed on a fresh store (never a false "missing").

use gix::ObjectId;
use gix::bstr::ByteSlice;

use crate::repo::{
    CommitInfo, EntryKind, GitRepo, Identity, MAX_PACK_INDEXES, TreeEntry, open_sized,
};
use crate::{GitError, Result};

impl GitRepo {
    /// Stores `data` as a blob (a no-op if it already exists).
    pub fn write_blob(&self, data: &[u8]) -> Result<ObjectId> {
        self.repo
            .write_blob(data)
            .map(|id| id.detach())
            .map_err(|e| GitError::gix("writing a blob", e))
    }

    /// Stores a tree made of `entries` (sorted here into git's order).
    pub fn write_tree(&self, entries: &[TreeEntry]) -> Result<ObjectId> {
        self.repo
            .write_object(tree_object(entries)?)
            .map(|id| id.detach())
            .map_err(|e| GitError::gix("writing a tree", e))
    }

    /// Stores a commit of `tree` with `parents`, signed by `identity` (or
    /// [`Identity::default`]) at `time` (seconds since the Unix epoch).
    /// HEAD, the index and the work tree are never touched.
    pub fn write_commit(
        &self,
        tree: ObjectId,
        parents: &[ObjectId],
        message: &str,
        identity: Option<&Identity>,
        time: i64,
    ) -> Result<ObjectId> {
        self.repo
            .write_object(commit_object(tree, parents, message, identity, time))
            .map(|id| id.detach())
            .map_err(|e| GitError::gix("writing a commit", e))
    }

    /// Whether the object exists. A lookup that fails (rather than
    /// misses) — the handle's store ran out of pack slots — is answered by a
    /// store opened afresh. A plain miss is not confirmed: "no" can be
    /// stale for an object another handle packed a moment ago. Where a
    /// false "no" matters, read the object ([`GitRepo::read_commit`] and
    /// friends confirm misses).
    ///
    /// A miss costs a listing of `objects/pack` (gix looks for new packs),
    /// more with every pack: to ask about many objects that are likely
    /// absent, as a transfer does, use a [`Haves`](crate::Haves).
    pub fn has_object(&self, id: ObjectId) -> bool {
        match shared_store(|| self.repo.try_find_header(id).map(|h| h.is_some())) {
            Some(Ok(true)) => true,
            Some(Ok(false)) => false,
            _ => self
                .fresh_store()
                .is_ok_and(|fresh| matches!(fresh.try_find_header(id), Ok(Some(_)))),
        }
    }

    /// A new object store on this repository, with slots for every index
    /// file now on disk. Lookups fall back to it when the handle's own
    /// store misses or fails: handles that share one store can race while
    /// it rescans `objects/pack` (one thread adopts another's rescan, listed
    /// before the pack it needs appeared), and a long-lived store may have
    /// fewer slots than packs have piled up since it was opened.
    pub(crate) fn fresh_store(&self) -> Result<gix::Repository> {
        open_sized(self.git_dir()).map_err(|e| GitError::Open {
            path: self.git_dir().display().to_string(),
            source: Box::new(e),
        })
    }

    /// Any object, or a typed error: missing, unreadable (corrupt), or out
    /// of gix's reach ([`GitError::TooManyPacks`]).
    ///
    /// A miss or a failure of the handle's store is confirmed with a
    /// freshly opened one ([`GitRepo::fresh_store`]) before it is reported,
    /// so neither a rescan race nor a store with too few pack slots is ever
    /// reported as a missing or corrupt object.
    pub(crate) fn find_any(&self, id: ObjectId) -> Result<gix::ObjectDetached> {
        if let Some(Ok(Some(object))) =
            shared_store(|| self.repo.try_find_object(id).map(|o| o.map(|o| o.detach())))
        {
            return Ok(object);
        }
        let fresh = self.fresh_store()?;
        match fresh.try_find_object(id) {
            Ok(Some(object)) => Ok(object.detach()),
            Ok(None) => Err(self
                .unreadable_index()
                .unwrap_or(GitError::ObjectMissing { id })),
            Err(e) => Err(self.lookup_error(id, e)),
        }
    }

    /// A pack whose index cannot be read, if there is one: gix skips such
    /// an index, so its objects look missing. Naming the damaged pack is
    /// more use than "missing" (the object may well be in it). Only run on
    /// a confirmed miss.
    pub(crate) fn unreadable_index(&self) -> Option<GitError> {
        let (packs, _) = self.list_packs().ok()?;
        packs.iter().find_map(|pack| {
            let idx = pack.with("idx");
            match gix_pack::index::File::at(&idx, gix::hash::Kind::Sha1) {
                Ok(_) => None,
                // Merged away since the listing.
                Err(_) if !idx.exists() => None,
                Err(e) => Some(GitError::DamagedPack(crate::DamagedPack {
                    pack: pack.with("pack"),
                    object: None,
                    reason: format!("its index {} cannot be read: {e}", idx.display()),
                })),
            }
        })
    }

    /// Classifies a lookup that failed even on a fresh store: more index
    /// files than gix can address is [`GitError::TooManyPacks`]; anything
    /// else is about the object's own bytes (a damaged entry or loose file),
    /// [`GitError::CorruptObject`].
    pub(crate) fn lookup_error(&self, id: ObjectId, e: gix::Error) -> GitError {
        let indexes = self.list_packs().map_or(0, |(packs, _)| packs.len());
        if indexes > MAX_PACK_INDEXES {
            return GitError::TooManyPacks {
                path: self.objects_dir().join("pack").display().to_string(),
                count: indexes,
                max: MAX_PACK_INDEXES,
            };
        }
        GitError::CorruptObject {
            id,
            reason: e.to_string(),
        }
    }

    pub(crate) fn find(
        &self,
        id: ObjectId,
        expected: gix::objs::Kind,
    ) -> Result<gix::ObjectDetached> {
        let object = self.find_any(id)?;
        if object.kind != expected {
            return Err(GitError::WrongObjectKind {
                id,
                expected: expected.as_bytes().to_str_lossy().into_owned().leak(),
                actual: object.kind.to_string(),
            });
        }
        Ok(object)
    }

    /// Reads a blob's bytes into `buf` (cleared first), so loops can reuse
    /// one buffer.
    pub fn read_blob_into(&self, id: ObjectId, buf: &mut Vec<u8>) -> Result<()> {
        let object = self.find(id, gix::objs::Kind::Blob)?;
        buf.clear();
        buf.extend_from_slice(&object.data);
        Ok(())
    }

    /// An object's kind and size from its header, without inflating it —
    /// so a reader can refuse a hostile multi-gigabyte blob before
    /// allocating for it. Misses are confirmed as in [`GitRepo::read_blob`].
    pub fn object_header(&self, id: ObjectId) -> Result<(gix::objs::Kind, u64)> {
        if let Some(Ok(Some(h))) = shared_store(|| self.repo.try_find_header(id)) {
            return Ok((h.kind(), h.size()));
        }
        match self.fresh_store()?.try_find_header(id) {
            Ok(Some(h)) => Ok((h.kind(), h.size())),
            Ok(None) => Err(self
                .unreadable_index()
                .unwrap_or(GitError::ObjectMissing { id })),
            Err(e) => Err(self.lookup_error(id, e)),
        }
    }

    /// Reads a blob's bytes (handed over from gix's buffer, not copied).
    pub fn read_blob(&self, id: ObjectId) -> Result<Vec<u8>> {
        Ok(self.find(id, gix::objs::Kind::Blob)?.data)
    }

    /// Reads a tree's entries, in git's order.
    pub fn read_tree(&self, id: ObjectId) -> Result<Vec<TreeEntry>> {
        let object = self.find(id, gix::objs::Kind::Tree)?;
        let tree =
            gix::objs::TreeRef::from_bytes(&object.data, gix::hash::Kind::Sha1).map_err(|e| {
                GitError::CorruptObject {
                    id,
                    reason: e.to_string(),
                }
            })?;
        Ok(tree
            .entries
            .iter()
            .map(|e| TreeEntry {
                name: e.filename.to_str_lossy().into_owned(),
                // Only the modes larder writes: an executable file is
                // `Other`, as `EntryKind` documents.
                kind: match e.mode.kind() {
                    gix::objs::tree::EntryKind::Blob => EntryKind::Blob,
                    gix::objs::tree::EntryKind::Tree => EntryKind::Tree,
                    _ => EntryKind::Other,
                },
                id: e.oid.to_owned(),
            })
            .collect())
    }

    /// Reads a commit's tree, parents, time and message.
    pub fn read_commit(&self, id: ObjectId) -> Result<CommitInfo> {
        let object = self.find(id, gix::objs::Kind::Commit)?;
        let commit = gix::objs::CommitRef::from_bytes(&object.data, gix::hash::Kind::Sha1)
            .map_err(|e| GitError::CorruptObject {
                id,
                reason: e.to_string(),
            })?;
        let time = commit.committer().map(|c| c.seconds()).unwrap_or(0);
        Ok(CommitInfo {
            id,
            tree: commit.tree(),
            parents: commit.parents().collect(),
            time,
            message: commit.message.to_str_lossy().into_owned(),
        })
    }
}

/// The git tree made of `entries`, in git's order.
pub(crate) fn tree_object(entries: &[TreeEntry]) -> Result<gix::objs::Tree> {
    let mut tree = gix::objs::Tree::empty();
    for entry in entries {
        let mode = match entry.kind {
            EntryKind::Blob => gix::objs::tree::EntryKind::Blob,
            EntryKind::Tree => gix::objs::tree::EntryKind::Tree,
            EntryKind::Other => {
                return Err(GitError::CorruptObject {
                    id: entry.id,
                    reason: format!(
                        "refusing to write tree entry {:?} of kind Other",
                        entry.name
                    ),
                });
            }
        };
        tree.entries.push(gix::objs::tree::Entry {
            mode: mode.into(),
            filename: entry.name.as_str().into(),
            oid: entry.id,
        });
    }
    tree.entries.sort();
    Ok(tree)
}

/// The git commit of `tree` with `parents`, by `identity` (or
/// [`Identity::default`]) at `time`.
pub(crate) fn commit_object(
    tree: ObjectId,
    parents: &[ObjectId],
    message: &str,
    identity: Option<&Identity>,
    time: i64,
) -> gix::objs::Commit {
    let default = Identity::default();
    let who = identity.unwrap_or(&default);
    let signature = gix::actor::Signature {
        name: who.name.as_str().into(),
        email: who.email.as_str().into(),
        time: gix::date::Time {
            seconds: time,
            offset: 0,
        },
    };
    gix::objs::Commit {
        tree,
        parents: parents.iter().copied().collect(),
        author: signature.clone(),
        committer: signature,
        encoding: None,
        message: message.into(),
        extra_headers: Vec::new(),
    }
}

pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Runs a lookup on the handle's own object store, which clones of the
/// handle share across threads, turning a panic inside gix into `None`:
/// the caller then asks a freshly opened store, which no other thread
/// touches. gix-odb asserts an invariant of its pack-slot bookkeeping ("if
/// the generation changed, the slot index must have changed") that two
/// threads rescanning one shared store while packs are merged can break;
/// a storage library must not take its user's process down for that.
pub(crate) fn shared_store<T>(lookup: impl FnOnce() -> T) -> Option<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(lookup)).ok()
}
