//! [`ObjectBatch`]: objects built and hashed in memory, then written
//! together as one pack.
//!
//! A WAL append makes eight small objects. Written loose, each is its own
//! file, and on the file systems measured here creating files is most of an
//! append's cost; as one pack they are two files, and they appear at once.

use std::path::PathBuf;

use gix::ObjectId;
use gix::objs::WriteTo;

use crate::objects::{commit_object, tree_object};
use crate::pack::PackBuilder;
use crate::{GitError, GitRepo, Identity, Result, TreeEntry};

/// Objects waiting to be written as one pack by [`GitRepo::write_batch`].
/// Ids are known as soon as an object is added, so trees and commits can
/// refer to objects of the same batch.
#[derive(Clone, Debug, Default)]
pub struct ObjectBatch {
    objects: Vec<(ObjectId, gix::objs::Kind, Vec<u8>)>,
}

impl ObjectBatch {
    /// An empty batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a blob holding `data`, returning its id.
    pub fn blob(&mut self, data: Vec<u8>) -> Result<ObjectId> {
        self.push(gix::objs::Kind::Blob, data)
    }

    /// Adds a tree of `entries` (sorted into git's order), returning its id.
    pub fn tree(&mut self, entries: &[TreeEntry]) -> Result<ObjectId> {
        let tree = tree_object(entries)?;
        self.push_object(&tree)
    }

    /// Adds a commit, as [`GitRepo::write_commit`] would write it.
    pub fn commit(
        &mut self,
        tree: ObjectId,
        parents: &[ObjectId],
        message: &str,
        identity: Option<&Identity>,
        time: i64,
    ) -> Result<ObjectId> {
        let commit = commit_object(tree, parents, message, identity, time);
        self.push_object(&commit)
    }

    /// The ids added so far, in order.
    pub fn ids(&self) -> impl Iterator<Item = ObjectId> + '_ {
        self.objects.iter().map(|(id, _, _)| *id)
    }

    /// How many objects the batch holds.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the batch holds nothing.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    fn push_object(&mut self, object: &dyn WriteTo) -> Result<ObjectId> {
        let mut data = Vec::with_capacity(object.size() as usize);
        object.write_to(&mut data).map_err(|source| GitError::Io {
            what: "encoding",
            path: format!("a {} object", object.kind()),
            source,
        })?;
        self.push(object.kind(), data)
    }

    fn push(&mut self, kind: gix::objs::Kind, data: Vec<u8>) -> Result<ObjectId> {
        let id = gix::objs::compute_hash(gix::hash::Kind::Sha1, kind, &data)
            .map_err(|e| GitError::gix(format!("hashing a {kind}"), e))?;
        self.objects.push((id, kind, data));
        Ok(id)
    }
}

impl GitRepo {
    /// Writes every object of `batch` as one new pack with its index, and
    /// returns the pack's path (None for an empty batch). The index is
    /// renamed into place last, so the objects appear all at once; with
    /// `fsync`, pack, index and directory are on disk before this returns.
    pub fn write_batch(&self, batch: &ObjectBatch, fsync: bool) -> Result<Option<PathBuf>> {
        self.write_batches(&[batch], fsync)
    }

    /// [`GitRepo::write_batch`] for the objects of several batches together
    /// (one pack), so a caller can combine a fixed part with a part rebuilt
    /// on each attempt without copying the fixed part.
    pub fn write_batches(&self, batches: &[&ObjectBatch], fsync: bool) -> Result<Option<PathBuf>> {
        if batches.iter().all(|b| b.is_empty()) {
            return Ok(None);
        }
        let mut builder = PackBuilder::new();
        // An object added twice (two batches holding the same chunk) is
        // written once: a pack whose header counts more entries than its
        // index lists is refused by git.
        let mut seen = std::collections::HashSet::new();
        for (id, kind, data) in batches.iter().flat_map(|b| &b.objects) {
            if seen.insert(*id) {
                builder.add_object(*id, *kind, data)?;
            }
        }
        let built = builder.finish()?;
        self.install_pack(&built, fsync).map(Some)
    }
}
