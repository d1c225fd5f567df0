//! Compaction: moving loose objects into one pack.
//!
//! Every WAL append writes ~8 small loose objects (one file each). Packing
//! them shrinks the disk footprint by an order of magnitude and makes reads
//! fast (one mapped file instead of thousands of `open`s).

use std::path::PathBuf;

use gix::ObjectId;

use crate::consolidate::remove_if_present;
use crate::pack::PackBuilder;
use crate::{GitError, GitRepo, Result};

/// What [`GitRepo::pack_loose_objects`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackOutcome {
    /// Loose objects moved into the new pack (and deleted as loose files).
    pub objects: usize,
    /// The new pack's data file, if one was written.
    pub pack: Option<PathBuf>,
}

impl GitRepo {
    /// Every loose object id in the object database.
    pub fn loose_object_ids(&self) -> Result<Vec<ObjectId>> {
        let dir = self.objects_dir();
        let mut ids = Vec::new();
        let io = |path: &std::path::Path, source| GitError::Io {
            what: "listing",
            path: path.display().to_string(),
            source,
        };
        for fanout in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let fanout = fanout.map_err(|e| io(&dir, e))?;
            let name = fanout.file_name();
            let Some(prefix) = name
                .to_str()
                .filter(|n| n.len() == 2 && n.bytes().all(|b| b.is_ascii_hexdigit()))
            else {
                continue;
            };
            let prefix = prefix.to_owned();
            for file in std::fs::read_dir(fanout.path()).map_err(|e| io(&fanout.path(), e))? {
                let file = file.map_err(|e| io(&fanout.path(), e))?;
                let rest = file.file_name();
                if let Some(rest) = rest.to_str()
                    && let Ok(id) = ObjectId::from_hex(format!("{prefix}{rest}").as_bytes())
                {
                    ids.push(id);
                }
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Writes every loose object into one new pack (with its index), then
    /// deletes the loose copies. The pack and index are in place before any
    /// loose file is removed, so every object stays readable throughout and
    /// concurrent writers are unaffected. Objects are stored whole (no
    /// deltas), compressed with zlib's fastest level.
    pub fn pack_loose_objects(&self) -> Result<PackOutcome> {
        let ids = self.loose_object_ids()?;
        if ids.is_empty() {
            return Ok(PackOutcome::default());
        }
        let mut objects = Vec::with_capacity(ids.len());
        for id in &ids {
            let object = self
                .gix()
                .find_object(*id)
                .map_err(|e| GitError::gix(format!("reading loose object {id}"), e))?;
            objects.push((*id, object.kind, object.detach().data));
        }
        // The pack is durable (flushed by write_pack) before the loose
        // copies disappear.
        let pack = self.write_pack(&objects)?;
        for id in &ids {
            let hex = id.to_string();
            let path = self.objects_dir().join(&hex[..2]).join(&hex[2..]);
            remove_if_present(&path)?;
            // Empty fan-out directories stay: removing one could race a
            // concurrent writer renaming a new object into it.
        }
        Ok(PackOutcome {
            objects: ids.len(),
            pack,
        })
    }
}

impl GitRepo {
    /// Writes `objects` (id, kind, bytes) as one new pack plus index in
    /// this repository, and returns the pack's path. Each object is hashed
    /// first: one whose bytes do not match its id is
    /// [`GitError::CorruptObject`] and nothing is written. The pack and its
    /// index are flushed to disk, and the index is renamed into place last,
    /// so the objects appear all at once.
    pub fn write_pack(
        &self,
        objects: &[(ObjectId, gix::objs::Kind, Vec<u8>)],
    ) -> Result<Option<PathBuf>> {
        if objects.is_empty() {
            return Ok(None);
        }
        let mut builder = PackBuilder::new();
        for (id, kind, data) in objects {
            let actual =
                gix::objs::compute_hash(gix::hash::Kind::Sha1, *kind, data).map_err(|e| {
                    GitError::CorruptObject {
                        id: *id,
                        reason: e.to_string(),
                    }
                })?;
            if actual != *id {
                return Err(GitError::CorruptObject {
                    id: *id,
                    reason: format!("its bytes hash to {actual}"),
                });
            }
            builder.add_object(*id, *kind, data)?;
        }
        let built = builder.finish()?;
        self.install_pack(&built, true).map(Some)
    }
}
