//! Cruft packs: packs of unreachable objects with a `.mtimes` file, git's
//! format (git 2.37+, `Documentation/gitformat-pack.txt`), so that each
//! object keeps the time it was last written while packs are rewritten.
//!
//! Compaction keeps unreachable objects younger than its grace period in
//! one, because merging packs would otherwise reset every object's age to
//! the merge's time, and nothing unreachable would ever grow old enough to
//! drop. git reads the same file: `git gc` expires those objects by the
//! same times.
//!
//! Layout (all numbers big-endian): `MTME`, version 1, hash id 1 (SHA-1);
//! one 32-bit mtime (seconds since the Unix epoch) per object, in the
//! index's (sorted id) order; the pack's checksum; the SHA-1 of everything
//! before it.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gix::ObjectId;

use crate::{GitError, GitRepo, Result};

const MAGIC: &[u8; 4] = b"MTME";
const HEADER_LEN: usize = 12;
const HASH_LEN: usize = 20;

/// `time` as a `.mtimes` entry: seconds since the epoch, clamped to 32 bits
/// (a time before 1970 is 0, one after 2106 the largest).
pub(crate) fn to_mtime(time: SystemTime) -> u32 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}

/// A `.mtimes` entry as a time.
pub(crate) fn from_mtime(mtime: u32) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(mtime))
}

/// The `.mtimes` file for a pack whose objects, sorted by id, have
/// `mtimes`, and whose checksum is `pack_checksum`.
pub(crate) fn encode(mtimes: &[u32], pack_checksum: &ObjectId) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER_LEN + 4 * mtimes.len() + 2 * HASH_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&1u32.to_be_bytes());
    out.extend_from_slice(&1u32.to_be_bytes());
    for mtime in mtimes {
        out.extend_from_slice(&mtime.to_be_bytes());
    }
    out.extend_from_slice(pack_checksum.as_bytes());
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(&out);
    let checksum = hasher
        .try_finalize()
        .map_err(|e| GitError::gix("hashing an .mtimes file", e))?;
    out.extend_from_slice(checksum.as_bytes());
    Ok(out)
}

/// Each object's mtime from the `.mtimes` file at `path`, for the pack
/// whose index lists `ids` (in index order). `Err` says why the file
/// cannot be used (wrong size, magic, version or hash; wrong pack; bad
/// checksum); the caller then takes the pack file's own time for every
/// object, which is never older than any of them.
pub(crate) fn decode(
    path: &Path,
    ids: &[ObjectId],
    pack_checksum: &ObjectId,
) -> std::result::Result<HashMap<ObjectId, SystemTime>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("reading it: {e}"))?;
    let expected = HEADER_LEN + 4 * ids.len() + 2 * HASH_LEN;
    if bytes.len() != expected {
        return Err(format!(
            "{} bytes for {} objects, expected {expected}",
            bytes.len(),
            ids.len()
        ));
    }
    let word = |at: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(&bytes[at..at + 4]);
        u32::from_be_bytes(b)
    };
    if &bytes[..4] != MAGIC || word(4) != 1 || word(8) != 1 {
        return Err("not a version-1 SHA-1 .mtimes file".into());
    }
    let trailer = HEADER_LEN + 4 * ids.len();
    if &bytes[trailer..trailer + HASH_LEN] != pack_checksum.as_bytes() {
        return Err("it belongs to another pack".into());
    }
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(&bytes[..trailer + HASH_LEN]);
    let checksum = hasher
        .try_finalize()
        .map_err(|e| format!("hashing it: {e}"))?;
    if checksum.as_bytes() != &bytes[trailer + HASH_LEN..] {
        return Err("its checksum does not match".into());
    }
    Ok(ids
        .iter()
        .enumerate()
        .map(|(i, id)| (*id, from_mtime(word(HEADER_LEN + 4 * i))))
        .collect())
}

impl GitRepo {
    /// The ids of every object in a cruft pack (one with a `.mtimes` file,
    /// git's or larder's). Compaction keeps unreachable objects there, and
    /// drops them once they are older than its grace period: a transfer
    /// that finds an object only there copies it again rather than refer
    /// to a copy that may be about to go (see `docs/wal.md`, compaction).
    /// Best effort: a cruft index that cannot be read adds nothing.
    pub fn cruft_object_ids(&self) -> std::collections::HashSet<ObjectId> {
        let mut ids = std::collections::HashSet::new();
        let dir = self.objects_dir().join("pack");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return ids;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_none_or(|x| x != "mtimes") {
                continue;
            }
            if let Ok(index) =
                gix_pack::index::File::at(path.with_extension("idx"), gix::hash::Kind::Sha1)
            {
                ids.extend(index.iter().map(|e| e.oid));
            }
        }
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_mtimes_file_decodes_to_the_same_times_and_rejects_damage() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pack-x.mtimes");
        let ids: Vec<ObjectId> = (1u8..=3)
            .map(|b| ObjectId::from_bytes_or_panic(&[b; 20]))
            .collect();
        let pack = ObjectId::from_bytes_or_panic(&[9; 20]);
        let mtimes = [0, 1_700_000_000, u32::MAX];
        std::fs::write(&path, encode(&mtimes, &pack).unwrap()).unwrap();
        let decoded = decode(&path, &ids, &pack).unwrap();
        for (id, mtime) in ids.iter().zip(mtimes) {
            assert_eq!(decoded[id], from_mtime(mtime));
        }
        let other = ObjectId::from_bytes_or_panic(&[8; 20]);
        assert!(
            decode(&path, &ids, &other)
                .unwrap_err()
                .contains("another pack")
        );
        assert!(decode(&path, &ids[..2], &pack).is_err());
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[14] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        assert!(decode(&path, &ids, &pack).unwrap_err().contains("checksum"));
    }
}
