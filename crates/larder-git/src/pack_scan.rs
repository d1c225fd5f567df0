//! Reading one pack's entries for a merge: each entry checked against
//! its index (inside the pack, CRC-32 matching) and, when asked, copied
//! out verbatim — the raw material of consolidation and compaction.
//!
//! Small packs, nearly all that consolidation merges, are read into memory
//! rather than mapped: mapping and unmapping a small file costs more than
//! copying it, and every unmap in a multi-threaded process interrupts its
//! other cores to flush their address translations (measured: with 8
//! appending threads, unmapping merged packs took about a tenth of the
//! process's time).

use std::collections::{HashMap, HashSet};
use std::path::Path;

use gix::ObjectId;
use gix_pack::data::entry::Header;

use crate::consolidate::{DamagedPack, PackFiles};

pub(crate) enum CopyError {
    /// The pack was deleted since it was listed.
    Gone,
    /// The pack's index or an entry is damaged.
    Damaged(DamagedPack),
}

/// One entry read from a pack, ready to be written into another.
pub(crate) struct RawEntry {
    pub(crate) id: ObjectId,
    /// A base kind, or `RefDelta` (offset deltas are turned into these).
    pub(crate) header: Header,
    /// The size of the object (or delta) once inflated.
    pub(crate) size: u64,
    /// The entry's zlib stream.
    pub(crate) body: Vec<u8>,
}

/// What reading one pack found.
pub(crate) struct Scan {
    /// Entries checked.
    pub(crate) entries: usize,
    /// Every id the index lists, in index (sorted) order.
    pub(crate) ids: Vec<ObjectId>,
    /// The pack's checksum, as its index records it.
    pub(crate) checksum: ObjectId,
    /// Entries not in `seen`, copied out (when asked to copy).
    pub(crate) copied: Vec<RawEntry>,
}

/// Reads every entry of `pack`, checking that it lies inside the pack and
/// matches its index's CRC-32; with `copy`, returns the entries not yet
/// `seen`, verbatim except that offset deltas become reference deltas.
/// Nothing is returned for a pack with any damaged entry, so a merge never
/// takes half of a damaged pack.
pub(crate) fn scan_pack(
    pack: &PackFiles,
    seen: &HashSet<ObjectId>,
    copy: bool,
) -> std::result::Result<Scan, CopyError> {
    scan_pack_reading_up_to(pack, seen, copy, READ_WHOLE_UP_TO)
}

/// Packs and indexes up to this size are read whole rather than mapped.
const READ_WHOLE_UP_TO: u64 = 1 << 20;

/// [`scan_pack`], reading files of up to `read_whole` bytes into memory
/// and mapping larger ones.
fn scan_pack_reading_up_to(
    pack: &PackFiles,
    seen: &HashSet<ObjectId>,
    copy: bool,
    read_whole: u64,
) -> std::result::Result<Scan, CopyError> {
    let idx_path = pack.with("idx");
    let pack_path = pack.with("pack");
    if !idx_path.exists() || !pack_path.exists() {
        return Err(CopyError::Gone);
    }
    let damaged = |object: Option<ObjectId>, reason: String| {
        CopyError::Damaged(DamagedPack {
            pack: pack_path.clone(),
            object,
            reason,
        })
    };
    let unreadable = |path: &Path, what: String| {
        if !path.exists() {
            return CopyError::Gone;
        }
        damaged(None, what)
    };
    let index_error = |e: String| {
        unreadable(
            &idx_path,
            format!("its index {} cannot be read: {e}", idx_path.display()),
        )
    };
    let data_error = |e: String| unreadable(&pack_path, format!("it cannot be read: {e}"));
    let kind = gix::hash::Kind::Sha1;
    let small = |path: &Path| std::fs::metadata(path).is_ok_and(|m| m.len() <= read_whole);
    if small(&idx_path) && small(&pack_path) {
        let index_bytes = std::fs::read(&idx_path).map_err(|e| index_error(e.to_string()))?;
        let index = gix_pack::index::File::from_data(index_bytes, idx_path.clone(), kind)
            .map_err(|e| index_error(e.to_string()))?;
        let data_bytes = std::fs::read(&pack_path).map_err(|e| data_error(e.to_string()))?;
        let data = gix_pack::data::File::from_data(data_bytes, pack_path.clone(), kind)
            .map_err(|e| data_error(e.to_string()))?;
        scan_entries(&index, &data, seen, copy, &damaged)
    } else {
        let index =
            gix_pack::index::File::at(&idx_path, kind).map_err(|e| index_error(e.to_string()))?;
        let data =
            gix_pack::data::File::at(&pack_path, kind).map_err(|e| data_error(e.to_string()))?;
        scan_entries(&index, &data, seen, copy, &damaged)
    }
}

/// [`scan_pack`] on an opened pack and index.
fn scan_entries<I: gix_pack::FileData + Sync, D: gix_pack::FileData>(
    index: &gix_pack::index::File<I>,
    data: &gix_pack::data::File<D>,
    seen: &HashSet<ObjectId>,
    copy: bool,
    damaged: &dyn Fn(Option<ObjectId>, String) -> CopyError,
) -> std::result::Result<Scan, CopyError> {
    if data.num_objects() != index.num_objects() {
        return Err(damaged(
            None,
            format!(
                "it holds {} entries, its index {}",
                data.num_objects(),
                index.num_objects()
            ),
        ));
    }
    let mut entries: Vec<gix_pack::index::Entry> = index.iter().collect();
    let ids: Vec<ObjectId> = entries.iter().map(|e| e.oid).collect();
    let checksum = index.pack_checksum();
    entries.sort_by_key(|e| e.pack_offset);
    let id_at: HashMap<u64, ObjectId> = entries.iter().map(|e| (e.pack_offset, e.oid)).collect();
    let mut copied = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let end = entries
            .get(i + 1)
            .map_or(data.pack_end() as u64, |next| next.pack_offset);
        let len = end.saturating_sub(entry.pack_offset) as usize;
        if data
            .entry_slice(entry.pack_offset..end)
            .is_none_or(|s| s.len() != len)
        {
            return Err(damaged(
                Some(entry.oid),
                "entry lies outside the pack".into(),
            ));
        }
        if let Some(expected) = entry.crc32
            && data.entry_crc32(entry.pack_offset, len) != expected
        {
            return Err(damaged(
                Some(entry.oid),
                "CRC-32 does not match the index".into(),
            ));
        }
        if !copy || seen.contains(&entry.oid) {
            continue;
        }
        let parsed = data
            .entry(entry.pack_offset)
            .map_err(|e| damaged(Some(entry.oid), e.to_string()))?;
        let header = match parsed.header {
            Header::OfsDelta { base_distance } => {
                let base = Header::verified_base_pack_offset(entry.pack_offset, base_distance)
                    .and_then(|offset| id_at.get(&offset))
                    .ok_or_else(|| damaged(Some(entry.oid), "delta base is not an entry".into()))?;
                Header::RefDelta { base_id: *base }
            }
            other => other,
        };
        let body = data
            .entry_slice(parsed.data_offset..end)
            .ok_or_else(|| damaged(Some(entry.oid), "entry data lies outside the pack".into()))?;
        copied.push(RawEntry {
            id: entry.oid,
            header,
            size: parsed.decompressed_size,
            body: body.to_vec(),
        });
    }
    Ok(Scan {
        entries: entries.len(),
        ids,
        checksum,
        copied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GitRepo, ObjectBatch};

    /// A repository holding one pack of a few blobs, and that pack.
    fn one_pack() -> (tempfile::TempDir, PackFiles) {
        let dir = tempfile::tempdir().unwrap();
        let repo = GitRepo::init_bare(dir.path()).unwrap();
        let mut batch = ObjectBatch::new();
        for n in 0..20u32 {
            batch
                .blob(format!("blob {n} {}", "x".repeat(n as usize * 50)).into_bytes())
                .unwrap();
        }
        let pack = repo.write_batches(&[&batch], false).unwrap().unwrap();
        let size = std::fs::metadata(&pack).unwrap().len();
        let files = PackFiles {
            base: pack.with_extension(""),
            size,
            modified: None,
        };
        (dir, files)
    }

    fn summary(scan: &Scan) -> Vec<(ObjectId, u64, Vec<u8>)> {
        scan.copied
            .iter()
            .map(|e| (e.id, e.size, e.body.clone()))
            .collect()
    }

    /// Reading a pack into memory and mapping it find the same entries,
    /// and the same damage.
    #[test]
    fn read_and_mapped_packs_scan_alike() {
        let (_dir, pack) = one_pack();
        let seen = HashSet::new();
        let read = scan_pack_reading_up_to(&pack, &seen, true, u64::MAX)
            .ok()
            .unwrap();
        let mapped = scan_pack_reading_up_to(&pack, &seen, true, 0).ok().unwrap();
        assert_eq!(read.entries, 20);
        assert_eq!(read.ids, mapped.ids);
        assert_eq!(read.checksum, mapped.checksum);
        assert_eq!(summary(&read), summary(&mapped));

        // One flipped byte inside the entries: the same entry is named
        // damaged both ways.
        let path = pack.with("pack");
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[40] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let damage = |limit| match scan_pack_reading_up_to(&pack, &seen, true, limit) {
            Err(CopyError::Damaged(d)) => (d.object, d.reason),
            Err(CopyError::Gone) => panic!("reported gone"),
            Ok(_) => panic!("damage not found"),
        };
        let read = damage(u64::MAX);
        assert!(read.0.is_some(), "{read:?}");
        assert_eq!(read, damage(0));
    }
}
