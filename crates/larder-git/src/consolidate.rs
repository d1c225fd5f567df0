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

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};

use gix::ObjectId;

use crate::pack::PackBuilder;
use crate::pack_scan::{CopyError, scan_pack};
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
    /// Loose objects moved into a pack first ([`GitRepo::maintain`],
    /// [`GitRepo::compact`]; always 0 from the other calls).
    pub loose_objects: usize,
    /// Another process was consolidating, so this call did nothing.
    pub busy: bool,
    /// Packs left out because they are damaged (see
    /// [`GitRepo::check_packs`]): each stays where it is, its intact
    /// objects readable, while the others were merged.
    pub damaged: Vec<DamagedPack>,
    /// `tmp_pack_*` files left by killed writers that were deleted
    /// (upkeep and compaction remove those older than an hour).
    pub temp_files_removed: usize,
    /// Objects no root reaches, last written longer ago than the grace
    /// period, that compaction dropped (see [`crate::Unreachable`]).
    pub unreachable_dropped: usize,
    /// Objects no root reaches that compaction kept, in a cruft pack: they
    /// are younger than the grace period (a writer may be about to refer
    /// to them), or pruning was skipped ([`Consolidation::prune_skipped`]).
    pub unreachable_kept: usize,
    /// Extra copies of objects held by several of the merged packs; the
    /// merge writes each object once.
    pub duplicates_dropped: usize,
    /// Large objects written at zlib's fastest level that compaction
    /// compressed again at the default level (see
    /// [`crate::CompactOptions`]).
    pub recompressed: usize,
    /// Why compaction kept every unreachable object although it was asked
    /// to drop old ones: roots larder does not read (an index, linked
    /// worktrees), a shallow or partial clone, a damaged pack, or an object
    /// reachable from a ref that cannot be read.
    pub prune_skipped: Option<String>,
}

/// A pack that cannot be merged or fully read: its index is unreadable,
/// or an entry's bytes do not match what the index says. Named by its data
/// file, so the operator knows what to restore or remove.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamagedPack {
    /// The pack's data file, `objects/pack/pack-<checksum>.pack` (or the
    /// `multi-pack-index` file, when that is what cannot be read).
    pub pack: PathBuf,
    /// The object whose entry is damaged, when the damage is in one entry.
    pub object: Option<ObjectId>,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for DamagedPack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pack {} is damaged", self.pack.display())?;
        if let Some(id) = self.object {
            write!(f, " at object {id}")?;
        }
        write!(
            f,
            ": {}; its other objects stay readable and larder leaves it alone; restore the file from a replica or backup, or run `git fsck` and remove it once its objects are elsewhere",
            self.reason
        )
    }
}

/// What [`GitRepo::check_packs`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackCheck {
    /// Packs (with an index) found.
    pub packs: usize,
    /// Entries checked in them.
    pub objects: usize,
    /// Packs whose index or entries are damaged, each named.
    pub damaged: Vec<DamagedPack>,
}

/// One pack on disk that larder may merge.
#[derive(Debug)]
pub(crate) struct PackFiles {
    /// `objects/pack/pack-<checksum>` without extension.
    pub(crate) base: PathBuf,
    pub(crate) size: u64,
    /// When the data file was last written (None if the file system does
    /// not say): the age of every object in it, for compaction's grace
    /// period — no object in a pack is younger than the pack.
    pub(crate) modified: Option<std::time::SystemTime>,
}

impl PackFiles {
    pub(crate) fn with(&self, extension: &str) -> PathBuf {
        self.base.with_extension(extension)
    }
}

impl GitRepo {
    /// Merges packs tier by tier until no tier holds `policy.fan_in` packs.
    /// Cheap when there is nothing to do (one directory listing). If another
    /// process is consolidating this repository, returns at once with
    /// `busy` set. A damaged pack is left where it is and named in
    /// [`Consolidation::damaged`]; the others are merged all the same.
    pub fn consolidate_packs(&self, policy: &ConsolidationPolicy) -> Result<Consolidation> {
        let Some(_lock) = self.consolidation_lock(false)? else {
            return Ok(Consolidation {
                busy: true,
                ..Consolidation::default()
            });
        };
        self.consolidate_locked(policy)
    }

    /// [`GitRepo::consolidate_packs`] with the lock held.
    pub(crate) fn consolidate_locked(&self, policy: &ConsolidationPolicy) -> Result<Consolidation> {
        let fan_in = policy.fan_in.max(2);
        let mut done = Consolidation::default();
        loop {
            let mut tiers: Vec<Vec<PackFiles>> = Vec::new();
            for pack in self.mergeable_packs(policy.max_size)? {
                if done.damaged.iter().any(|d| d.pack == pack.with("pack")) {
                    continue;
                }
                let tier = tier_of(pack.size, policy.base_size, fan_in as u64);
                if tiers.len() <= tier {
                    tiers.resize_with(tier + 1, Vec::new);
                }
                tiers[tier].push(pack);
            }
            let Some(full) = tiers.into_iter().find(|t| t.len() >= fan_in) else {
                return Ok(done);
            };
            let merged = self.merge_pack_files(&full, &|_| {})?;
            done.objects += merged.objects;
            done.packs_merged += merged.packs;
            done.packs_written += usize::from(merged.written);
            let progress = merged.written || !merged.damaged.is_empty();
            done.damaged.extend(merged.damaged);
            if !progress {
                // Every pack of the tier vanished under us (another
                // process merged them): look again next time.
                return Ok(done);
            }
        }
    }

    /// Merges every pack of at most `max_size` bytes into one, waiting for
    /// a concurrent consolidation to finish first. Used by compaction.
    /// Damaged packs are left out and named, as in
    /// [`GitRepo::consolidate_packs`].
    pub fn merge_packs(&self, max_size: u64) -> Result<Consolidation> {
        let _lock = self.consolidation_lock(true)?;
        self.merge_all_locked(max_size, &|_| {})
    }

    pub(crate) fn merge_all_locked(
        &self,
        max_size: u64,
        progress: &dyn Fn(u64),
    ) -> Result<Consolidation> {
        let packs = self.mergeable_packs(max_size)?;
        if packs.len() < 2 {
            return Ok(Consolidation::default());
        }
        let merged = self.merge_pack_files(&packs, progress)?;
        Ok(Consolidation {
            objects: merged.objects,
            packs_merged: merged.packs,
            packs_written: usize::from(merged.written),
            damaged: merged.damaged,
            ..Consolidation::default()
        })
    }

    /// Checks every pack: its index can be read, and each entry lies inside
    /// the pack and matches the CRC-32 its index records. Returns what was
    /// found rather than failing at the first damaged pack, so a caller
    /// (`larder verify`, `larder stats`) can name them all. A
    /// `multi-pack-index` that cannot be read is reported too.
    pub fn check_packs(&self) -> Result<PackCheck> {
        let (packs, names) = self.list_packs()?;
        let mut check = PackCheck::default();
        for pack in &packs {
            match scan_pack(pack, &HashSet::new(), false) {
                Ok(scan) => {
                    check.packs += 1;
                    check.objects += scan.entries;
                }
                Err(CopyError::Gone) => {}
                Err(CopyError::Damaged(d)) => {
                    check.packs += 1;
                    check.damaged.push(d);
                }
            }
        }
        if names.contains(MULTI_PACK_INDEX)
            && let Err(d) = self.multi_pack_index_packs()
        {
            check.damaged.push(d);
        }
        Ok(check)
    }

    /// How many packs the object database holds.
    pub fn pack_count(&self) -> Result<usize> {
        Ok(self.list_packs()?.0.len())
    }

    /// An exclusive advisory lock (released by the OS if the process dies)
    /// on `<git dir>/larder/packs.lock`; None if `wait` is false and another
    /// process holds it.
    pub(crate) fn consolidation_lock(&self, wait: bool) -> Result<Option<File>> {
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
    pub(crate) fn list_packs(&self) -> Result<(Vec<PackFiles>, HashSet<String>)> {
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
                    modified: meta.modified().ok(),
                });
            }
        }
        packs.sort_by(|a, b| a.size.cmp(&b.size).then_with(|| a.base.cmp(&b.base)));
        Ok((packs, names))
    }

    /// The packs consolidation may touch: at most `max_size` bytes, and
    /// none that git marked to stay as they are (`.keep`, `.promisor`, cruft
    /// packs' `.mtimes`) or that a `multi-pack-index` names (git and gix
    /// look those up through the multi-pack index, which would point at a
    /// deleted pack). Packs written after the multi-pack index are merged
    /// as usual. Derived files (`.rev`, `.bitmap`) go with their pack.
    fn mergeable_packs(&self, max_size: u64) -> Result<Vec<PackFiles>> {
        self.mergeable_packs_with(max_size, false)
    }

    /// [`GitRepo::mergeable_packs`]; with `cruft`, cruft packs (those with
    /// a `.mtimes` file) are taken too — compaction rewrites them,
    /// carrying every object's time over (see [`crate::cruft`]).
    pub(crate) fn mergeable_packs_with(
        &self,
        max_size: u64,
        cruft: bool,
    ) -> Result<Vec<PackFiles>> {
        let (mut packs, names) = self.list_packs()?;
        if names.iter().any(|n| n.starts_with("multi-pack-index.")) {
            // An incremental multi-pack-index chain (a directory larder
            // does not parse): touch nothing.
            return Ok(Vec::new());
        }
        let covered = if names.contains(MULTI_PACK_INDEX) {
            match self.multi_pack_index_packs() {
                Ok(covered) => covered,
                // Unreadable: which packs it names is unknown, so none is
                // touched (`check_packs` reports it).
                Err(_) => return Ok(Vec::new()),
            }
        } else {
            HashSet::new()
        };
        packs.retain(|p| {
            let stem = p
                .base
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            let kept: &[&str] = if cruft {
                &["keep", "promisor"]
            } else {
                &["keep", "promisor", "mtimes"]
            };
            p.size <= max_size
                && !covered.contains(&format!("{stem}.idx"))
                && kept
                    .iter()
                    .all(|ext| !names.contains(&format!("{stem}.{ext}")))
        });
        Ok(packs)
    }

    /// The index file names (`pack-<checksum>.idx`) the multi-pack index
    /// covers, or why it cannot be read.
    fn multi_pack_index_packs(&self) -> std::result::Result<HashSet<String>, DamagedPack> {
        let path = self.objects_dir().join("pack").join(MULTI_PACK_INDEX);
        let midx = gix_pack::multi_index::File::at(&path, None).map_err(|e| DamagedPack {
            pack: path.clone(),
            object: None,
            reason: format!("the multi-pack index cannot be read: {e}"),
        })?;
        Ok(midx
            .index_names()
            .iter()
            .filter_map(|n| n.file_name()?.to_str().map(str::to_owned))
            .collect())
    }

    /// Writes the objects of `packs` as one new pack (durably), then deletes
    /// the packs it read. A damaged pack is left out (and not deleted).
    /// `progress(1)` is called as each pack has been read.
    fn merge_pack_files(&self, packs: &[PackFiles], progress: &dyn Fn(u64)) -> Result<Merged> {
        let mut builder = PackBuilder::new();
        let mut seen: HashSet<ObjectId> = HashSet::new();
        let mut merged = Vec::with_capacity(packs.len());
        let mut damaged = Vec::new();
        for pack in packs {
            progress(1);
            match scan_pack(pack, &seen, true) {
                Ok(scan) => {
                    for entry in scan.copied {
                        if seen.insert(entry.id) {
                            builder.add_raw(entry.id, entry.header, entry.size, &entry.body)?;
                        }
                    }
                    merged.push(pack);
                }
                // Deleted by someone else (git gc) since the listing: its
                // objects are wherever that process put them.
                Err(CopyError::Gone) => {}
                Err(CopyError::Damaged(d)) => damaged.push(d),
            }
        }
        if builder.len() == 0 {
            return Ok(Merged {
                damaged,
                ..Merged::default()
            });
        }
        let built = builder.finish()?;
        let new_pack = self.install_pack(&built, true)?;
        for pack in &merged {
            if pack.with("pack") == new_pack {
                continue;
            }
            // The index first: a scan that no longer sees it never tries
            // the data file.
            for extension in ["idx", "pack", "rev", "bitmap"] {
                remove_if_present(&pack.with(extension))?;
            }
        }
        Ok(Merged {
            objects: built.objects,
            packs: merged.len(),
            written: true,
            damaged,
        })
    }
}

/// The multi-pack index's file name in `objects/pack`.
const MULTI_PACK_INDEX: &str = "multi-pack-index";

/// What one merge did.
#[derive(Default)]
struct Merged {
    objects: usize,
    packs: usize,
    written: bool,
    damaged: Vec<DamagedPack>,
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
