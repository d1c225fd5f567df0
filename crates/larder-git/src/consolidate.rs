//! Pack consolidation: merging many small packs into few, by size tier.
//!
//! WAL appends write one small pack each. Left alone, thousands of packs
//! would make every object lookup probe thousands of indexes (and run gix
//! handles out of pack slots). Consolidation keeps the count logarithmic:
//! packs are grouped into size tiers `fan_in` times apart, and a tier that
//! holds `fan_in` packs is merged into one pack of the next tier, as a
//! size-tiered LSM tree compacts its runs.
//!
//! Merging copies each entry's compressed bytes as they are (nothing is
//! inflated or recompressed; an `OFS_DELTA` becomes a `REF_DELTA` to the
//! same base, since offsets change), checks each entry's CRC-32 against its
//! index first, and flushes the new pack to disk before any old pack is
//! deleted. Readers never miss an object: the new pack is in place before
//! the old ones go, and gix and git both rescan when a pack disappears.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix_pack::data::entry::Header;

use crate::pack::PackBuilder;
use crate::{GitError, GitRepo, Result};

/// How [`GitRepo::consolidate_packs`] groups packs into tiers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsolidationPolicy {
    /// How many packs of one tier trigger a merge; also the size ratio
    /// between tiers.
    pub fan_in: usize,
    /// Packs smaller than this form the lowest tier.
    pub base_size: u64,
    /// Packs larger than this are never merged (left to `git gc`).
    pub max_size: u64,
}

impl Default for ConsolidationPolicy {
    fn default() -> Self {
        Self {
            fan_in: 16,
            base_size: 16 * 1024,
            max_size: 64 * 1024 * 1024,
        }
    }
}

/// What a consolidation did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Consolidation {
    /// Packs merged into new ones (and deleted).
    pub packs_merged: usize,
    /// New packs written.
    pub packs_written: usize,
    /// Distinct objects in the new packs.
    pub objects: usize,
    /// Another process was consolidating, so this call did nothing.
    pub busy: bool,
}

/// One pack on disk that larder may merge.
#[derive(Debug)]
struct PackFiles {
    /// `objects/pack/pack-<checksum>` without extension.
    base: PathBuf,
    size: u64,
}

impl PackFiles {
    fn with(&self, extension: &str) -> PathBuf {
        self.base.with_extension(extension)
    }
}

impl GitRepo {
    /// Merges packs tier by tier until no tier holds `policy.fan_in` packs.
    /// Cheap when there is nothing to do (one directory listing). If another
    /// process is consolidating this repository, returns at once with
    /// `busy` set.
    pub fn consolidate_packs(&self, policy: &ConsolidationPolicy) -> Result<Consolidation> {
        let Some(_lock) = self.consolidation_lock(false)? else {
            return Ok(Consolidation {
                busy: true,
                ..Consolidation::default()
            });
        };
        let fan_in = policy.fan_in.max(2);
        let mut done = Consolidation::default();
        loop {
            let mut tiers: Vec<Vec<PackFiles>> = Vec::new();
            for pack in self.mergeable_packs(policy.max_size)? {
                let tier = tier_of(pack.size, policy.base_size, fan_in as u64);
                if tiers.len() <= tier {
                    tiers.resize_with(tier + 1, Vec::new);
                }
                tiers[tier].push(pack);
            }
            let Some(full) = tiers.into_iter().find(|t| t.len() >= fan_in) else {
                return Ok(done);
            };
            done.objects += self.merge_pack_files(&full)?;
            done.packs_merged += full.len();
            done.packs_written += 1;
        }
    }

    /// Merges every pack of at most `max_size` bytes into one, waiting for
    /// a concurrent consolidation to finish first. Used by compaction.
    pub fn merge_packs(&self, max_size: u64) -> Result<Consolidation> {
        let _lock = self.consolidation_lock(true)?;
        let packs = self.mergeable_packs(max_size)?;
        if packs.len() < 2 {
            return Ok(Consolidation::default());
        }
        Ok(Consolidation {
            objects: self.merge_pack_files(&packs)?,
            packs_merged: packs.len(),
            packs_written: 1,
            busy: false,
        })
    }

    /// How many packs the object database holds.
    pub fn pack_count(&self) -> Result<usize> {
        Ok(self.list_packs()?.0.len())
    }

    /// An exclusive advisory lock (released by the OS if the process dies)
    /// on `<git dir>/larder/packs.lock`; None if `wait` is false and another
    /// process holds it.
    fn consolidation_lock(&self, wait: bool) -> Result<Option<File>> {
        let dir = self.git_dir().join("larder");
        let path = dir.join("packs.lock");
        let io = |what, source| GitError::Io {
            what,
            path: path.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(|e| io("creating the directory of", e))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io("opening", e))?;
        if wait {
            file.lock().map_err(|e| io("locking", e))?;
            return Ok(Some(file));
        }
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(io("locking", e)),
        }
    }

    /// Every complete pack (its `.idx` exists), smallest first, with the
    /// file names seen (to find sidecar files without more system calls).
    fn list_packs(&self) -> Result<(Vec<PackFiles>, HashSet<String>)> {
        let dir = self.objects_dir().join("pack");
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((Vec::new(), HashSet::new()));
            }
            Err(source) => {
                return Err(GitError::Io {
                    what: "listing",
                    path: dir.display().to_string(),
                    source,
                });
            }
        };
        let names: HashSet<String> = entries
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        let mut packs = Vec::new();
        for name in &names {
            let Some(stem) = name.strip_suffix(".idx") else {
                continue;
            };
            let base = dir.join(stem);
            // A pack deleted since the listing is simply not there.
            if let Ok(meta) = std::fs::metadata(base.with_extension("pack")) {
                packs.push(PackFiles {
                    base,
                    size: meta.len(),
                });
            }
        }
        packs.sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.base.cmp(&b.base)));
        Ok((packs, names))
    }

    /// The packs consolidation may touch: at most `max_size` bytes, and
    /// none that git marked to stay as they are (`.keep`, `.promisor`, cruft
    /// packs' `.mtimes`). A multi-pack index names packs itself, so with one
    /// nothing is touched. Derived files (`.rev`, `.bitmap`) go with their
    /// pack.
    fn mergeable_packs(&self, max_size: u64) -> Result<Vec<PackFiles>> {
        let (mut packs, names) = self.list_packs()?;
        if names.contains("multi-pack-index") {
            return Ok(Vec::new());
        }
        packs.retain(|p| {
            let stem = p
                .base
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            p.size <= max_size
                && ["keep", "promisor", "mtimes"]
                    .iter()
                    .all(|ext| !names.contains(&format!("{stem}.{ext}")))
        });
        Ok(packs)
    }

    /// Writes the objects of `packs` as one new pack (durably), then deletes
    /// them. Returns the number of distinct objects.
    fn merge_pack_files(&self, packs: &[PackFiles]) -> Result<usize> {
        let mut builder = PackBuilder::new();
        let mut seen: HashSet<ObjectId> = HashSet::new();
        let mut merged = Vec::with_capacity(packs.len());
        for pack in packs {
            match copy_entries(pack, &mut builder, &mut seen) {
                Ok(()) => merged.push(pack),
                // Deleted by someone else (git gc) since the listing: its
                // objects are wherever that process put them.
                Err(CopyError::Gone) => {}
                Err(CopyError::Failed(e)) => return Err(e),
            }
        }
        if builder.len() == 0 {
            return Ok(0);
        }
        let built = builder.finish()?;
        let new_pack = self.install_pack(&built, true)?;
        for pack in merged {
            if pack.with("pack") == new_pack {
                continue;
            }
            // The index first: a scan that no longer sees it never tries
            // the data file.
            for extension in ["idx", "pack", "rev", "bitmap"] {
                remove_if_present(&pack.with(extension))?;
            }
        }
        Ok(built.objects)
    }
}

/// The size tier of a pack of `size` bytes: 0 below `base`, then one more
/// per factor of `fan_in`.
fn tier_of(size: u64, base: u64, fan_in: u64) -> usize {
    let mut tier = 0;
    let mut bound = base.max(1);
    while size >= bound {
        tier += 1;
        bound = bound.saturating_mul(fan_in);
        if bound == u64::MAX {
            break;
        }
    }
    tier
}

enum CopyError {
    Gone,
    Failed(GitError),
}

/// Copies every entry of `pack` not yet `seen` into `builder`, verbatim
/// except that offset deltas become reference deltas.
fn copy_entries(
    pack: &PackFiles,
    builder: &mut PackBuilder,
    seen: &mut HashSet<ObjectId>,
) -> std::result::Result<(), CopyError> {
    let idx_path = pack.with("idx");
    let pack_path = pack.with("pack");
    if !idx_path.exists() || !pack_path.exists() {
        return Err(CopyError::Gone);
    }
    let failed = |what: &str, path: &Path, e: gix::Error| {
        CopyError::Failed(GitError::gix(format!("{what} {}", path.display()), e))
    };
    let index = gix_pack::index::File::at(&idx_path, gix::hash::Kind::Sha1)
        .map_err(|e| failed("opening the pack index", &idx_path, e))?;
    let data = gix_pack::data::File::at(&pack_path, gix::hash::Kind::Sha1)
        .map_err(|e| failed("opening the pack", &pack_path, e))?;
    let mut entries: Vec<gix_pack::index::Entry> = index.iter().collect();
    entries.sort_by_key(|e| e.pack_offset);
    let id_at: HashMap<u64, ObjectId> = entries.iter().map(|e| (e.pack_offset, e.oid)).collect();
    let corrupt = |id: ObjectId, reason: String| {
        CopyError::Failed(GitError::CorruptObject {
            id,
            reason: format!("in {}: {reason}", pack_path.display()),
        })
    };
    for (i, entry) in entries.iter().enumerate() {
        let end = entries
            .get(i + 1)
            .map_or(data.pack_end() as u64, |next| next.pack_offset);
        let len = end.saturating_sub(entry.pack_offset) as usize;
        if data
            .entry_slice(entry.pack_offset..end)
            .is_none_or(|s| s.len() != len)
        {
            return Err(corrupt(entry.oid, "entry lies outside the pack".into()));
        }
        if let Some(expected) = entry.crc32
            && data.entry_crc32(entry.pack_offset, len) != expected
        {
            return Err(corrupt(entry.oid, "CRC-32 does not match the index".into()));
        }
        if !seen.insert(entry.oid) {
            continue;
        }
        let parsed = data
            .entry(entry.pack_offset)
            .map_err(|e| corrupt(entry.oid, e.to_string()))?;
        let header = match parsed.header {
            Header::OfsDelta { base_distance } => {
                let base = Header::verified_base_pack_offset(entry.pack_offset, base_distance)
                    .and_then(|offset| id_at.get(&offset))
                    .ok_or_else(|| corrupt(entry.oid, "delta base is not an entry".into()))?;
                Header::RefDelta { base_id: *base }
            }
            other => other,
        };
        let body = data
            .entry_slice(parsed.data_offset..end)
            .ok_or_else(|| corrupt(entry.oid, "entry data lies outside the pack".into()))?;
        builder
            .add_raw(entry.oid, header, parsed.decompressed_size, body)
            .map_err(CopyError::Failed)?;
    }
    Ok(())
}

/// Deletes `path`; one already gone (someone else deleted it) is fine.
pub(crate) fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(GitError::Io {
            what: "removing",
            path: path.display().to_string(),
            source,
        }),
    }
}
