//! Writing packs: one pack file plus its version-2 index, put in place
//! atomically (index renamed last).
//!
//! gix can encode pack entries, but its index writer was made for packs
//! received from a remote: it inflates and hashes every object again and
//! sets up a thread pool, which costs more than the whole write for the
//! eight small objects of a WAL append. Larder always knows each object's
//! id already, so it writes the index directly from (id, CRC-32, offset)
//! rows, using gix's entry headers, zlib and SHA-1.

use std::io::Write;
use std::path::{Path, PathBuf};

use gix::ObjectId;
use gix_pack::data::entry::Header;

use crate::{GitError, GitRepo, Result};

/// Offsets at or above this go to the index's 64-bit offset table.
const LARGE_OFFSET: u64 = 0x8000_0000;

/// Builds a pack in memory, entry by entry, remembering what the index
/// needs about each.
pub(crate) struct PackBuilder {
    pack: Vec<u8>,
    rows: Vec<Row>,
    compressor: gix::zlib::stream::deflate::Compress,
    /// zlib's default level (6), made on first use: compaction's choice
    /// for large objects (see [`RECOMPRESS_MIN`]).
    thorough: Option<gix::zlib::stream::deflate::Compress>,
    scratch: Vec<u8>,
}

/// Objects of at least this many bytes are compressed with zlib's default
/// level (6, git's `pack.compression`) when compaction writes them, instead
/// of the fastest level (1) appends and transfers use. Measured on a
/// replicated log (`larder-sync/examples/replicas.rs`): the ~45k small
/// objects of 5,000 single-event appends (commits, trees, `meta.json`,
/// chunks of a few hundred bytes) shrink by 0.6 % at level 6 — not worth
/// re-deflating on every compaction — while a 780 KiB snapshot chunk
/// shrinks by 12 %.
pub(crate) const RECOMPRESS_MIN: u64 = 4096;

struct Row {
    id: ObjectId,
    crc32: u32,
    offset: u64,
}

/// A finished pack: its bytes, its index's bytes and its checksum (which
/// names both files).
pub(crate) struct BuiltPack {
    pub(crate) pack: Vec<u8>,
    pub(crate) index: Vec<u8>,
    pub(crate) checksum: ObjectId,
    pub(crate) objects: usize,
}

impl PackBuilder {
    pub(crate) fn new() -> Self {
        Self {
            // The header's object count is filled in by `finish`.
            pack: gix_pack::data::header::encode(gix_pack::data::Version::V2, 0).to_vec(),
            rows: Vec::new(),
            compressor: gix::zlib::stream::deflate::Compress::new(
                gix::zlib::Compression::BEST_SPEED,
            ),
            thorough: None,
            scratch: Vec::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Appends a whole object, compressed with zlib's fastest level.
    pub(crate) fn add_object(
        &mut self,
        id: ObjectId,
        kind: gix::objs::Kind,
        data: &[u8],
    ) -> Result<()> {
        self.add_object_with(id, kind, data, false)
    }

    /// Appends a whole object, compressed with zlib's default level when
    /// `thorough`, else its fastest.
    pub(crate) fn add_object_with(
        &mut self,
        id: ObjectId,
        kind: gix::objs::Kind,
        data: &[u8],
        thorough: bool,
    ) -> Result<()> {
        let header = match kind {
            gix::objs::Kind::Blob => Header::Blob,
            gix::objs::Kind::Tree => Header::Tree,
            gix::objs::Kind::Commit => Header::Commit,
            gix::objs::Kind::Tag => Header::Tag,
        };
        let compressor = if thorough {
            self.thorough.get_or_insert_with(|| {
                gix::zlib::stream::deflate::Compress::new(gix::zlib::Compression::DEFAULT)
            })
        } else {
            &mut self.compressor
        };
        compressor.reset();
        self.scratch.clear();
        // Deflate's worst case is a few bytes per block over the input; the
        // buffer grows if a call still runs out of room.
        self.scratch.resize(data.len() + data.len() / 64 + 64, 0);
        loop {
            let consumed = compressor.total_in() as usize;
            let produced = compressor.total_out() as usize;
            let status = compressor
                .compress(
                    &data[consumed..],
                    &mut self.scratch[produced..],
                    gix::zlib::stream::deflate::FlushCompress::Finish,
                )
                .map_err(|e| GitError::gix(format!("compressing object {id}"), e))?;
            if matches!(status, gix::zlib::Status::StreamEnd) {
                break;
            }
            if compressor.total_out() as usize == self.scratch.len() {
                let grown = self.scratch.len() * 2;
                self.scratch.resize(grown, 0);
            }
        }
        let compressed_len = compressor.total_out() as usize;
        let body = std::mem::take(&mut self.scratch);
        let result = self.add_raw(id, header, data.len() as u64, &body[..compressed_len]);
        self.scratch = body;
        result
    }

    /// Appends an entry whose zlib stream is already made (copied from
    /// another pack): `header` (a base kind or a `RefDelta`) and `body`.
    pub(crate) fn add_raw(
        &mut self,
        id: ObjectId,
        header: Header,
        decompressed_size: u64,
        body: &[u8],
    ) -> Result<()> {
        let offset = self.pack.len() as u64;
        header
            .write_to(decompressed_size, &mut self.pack)
            .map_err(|source| GitError::Io {
                what: "encoding a pack entry header for",
                path: id.to_string(),
                source,
            })?;
        self.pack.extend_from_slice(body);
        let crc32 = crc32fast::hash(&self.pack[offset as usize..]);
        self.rows.push(Row { id, crc32, offset });
        Ok(())
    }

    /// Completes the pack (object count and SHA-1 trailer) and encodes its
    /// index: fan-out, sorted ids, CRC-32s, offsets, checksums.
    pub(crate) fn finish(mut self) -> Result<BuiltPack> {
        let count = u32::try_from(self.rows.len()).map_err(|_| GitError::CorruptObject {
            id: self.rows[0].id,
            reason: "more than 2^32 objects in one pack".into(),
        })?;
        let header = gix_pack::data::header::encode(gix_pack::data::Version::V2, count);
        self.pack[..header.len()].copy_from_slice(&header);
        let checksum = sha1(&self.pack)?;
        self.pack.extend_from_slice(checksum.as_bytes());

        let mut rows = self.rows;
        rows.sort_by_key(|row| row.id);
        rows.dedup_by(|a, b| a.id == b.id);
        let mut index = Vec::with_capacity(8 + 1024 + rows.len() * 28 + 40);
        index.extend_from_slice(b"\xfftOc");
        index.extend_from_slice(&2u32.to_be_bytes());
        let mut fanout = [0u32; 256];
        for row in &rows {
            fanout[usize::from(row.id.as_bytes()[0])] += 1;
        }
        let mut total = 0;
        for slot in &mut fanout {
            total += *slot;
            index.extend_from_slice(&total.to_be_bytes());
        }
        for row in &rows {
            index.extend_from_slice(row.id.as_bytes());
        }
        for row in &rows {
            index.extend_from_slice(&row.crc32.to_be_bytes());
        }
        let mut large = Vec::new();
        for row in &rows {
            let small = if row.offset < LARGE_OFFSET {
                row.offset as u32
            } else {
                large.push(row.offset);
                0x8000_0000 | (large.len() as u32 - 1)
            };
            index.extend_from_slice(&small.to_be_bytes());
        }
        for offset in large {
            index.extend_from_slice(&offset.to_be_bytes());
        }
        index.extend_from_slice(checksum.as_bytes());
        let index_checksum = sha1(&index)?;
        index.extend_from_slice(index_checksum.as_bytes());
        Ok(BuiltPack {
            pack: self.pack,
            index,
            checksum,
            objects: rows.len(),
        })
    }
}

fn sha1(bytes: &[u8]) -> Result<ObjectId> {
    let mut hasher = gix::hash::hasher(gix::hash::Kind::Sha1);
    hasher.update(bytes);
    hasher
        .try_finalize()
        .map_err(|e| GitError::gix("hashing a pack", e))
}

impl GitRepo {
    /// Puts a built pack into `objects/pack`: the data file first, then the
    /// index, each through a temporary file and a rename, so readers (git's
    /// and gix's look for `.idx` files) see all of its objects at once or
    /// none. With `fsync`, both files and the directory are flushed before
    /// this returns.
    pub(crate) fn install_pack(&self, built: &BuiltPack, fsync: bool) -> Result<PathBuf> {
        self.install_pack_with(built, fsync, None)
    }

    /// [`GitRepo::install_pack`] for a cruft pack: `mtimes` (the encoded
    /// `.mtimes` file, see [`crate::cruft`]) goes in after the data file
    /// and before the index, so the pack is never visible without it.
    pub(crate) fn install_pack_with(
        &self,
        built: &BuiltPack,
        fsync: bool,
        mtimes: Option<&[u8]>,
    ) -> Result<PathBuf> {
        let dir = self.objects_dir().join("pack");
        let base = dir.join(format!("pack-{}", built.checksum));
        let pack_path = base.with_extension("pack");
        let index_path = base.with_extension("idx");
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(|source| GitError::Io {
                what: "creating",
                path: dir.display().to_string(),
                source,
            })?;
        }
        persist(&dir, &built.pack, &pack_path, fsync)?;
        let mtimes_path = base.with_extension("mtimes");
        match mtimes {
            Some(mtimes) => persist(&dir, mtimes, &mtimes_path, fsync)?,
            // A plain pack byte for byte equal to a cruft pack already
            // there (a transfer copying again what only a cruft pack held)
            // lands on the same name: without this it would take on the
            // cruft pack's recorded times, and compaction could drop the
            // objects its writer is about to refer to. Without the
            // `.mtimes` file they are as young as this write.
            None => crate::consolidate::remove_if_present(&mtimes_path)?,
        }
        persist(&dir, &built.index, &index_path, fsync)?;
        if fsync {
            self.sync_dir(&dir)?;
        }
        Ok(pack_path)
    }
}

/// Writes `bytes` to a temporary file in `dir` (named `tmp_pack_*`, which
/// `git gc` knows to clean up after a crash) and renames it to `target`.
fn persist(dir: &Path, bytes: &[u8], target: &Path, fsync: bool) -> Result<()> {
    let io = |what, path: &Path, source| GitError::Io {
        what,
        path: path.display().to_string(),
        source,
    };
    let mut file = tempfile::Builder::new()
        .prefix("tmp_pack_")
        .tempfile_in(dir)
        .map_err(|e| io("creating a temporary file in", dir, e))?;
    file.write_all(bytes)
        .map_err(|e| io("writing", file.path(), e))?;
    if fsync {
        file.as_file()
            .sync_all()
            .map_err(|e| io("fsync", file.path(), e))?;
    }
    file.persist(target)
        .map_err(|e| io("renaming a new pack file to", target, e.error))?;
    Ok(())
}
