//! Compaction: loose objects into a pack, then every pack up to a size into
//! one, each object written once; objects no root reaches are dropped once
//! they are older than a grace period (git's `gc.pruneExpire`), and kept
//! until then in a cruft pack that remembers their age.
//!
//! What may be deleted, and why it is safe:
//!
//! - **A second copy** of an object (two packs holding it, e.g. an append
//!   retried after a lost race, or two transfers of the same object): the
//!   new pack holds one copy, and is on disk (fsynced) before any old pack
//!   goes. Readers never miss it.
//! - **An unreachable object last written longer ago than the grace
//!   period** (default [`DEFAULT_PRUNE_GRACE`], 14 days). Unreachable means
//!   that no ref, reflog entry, `HEAD` or `*_HEAD` file reaches it
//!   ([`crate::reach`]); a repository with roots larder does not read (an
//!   index, linked worktrees) or without all its objects (shallow, partial
//!   clones), a damaged pack, or a reachable commit, tree or tag that
//!   cannot be read, and nothing unreachable is dropped
//!   ([`Consolidation::prune_skipped`]). The grace period is what makes it
//!   safe while others write: every larder writer puts its objects on disk
//!   (a new pack, or a loose file) *before* it moves the ref that makes
//!   them reachable, so a concurrent appender's, merger's or transfer's
//!   objects are unreachable for a moment — and they are young: their
//!   pack's time is the time they were written. An object's age is the
//!   time of the pack holding it (the newest copy counts; a merged pack is
//!   as young as the merge, a pack of loose objects as its newest loose
//!   file), or the time a cruft pack recorded for it.
//!
//! What remains is git's own race: a writer that finds an old unreachable
//! object already present, does not write it again, and refers to it from
//! a ref it moves at the very moment compaction drops it. larder's
//! transfers copy an object that is present only in a cruft pack again
//! ([`GitRepo::cruft_object_ids`]), so they never refer to a copy that may
//! go; objects written one by one through gix (snapshots, lock records)
//! are skipped when present, as with git. `Unreachable::DropOlderThan(
//! Duration::ZERO)` is `git gc --prune=now`: only for a repository nobody
//! else is writing to.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use gix::ObjectId;
use gix_pack::data::entry::Header;

use crate::consolidate::{PackFiles, remove_if_present};
use crate::cruft;
use crate::pack::{PackBuilder, RECOMPRESS_MIN};
use crate::pack_scan::{CopyError, RawEntry, scan_pack};
use crate::{Consolidation, ConsolidationPolicy, GitError, GitRepo, Result};

/// How long an unreachable object is kept after it was last written
/// before compaction drops it: git's default `gc.pruneExpire` (two weeks).
pub const DEFAULT_PRUNE_GRACE: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// What compaction does with objects that no root (ref, reflog entry,
/// `HEAD` or `*_HEAD` file) reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreachable {
    /// Keep them all, in the merged pack (what compaction did before
    /// pruning existed).
    Keep,
    /// Drop those last written longer ago than this; keep the younger ones
    /// in a cruft pack that records each one's time, so that rewriting
    /// packs does not make them young again. See the module documentation
    /// for why this is safe while others write, and what is left.
    DropOlderThan(Duration),
}

/// How [`GitRepo::compact_opts`] compacts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CompactOptions {
    /// Packs larger than this are left alone (and objects in them are
    /// never dropped).
    pub max_size: u64,
    /// What happens to unreachable objects.
    pub unreachable: Unreachable,
}

impl CompactOptions {
    /// Packs up to `max_size`; unreachable objects dropped after
    /// [`DEFAULT_PRUNE_GRACE`].
    pub fn new(max_size: u64) -> Self {
        Self {
            max_size,
            unreachable: Unreachable::DropOlderThan(DEFAULT_PRUNE_GRACE),
        }
    }
}

impl Default for CompactOptions {
    /// The consolidation policy's `max_size` (64 MiB), pruning after two
    /// weeks.
    fn default() -> Self {
        Self::new(ConsolidationPolicy::default().max_size)
    }
}

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
        let mut newest: Option<SystemTime> = None;
        for id in &ids {
            let hex = id.to_string();
            let modified = std::fs::metadata(self.objects_dir().join(&hex[..2]).join(&hex[2..]))
                .and_then(|m| m.modified())
                // Unknown: as young as can be.
                .unwrap_or_else(|_| SystemTime::now());
            newest = newest.max(Some(modified));
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
        // The pack is as old as its newest object, not younger: the age
        // compaction's grace period measures (see the module
        // documentation). Best effort — a pack left at "now" only makes
        // its objects wait longer.
        if let (Some(pack), Some(newest)) = (&pack, newest)
            && let Ok(file) = std::fs::File::open(pack)
        {
            let _ = file.set_modified(newest);
        }
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

    /// Compacts any repository, bare or not, whatever writes to it, with
    /// [`CompactOptions::new`]`(max_size)`: unreachable objects are
    /// dropped once older than [`DEFAULT_PRUNE_GRACE`]. See
    /// [`GitRepo::compact_opts`].
    pub fn compact(&self, max_size: u64) -> Result<Consolidation> {
        self.compact_with(max_size, &|_| {})
    }

    /// [`GitRepo::compact`], calling `progress(n)` as each `n` more packs
    /// have been read for the merge (for a progress display; the total is
    /// [`GitRepo::pack_count`] beforehand, give or take one for the loose
    /// objects' pack).
    pub fn compact_with(&self, max_size: u64, progress: &dyn Fn(u64)) -> Result<Consolidation> {
        self.compact_opts(&CompactOptions::new(max_size), progress)
    }

    /// Compacts: waits for a concurrent consolidation, packs every loose
    /// object, then rewrites every pack of at most `options.max_size`
    /// bytes — cruft packs included when unreachable objects may be
    /// dropped — as one pack of the objects some root reaches and, if any
    /// unreachable object is young enough to keep, one cruft pack. Each
    /// object is written once; large objects that were compressed at
    /// zlib's fastest level are compressed again at its default level.
    /// Unreachable objects older than the grace period are dropped (see
    /// the module documentation for when and why that is safe).
    ///
    /// Packs git marked to stay (`.keep`, `.promisor`) or named by a
    /// `multi-pack-index` are left alone, and damaged packs are skipped and
    /// named in [`Consolidation::damaged`] (and then nothing unreachable is
    /// dropped). Every reachable object stays readable throughout: the new
    /// packs are on disk, fsynced, before any old one is deleted. A
    /// repository that is already one pack (plus at most one cruft pack
    /// whose objects all stay) is left as it is.
    pub fn compact_opts(
        &self,
        options: &CompactOptions,
        progress: &dyn Fn(u64),
    ) -> Result<Consolidation> {
        let _lock = self.consolidation_lock(true)?;
        let loose_objects = self.pack_loose_objects()?.objects;
        let mut done = self.rewrite_locked(options, progress)?;
        done.loose_objects = loose_objects;
        done.temp_files_removed = self.remove_stale_temp_packs(STALE_TEMP_AGE);
        Ok(done)
    }

    /// The rewrite of [`GitRepo::compact_opts`], with the consolidation
    /// lock held and loose objects packed.
    fn rewrite_locked(
        &self,
        options: &CompactOptions,
        progress: &dyn Fn(u64),
    ) -> Result<Consolidation> {
        let now = SystemTime::now();
        let grace = match options.unreachable {
            Unreachable::Keep => None,
            Unreachable::DropOlderThan(grace) => Some(grace),
        };
        let mut blocked = grace.and_then(|_| self.prune_blocker());
        let packs = self.mergeable_packs_with(options.max_size, grace.is_some())?;

        // Every entry of every pack, the first copy of each object kept.
        let mut entries: Vec<Entry> = Vec::new();
        let mut index_of: HashMap<ObjectId, usize> = HashMap::new();
        let mut seen: HashSet<ObjectId> = HashSet::new();
        let mut sources: Vec<(&PackFiles, bool)> = Vec::new();
        let mut damaged = Vec::new();
        let mut copies = 0;
        for pack in &packs {
            progress(1);
            let scan = match scan_pack(pack, &seen, true) {
                Ok(scan) => scan,
                // Deleted by someone else (git gc) since the listing.
                Err(CopyError::Gone) => continue,
                Err(CopyError::Damaged(d)) => {
                    damaged.push(d);
                    continue;
                }
            };
            let pack_time = pack.modified.unwrap_or(now);
            let mtimes_path = pack.with("mtimes");
            let is_cruft = mtimes_path.exists();
            // A cruft pack's per-object times; an unusable `.mtimes` file
            // counts every object as old as the pack file, never older.
            let times = if is_cruft {
                cruft::decode(&mtimes_path, &scan.ids, &scan.checksum).unwrap_or_default()
            } else {
                HashMap::new()
            };
            for raw in scan.copied {
                seen.insert(raw.id);
                index_of.insert(raw.id, entries.len());
                entries.push(Entry {
                    raw,
                    time: SystemTime::UNIX_EPOCH,
                    in_plain_pack: false,
                });
            }
            copies += scan.ids.len();
            for id in &scan.ids {
                if let Some(&i) = index_of.get(id) {
                    let entry = &mut entries[i];
                    entry.time = entry.time.max(times.get(id).copied().unwrap_or(pack_time));
                    entry.in_plain_pack |= !is_cruft;
                }
            }
            sources.push((pack, is_cruft));
        }
        let mut done = Consolidation {
            damaged,
            ..Consolidation::default()
        };
        if sources.is_empty() {
            return Ok(done);
        }
        if grace.is_some() && blocked.is_none() && !done.damaged.is_empty() {
            blocked =
                Some("a pack is damaged (see `damaged`): what its objects reach is unknown".into());
        }
        // Commits and trees are read from the entries in memory where they
        // are whole (larder never writes deltas), else through the store.
        let mut inflate = gix::zlib::Inflate::default();
        let mut local = |id: ObjectId, buf: &mut Vec<u8>| {
            let raw = &entries[*index_of.get(&id)?].raw;
            let kind = base_kind(raw.header)?;
            inflate_into(&mut inflate, raw, buf).then_some(kind)
        };
        let mut roots = None;
        let reachable = match (grace, &blocked) {
            (Some(_), None) => match self.roots().and_then(|r| {
                let set = self.reachable(&r, &mut local);
                roots = Some(r);
                set
            }) {
                Ok(set) => Some(set),
                Err(reason) => {
                    blocked = Some(reason);
                    None
                }
            },
            _ => None,
        };

        // Where each object goes.
        let outputs: Vec<Output> = entries
            .iter()
            .map(|e| match (&reachable, grace) {
                (Some(reachable), Some(grace)) => {
                    if reachable.contains(&e.raw.id) {
                        Output::Main
                    } else if now.duration_since(e.time).is_ok_and(|age| age >= grace) {
                        Output::Drop
                    } else {
                        Output::Cruft(cruft::to_mtime(e.time))
                    }
                }
                // Reachability unknown or not asked for: every object stays
                // in the kind of pack it was in.
                _ if e.in_plain_pack => Output::Main,
                _ => Output::Cruft(cruft::to_mtime(e.time)),
            })
            .collect();
        // How each is written: a delta whose base does not land in the same
        // new pack is written whole (a pack must hold its deltas' bases);
        // a large object at zlib's fastest level is compressed again.
        let writes: Vec<Write> = entries
            .iter()
            .zip(&outputs)
            .map(|(e, out)| match e.raw.header {
                _ if *out == Output::Drop => Write::Skip,
                Header::RefDelta { base_id } => match index_of.get(&base_id) {
                    Some(&b) if outputs[b].same_pack(*out) => Write::Verbatim,
                    _ => Write::Whole,
                },
                _ if e.raw.size >= RECOMPRESS_MIN && fastest_level(&e.raw.body) => {
                    Write::Recompress
                }
                _ => Write::Verbatim,
            })
            .collect();

        let dropped = outputs.iter().filter(|o| **o == Output::Drop).count();
        let plain_sources = sources.iter().filter(|(_, c)| !c).count();
        let unchanged = dropped == 0
            && copies == entries.len()
            && plain_sources <= 1
            && sources.len() - plain_sources <= 1
            && writes.iter().all(|w| *w == Write::Verbatim)
            && entries
                .iter()
                .zip(&outputs)
                .all(|(e, out)| (*out == Output::Main) == e.in_plain_pack);
        if unchanged {
            done.unreachable_kept = outputs.iter().filter(|o| o.is_cruft()).count();
            done.prune_skipped = blocked;
            return Ok(done);
        }

        let mut main = PackBuilder::new();
        let mut kept = PackBuilder::new();
        let mut kept_times: Vec<(ObjectId, u32)> = Vec::new();
        let mut buf = Vec::new();
        // Each entry's bytes are let go once copied, so the old packs' bytes
        // and the new packs' are not both held whole.
        for ((entry, out), write) in entries.iter_mut().zip(&outputs).zip(&writes) {
            let builder = match out {
                Output::Drop => continue,
                Output::Main => &mut main,
                Output::Cruft(time) => {
                    kept_times.push((entry.raw.id, *time));
                    &mut kept
                }
            };
            let raw = &mut entry.raw;
            match write {
                Write::Skip => {}
                Write::Verbatim => builder.add_raw(raw.id, raw.header, raw.size, &raw.body)?,
                Write::Whole => {
                    // The old packs are all still there.
                    let object = self.find_any(raw.id)?;
                    let thorough = object.data.len() as u64 >= RECOMPRESS_MIN;
                    builder.add_object_with(raw.id, object.kind, &object.data, thorough)?;
                }
                Write::Recompress => match base_kind(raw.header)
                    .filter(|_| inflate_into(&mut inflate, raw, &mut buf))
                {
                    Some(kind) => {
                        builder.add_object_with(raw.id, kind, &buf, true)?;
                        done.recompressed += 1;
                    }
                    // Not the stream it claimed to be: copied as it is
                    // (its CRC-32 matched, so it is what was written).
                    None => builder.add_raw(raw.id, raw.header, raw.size, &raw.body)?,
                },
            }
            raw.body = Vec::new();
        }
        let mut main_pack = None;
        let mut cruft_pack = None;
        if main.len() > 0 {
            let built = main.finish()?;
            done.objects += built.objects;
            main_pack = Some(self.install_pack(&built, true)?);
        }
        if kept.len() > 0 {
            let built = kept.finish()?;
            kept_times.sort_by_key(|(id, _)| *id);
            let times: Vec<u32> = kept_times.iter().map(|(_, t)| *t).collect();
            let mtimes = cruft::encode(&times, &built.checksum)?;
            done.objects += built.objects;
            done.unreachable_kept = built.objects;
            cruft_pack = Some(self.install_pack_with(&built, true, Some(&mtimes))?);
        }
        #[cfg(test)]
        tests::BEFORE_DELETE.with(|hook| hook.take().map(|h| h(self)));
        // Refs may have moved while the packs were written: if one reaches
        // an object about to be dropped now, every old pack stays (the new
        // ones hold copies; the next compaction decides again).
        if let Some(before) = roots.as_ref().filter(|_| dropped > 0) {
            let ids: HashSet<ObjectId> = entries
                .iter()
                .zip(&outputs)
                .filter(|(_, out)| **out == Output::Drop)
                .map(|(e, _)| e.raw.id)
                .collect();
            if let Err(reason) = self.confirm_unreachable(before, &ids) {
                done.packs_written =
                    usize::from(main_pack.is_some()) + usize::from(cruft_pack.is_some());
                done.duplicates_dropped = copies - entries.len();
                done.prune_skipped = Some(format!(
                    "{reason}: the old packs stay until the next compaction"
                ));
                return Ok(done);
            }
        }
        // Only now, with the new packs on disk, do the old ones go — each
        // only if it is still the file that was read: a writer may have
        // put a pack of the same bytes (so the same name) there since,
        // whose objects it is about to refer to. (A pack rewritten byte
        // for byte by this compaction is the new pack itself.)
        for (pack, _) in &sources {
            let data = pack.with("pack");
            if Some(&data) == main_pack.as_ref() || Some(&data) == cruft_pack.as_ref() {
                continue;
            }
            let now_modified = std::fs::metadata(&data).and_then(|m| m.modified()).ok();
            if now_modified.is_some() && now_modified != pack.modified {
                continue;
            }
            // The index first: a scan that no longer sees it never tries
            // the data file.
            for extension in ["idx", "pack", "rev", "bitmap", "mtimes"] {
                remove_if_present(&pack.with(extension))?;
            }
        }
        done.packs_merged = sources.len();
        done.packs_written = usize::from(main_pack.is_some()) + usize::from(cruft_pack.is_some());
        done.unreachable_dropped = dropped;
        done.duplicates_dropped = copies - entries.len();
        done.prune_skipped = blocked;
        Ok(done)
    }
}

/// One object of the packs being compacted: its first copy, the newest
/// time of any copy, and whether any copy was in a plain (not cruft) pack.
struct Entry {
    raw: RawEntry,
    time: SystemTime,
    in_plain_pack: bool,
}

/// Where compaction puts an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Output {
    /// The pack of reachable objects.
    Main,
    /// The cruft pack, with this time (seconds since the epoch).
    Cruft(u32),
    /// Nowhere: unreachable and older than the grace period.
    Drop,
}

impl Output {
    fn is_cruft(self) -> bool {
        matches!(self, Output::Cruft(_))
    }

    /// Whether objects going to `self` and `other` end up in the same pack.
    fn same_pack(self, other: Output) -> bool {
        matches!(
            (self, other),
            (Output::Main, Output::Main) | (Output::Cruft(_), Output::Cruft(_))
        )
    }
}

/// How compaction writes an entry it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Write {
    /// Not at all (dropped).
    Skip,
    /// Its compressed bytes as they are.
    Verbatim,
    /// Read whole through the object store and compressed afresh: a delta
    /// whose base lands in another pack or is dropped.
    Whole,
    /// Inflated and compressed again at zlib's default level.
    Recompress,
}

/// Whether a zlib stream says it was made at the fastest level (`FLEVEL`
/// 0 in its second header byte): what larder's appends and transfers
/// write. Streams made at git's default level say 2, and are left alone.
fn fastest_level(body: &[u8]) -> bool {
    matches!(body, [cmf, flg, ..] if cmf & 0x0f == 8 && flg >> 6 == 0)
}

/// The object kind of a whole (not delta) entry.
fn base_kind(header: Header) -> Option<gix::objs::Kind> {
    match header {
        Header::Blob => Some(gix::objs::Kind::Blob),
        Header::Tree => Some(gix::objs::Kind::Tree),
        Header::Commit => Some(gix::objs::Kind::Commit),
        Header::Tag => Some(gix::objs::Kind::Tag),
        _ => None,
    }
}

/// Inflates a whole entry into `buf`; false if the stream does not inflate
/// to exactly the size its header gives.
fn inflate_into(inflate: &mut gix::zlib::Inflate, raw: &RawEntry, buf: &mut Vec<u8>) -> bool {
    let Ok(size) = usize::try_from(raw.size) else {
        return false;
    };
    // zlib expands by at most ~1032×: a header claiming more is forged,
    // and must not size an allocation.
    if size > raw.body.len().saturating_mul(1032).saturating_add(64) {
        return false;
    }
    buf.clear();
    buf.resize(size, 0);
    inflate.reset();
    matches!(
        inflate.once(&raw.body, buf),
        Ok((gix::zlib::Status::StreamEnd, _, written)) if written == size
    )
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

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::{EntryKind, Expected, ObjectBatch, TreeEntry};

    type Hook = Box<dyn FnOnce(&GitRepo)>;

    thread_local! {
        /// Runs once, on the compacting thread, after the new packs are
        /// installed and before the old ones go.
        pub(super) static BEFORE_DELETE: RefCell<Option<Hook>> = RefCell::new(None);
    }

    /// A commit of one file, written as one pack; returns the commit and
    /// the pack.
    fn commit_pack(repo: &GitRepo, text: &str) -> (ObjectId, PathBuf) {
        let mut batch = ObjectBatch::new();
        let blob = batch.blob(text.as_bytes().to_vec()).unwrap();
        let entry = TreeEntry {
            name: "f".into(),
            kind: EntryKind::Blob,
            id: blob,
        };
        let tree = batch.tree(&[entry]).unwrap();
        let commit = batch.commit(tree, &[], "m", None, 1_700_000_000).unwrap();
        (commit, repo.write_batch(&batch, false).unwrap().unwrap())
    }

    /// A ref moved, while compaction writes, to an object it found old and
    /// unreachable: the object stays, and the repository is whole.
    #[test]
    fn an_object_a_ref_reaches_by_the_time_of_deletion_is_not_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let repo = GitRepo::init_bare(dir.path()).unwrap();
        let (kept, _) = commit_pack(&repo, "reachable");
        repo.update_ref("refs/heads/main", Expected::MustNotExist, kept, "t")
            .unwrap();
        let (old, pack) = commit_pack(&repo, "old and unreachable");
        std::fs::File::open(&pack)
            .unwrap()
            .set_modified(SystemTime::now() - Duration::from_secs(30 * 24 * 3600))
            .unwrap();
        BEFORE_DELETE.with(|hook| {
            *hook.borrow_mut() = Some(Box::new(move |repo: &GitRepo| {
                repo.update_ref("refs/heads/reused", Expected::MustNotExist, old, "t")
                    .unwrap();
            }))
        });
        let done = repo
            .compact_opts(&CompactOptions::new(u64::MAX), &|_| {})
            .unwrap();
        assert_eq!(done.unreachable_dropped, 0, "{done:?}");
        assert!(done.prune_skipped.is_some(), "{done:?}");
        larder_testkit::fixtures::assert_fsck(dir.path());

        // The next compaction sees the ref from the start: nothing to drop,
        // and the duplicates go.
        let again = GitRepo::open(dir.path())
            .unwrap()
            .compact_opts(&CompactOptions::new(u64::MAX), &|_| {})
            .unwrap();
        assert_eq!(again.unreachable_dropped, 0, "{again:?}");
        larder_testkit::fixtures::assert_fsck(dir.path());
    }
}
