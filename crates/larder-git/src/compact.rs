//! Compaction: moving loose objects into one pack.
//!
//! Every WAL append writes ~8 small loose objects (one file each). Packing
//! them shrinks the disk footprint by an order of magnitude and makes reads
//! fast (one mapped file instead of thousands of `open`s).

use std::path::PathBuf;

use gix::ObjectId;

use crate::consolidate::remove_if_present;
use crate::pack::PackBuilder;
use crate::{Consolidation, ConsolidationPolicy, GitError, GitRepo, Result};

/// What [`GitRepo::pack_loose_objects`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackOutcome {
    /// Loose objects moved into the new pack (and deleted as loose files).
    pub objects: usize,
    /// The new pack's data file, if one was written.
    pub pack: Option<PathBuf>,
    /// Loose objects left where they are because they cannot be read or
    /// their bytes do not match their id (for `git fsck` to look at); they
    /// never stop the others from being packed.
    pub unreadable: Vec<ObjectId>,
}

/// Past this many loose objects in `objects/17`, maintenance after a pull
/// or push packs every loose object (an estimate of 256 times as many in
/// all; git's `gc --auto` looks at the same directory).
const LOOSE_IN_SAMPLE_DIR: usize = 8;

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
        // Read from the loose files themselves (not through the object
        // store, which a pile of packs could leave without slots).
        let loose = gix::odb::loose::Store::at(self.objects_dir(), gix::hash::Kind::Sha1);
        let mut objects = Vec::with_capacity(ids.len());
        let mut unreadable = Vec::new();
        let mut buf = Vec::new();
        for id in &ids {
            let found = match loose.try_find(id, &mut buf) {
                Ok(Some(data)) => Some((data.kind, data.data.to_vec())),
                // Packed and deleted by someone else since the listing.
                Ok(None) => None,
                Err(_) => {
                    unreadable.push(*id);
                    None
                }
            };
            let Some((kind, data)) = found else {
                continue;
            };
            match gix::objs::compute_hash(gix::hash::Kind::Sha1, kind, &data) {
                Ok(actual) if actual == *id => objects.push((*id, kind, data)),
                _ => unreadable.push(*id),
            }
        }
        let ids: Vec<ObjectId> = objects.iter().map(|(id, _, _)| *id).collect();
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
            unreadable,
        })
    }

    /// Whether loose objects have piled up enough to pack them: more than
    /// a few in the sample directory `objects/17`, as git's `gc --auto`
    /// estimates.
    fn many_loose_objects(&self) -> bool {
        std::fs::read_dir(self.objects_dir().join("17"))
            .map(|entries| entries.take(LOOSE_IN_SAMPLE_DIR + 1).count() > LOOSE_IN_SAMPLE_DIR)
            .unwrap_or(false)
    }

    /// Upkeep for a repository that receives objects without appending to
    /// it — a local log after a pull, a file-system remote after a push:
    /// packs the loose objects if many have piled up, then merges packs by
    /// size tier ([`GitRepo::consolidate_packs`]). Takes the repository's
    /// consolidation lock without waiting: if another process holds it,
    /// returns at once with `busy` set. Damaged packs are skipped and named.
    pub fn maintain(&self, policy: &ConsolidationPolicy) -> Result<Consolidation> {
        let Some(_lock) = self.consolidation_lock(false)? else {
            return Ok(Consolidation {
                busy: true,
                ..Consolidation::default()
            });
        };
        let loose_objects = if self.many_loose_objects() {
            self.pack_loose_objects()?.objects
        } else {
            0
        };
        let mut done = self.consolidate_locked(policy)?;
        done.loose_objects = loose_objects;
        done.temp_files_removed = self.remove_stale_temp_packs(STALE_TEMP_AGE);
        Ok(done)
    }

    /// Deletes `tmp_pack_*` files in `objects/pack` older than `age`: what
    /// a writer killed mid-pack leaves behind (nothing refers to them, and
    /// a live writer renames its file within moments). Returns how many
    /// went; failures are skipped (it is tidying, not correctness).
    pub fn remove_stale_temp_packs(&self, age: std::time::Duration) -> usize {
        let Ok(entries) = std::fs::read_dir(self.objects_dir().join("pack")) else {
            return 0;
        };
        let now = std::time::SystemTime::now();
        entries
            .filter_map(std::result::Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("tmp_pack_"))
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| now.duration_since(t).is_ok_and(|d| d >= age))
            })
            .filter(|e| std::fs::remove_file(e.path()).is_ok())
            .count()
    }

    /// Compacts any repository, bare or not, whatever writes to it: waits
    /// for a concurrent consolidation, packs every loose object, then merges
    /// every pack of at most `max_size` bytes into one. Packs git marked to
    /// stay (`.keep`, …) or named by a `multi-pack-index` are left alone, and
    /// damaged packs are skipped and named in [`Consolidation::damaged`].
    /// Every object stays readable throughout.
    pub fn compact(&self, max_size: u64) -> Result<Consolidation> {
        self.compact_with(max_size, &|_| {})
    }

    /// [`GitRepo::compact`], calling `progress(n)` as each `n` more packs
    /// have been read for the merge (for a progress display; the total is
    /// [`GitRepo::pack_count`] beforehand, give or take one for the loose
    /// objects' pack).
    pub fn compact_with(&self, max_size: u64, progress: &dyn Fn(u64)) -> Result<Consolidation> {
        let _lock = self.consolidation_lock(true)?;
        let loose_objects = self.pack_loose_objects()?.objects;
        let mut done = self.merge_all_locked(max_size, progress)?;
        done.loose_objects = loose_objects;
        done.temp_files_removed = self.remove_stale_temp_packs(STALE_TEMP_AGE);
        Ok(done)
    }
}

/// How old a `tmp_pack_*` file must be before upkeep deletes it: far longer
/// than any live write takes.
const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(3600);

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
        self.write_pack_with(objects, true)
    }

    /// [`GitRepo::write_pack`], flushing pack, index and directory to disk
    /// only with `fsync` (a writer whose durability does not promise it).
    pub fn write_pack_with(
        &self,
        objects: &[(ObjectId, gix::objs::Kind, Vec<u8>)],
        fsync: bool,
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
        self.install_pack(&built, fsync).map(Some)
    }
}
