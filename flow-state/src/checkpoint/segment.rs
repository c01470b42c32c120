//! Segment files (FORMAT.md §2): writing one streamingly, and opening one for reading.

use std::path::{Path, PathBuf};

use super::format::*;
use super::manifest::SegmentInfo;
use crate::error::{corrupt, io_err, Result, StateError};
use crate::storage::{ReadOnlyBytes, Storage, WritableFile};

const FLUSH_AT: usize = 1 << 20;

/// Writes one segment: entries are streamed through a bounded buffer into the `.tmp` file.
pub(crate) struct SegmentBuilder {
    file: Box<dyn WritableFile>,
    tmp: PathBuf,
    path: PathBuf,
    name: String,
    buf: Vec<u8>,
    crc: u32,
    /// Bytes handed to `file` so far.
    flushed: u64,
    index: Vec<(u32, u64, u32)>,
    entries: u64,
}

impl SegmentBuilder {
    pub(crate) fn create(storage: &dyn Storage, dir: &Path, name: String) -> Result<Self> {
        let path = dir.join(&name);
        let tmp = dir.join(format!("{name}{TMP_SUFFIX}"));
        let file = storage.create(&tmp).map_err(io_err("create", &tmp))?;
        let mut b = SegmentBuilder {
            file,
            tmp,
            path,
            name,
            buf: Vec::with_capacity(64 * 1024),
            crc: 0,
            flushed: 0,
            index: Vec::new(),
            entries: 0,
        };
        b.buf.extend_from_slice(&header(SEG_MAGIC));
        Ok(b)
    }

    /// Bytes of the segment so far.
    pub(crate) fn len(&self) -> u64 {
        self.flushed + self.buf.len() as u64
    }

    /// Appends an entry. The caller guarantees `(kg, key)` order.
    pub(crate) fn push(&mut self, kg: u32, key: &[u8], value: Option<&[u8]>) -> Result<()> {
        let offset = self.len();
        match self.index.last_mut() {
            Some(last) if last.0 == kg => last.2 += 1,
            _ => self.index.push((kg, offset, 1)),
        }
        self.buf.extend_from_slice(&kg.to_le_bytes());
        self.buf
            .extend_from_slice(&(key.len() as u32).to_le_bytes());
        self.buf
            .extend_from_slice(&value.map_or(TOMBSTONE, |v| v.len() as u32).to_le_bytes());
        self.buf.extend_from_slice(key);
        if let Some(v) = value {
            self.buf.extend_from_slice(v);
        }
        self.entries += 1;
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends `count` entries of key group `kg` as they are stored (`bytes`, from another
    /// segment), after the entries pushed so far. The caller guarantees order.
    pub(crate) fn append_group(&mut self, kg: u32, bytes: &[u8], count: u32) -> Result<()> {
        if count == 0 {
            return Ok(());
        }
        let offset = self.len();
        match self.index.last_mut() {
            Some(last) if last.0 == kg => last.2 += count,
            _ => self.index.push((kg, offset, count)),
        }
        self.entries += u64::from(count);
        if self.buf.len() + bytes.len() < FLUSH_AT {
            self.buf.extend_from_slice(bytes);
            return Ok(());
        }
        self.flush()?;
        self.file
            .write_all(bytes)
            .map_err(io_err("write", &self.tmp))?;
        self.crc = crc32c::crc32c_append(self.crc, bytes);
        self.flushed += bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .map_err(io_err("write", &self.tmp))?;
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.flushed += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes index and footer, fsyncs, and renames to the final name (FORMAT.md §4 step 1).
    pub(crate) fn finish(mut self, storage: &dyn Storage) -> Result<SegmentInfo> {
        let index_offset = self.len();
        let kg_start = self.index.first().map_or(0, |r| r.0);
        let kg_end = self.index.last().map_or(0, |r| r.0 + 1);
        let mut e = Enc(std::mem::take(&mut self.buf));
        for &(kg, off, n) in &self.index {
            e.u32(kg);
            e.u64(off);
            e.u32(n);
        }
        e.u64(index_offset);
        e.u32(self.index.len() as u32);
        e.u32(kg_start);
        e.u32(kg_end);
        e.u64(self.entries);
        e.u32(0);
        self.buf = e.0;
        self.flush()?;
        let crc = self.crc;
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf.extend_from_slice(SEG_END_MAGIC);
        self.flush()?;
        self.file.sync().map_err(io_err("fsync", &self.tmp))?;
        storage
            .rename(&self.tmp, &self.path)
            .map_err(io_err("rename", &self.tmp))?;
        Ok(SegmentInfo {
            name: self.name,
            kg_start,
            kg_end,
            len: self.flushed,
            crc,
            entries: self.entries,
        })
    }
}

/// One entry as stored: `value` `None` is a tombstone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct RawEntry<'a> {
    pub(crate) kg: u32,
    pub(crate) key: &'a [u8],
    pub(crate) value: Option<&'a [u8]>,
}

/// An opened, fully verified segment.
#[derive(Debug)]
pub(crate) struct Segment {
    bytes: ReadOnlyBytes,
    /// (key group, offset of first entry, count)
    index: Vec<(u32, u64, u32)>,
    entries_end: usize,
    pub(crate) kg_start: u32,
    pub(crate) kg_end: u32,
}

impl Segment {
    /// Maps and verifies the segment `info` of directory `dir`, listed by `manifest`: length
    /// and checksum against the manifest, magic, version, checksum, and a structural walk of
    /// every entry. After this, reading entries cannot fail.
    pub(crate) fn open(
        storage: &dyn Storage,
        dir: &Path,
        info: &SegmentInfo,
        manifest: &Path,
    ) -> Result<Segment> {
        let (path, bytes) = Self::map(storage, dir, info, manifest)?;
        Self::verify(&path, bytes, info)
    }

    /// Maps segment `info` of `dir` whole; a missing file is reported with `manifest`.
    fn map(
        storage: &dyn Storage,
        dir: &Path,
        info: &SegmentInfo,
        manifest: &Path,
    ) -> Result<(PathBuf, ReadOnlyBytes)> {
        let path = dir.join(&info.name);
        let bytes = match storage.map_immutable_whole(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::MissingSegment {
                    path,
                    manifest: manifest.to_path_buf(),
                })
            }
            Err(e) => return Err(io_err("map", &path)(e)),
        };
        Ok((path, bytes))
    }

    /// [`Segment::open`] of a segment this process wrote and fsynced itself during this open
    /// of the store, its crc computed over the bytes it wrote: only the length, the footer and
    /// the index are checked, not the checksum nor every entry. A file changed behind the
    /// store's back since can make reading it panic (a bounds check), never misbehave
    /// otherwise.
    pub(crate) fn open_trusted(
        storage: &dyn Storage,
        dir: &Path,
        info: &SegmentInfo,
        manifest: &Path,
    ) -> Result<Segment> {
        let (path, bytes) = Self::map(storage, dir, info, manifest)?;
        Self::check_frame(&path, &bytes, info)?;
        let (index, index_offset) = Self::footer_and_index(&path, &bytes, info)?;
        Ok(Segment {
            bytes,
            index,
            entries_end: index_offset,
            kg_start: info.kg_start,
            kg_end: info.kg_end,
        })
    }

    /// Checks length, header and end magic.
    fn check_frame(path: &Path, b: &[u8], info: &SegmentInfo) -> Result<()> {
        if b.len() as u64 != info.len {
            return Err(corrupt(
                path,
                format!(
                    "length {} differs from the manifest's {} (truncated or replaced)",
                    b.len(),
                    info.len
                ),
            ));
        }
        check_header(path, b, SEG_MAGIC, "segment")?;
        if b.len() < HEADER_LEN + SEG_FOOTER_LEN {
            return Err(corrupt(path, "truncated: no room for the footer"));
        }
        if &b[b.len() - 8..] != SEG_END_MAGIC {
            return Err(corrupt(path, "bad end magic (truncated or overwritten)"));
        }
        Ok(())
    }

    /// Checks the footer of a segment whose frame [`Segment::check_frame`] accepted against
    /// `info`, and reads the index: (index, offset of the index).
    #[allow(clippy::type_complexity)] // the index's rows
    fn footer_and_index(
        path: &Path,
        b: &[u8],
        info: &SegmentInfo,
    ) -> Result<(Vec<(u32, u64, u32)>, usize)> {
        let footer_at = b.len() - SEG_FOOTER_LEN;
        let mut f = Dec {
            buf: b,
            pos: footer_at,
            path,
        };
        let index_offset = f.u64()?;
        let index_n = f.u32()? as usize;
        let kg_start = f.u32()?;
        let kg_end = f.u32()?;
        let entries = f.u64()?;
        if (kg_start, kg_end, entries) != (info.kg_start, info.kg_end, info.entries) {
            return Err(corrupt(
                path,
                "footer disagrees with the manifest (range or entry count)",
            ));
        }
        let index_offset = usize::try_from(index_offset)
            .ok()
            .filter(|&o| o >= HEADER_LEN && o <= footer_at);
        let Some(index_offset) = index_offset else {
            return Err(corrupt(path, "index offset out of bounds"));
        };
        if index_n.checked_mul(INDEX_RECORD) != Some(footer_at - index_offset) {
            return Err(corrupt(path, "index size disagrees with the footer"));
        }
        let mut d = Dec {
            buf: &b[..footer_at],
            pos: index_offset,
            path,
        };
        let mut index = Vec::with_capacity(index_n);
        for _ in 0..index_n {
            index.push((d.u32()?, d.u64()?, d.u32()?));
        }
        Ok((index, index_offset))
    }

    fn verify(path: &Path, bytes: ReadOnlyBytes, info: &SegmentInfo) -> Result<Segment> {
        let b: &[u8] = &bytes;
        Self::check_frame(path, b, info)?;
        let crc_at = b.len() - 12;
        let stored = u32::from_le_bytes([b[crc_at], b[crc_at + 1], b[crc_at + 2], b[crc_at + 3]]);
        let actual = crc32c::crc32c(&b[..crc_at]);
        if stored != actual || stored != info.crc {
            return Err(corrupt(path, format!("checksum mismatch: stored {stored:#010x}, computed {actual:#010x}, manifest {:#010x}", info.crc)));
        }
        let (index, index_offset) = Self::footer_and_index(path, b, info)?;
        let (kg_start, kg_end, entries) = (info.kg_start, info.kg_end, info.entries);
        // Structural walk: every entry in bounds, in range, strictly ordered, matching the index.
        let mut e = Dec {
            buf: &b[..index_offset],
            pos: HEADER_LEN,
            path,
        };
        let mut prev: Option<(u32, &[u8])> = None;
        let mut count = 0u64;
        let mut idx = index.iter().peekable();
        let mut in_group = 0u32;
        let mut group: Option<(u32, u64, u32)> = None;
        while e.pos < index_offset {
            let at = e.pos as u64;
            let kg = e.u32()?;
            let klen = e.u32()? as usize;
            let vlen = e.u32()?;
            let key = e.take(klen)?;
            if vlen != TOMBSTONE {
                e.take(vlen as usize)?;
            }
            if kg < kg_start || kg >= kg_end {
                return Err(corrupt(
                    path,
                    format!(
                        "entry at offset {at} has key group {kg} outside [{kg_start}, {kg_end})"
                    ),
                ));
            }
            if let Some((pk, pkey)) = prev {
                if entry_order(kg, key, pk, pkey) != std::cmp::Ordering::Greater {
                    return Err(corrupt(
                        path,
                        format!("entry at offset {at} is out of order"),
                    ));
                }
            }
            if group.is_none_or(|g| g.0 != kg) {
                if let Some(g) = group {
                    if g.2 != in_group {
                        return Err(corrupt(
                            path,
                            format!("index count for key group {} is wrong", g.0),
                        ));
                    }
                }
                match idx.next() {
                    Some(&r) if r.0 == kg && r.1 == at => group = Some(r),
                    _ => {
                        return Err(corrupt(
                            path,
                            format!("index does not match key group {kg} at offset {at}"),
                        ))
                    }
                }
                in_group = 0;
            }
            in_group += 1;
            prev = Some((kg, key));
            count += 1;
        }
        if let Some(g) = group {
            if g.2 != in_group {
                return Err(corrupt(
                    path,
                    format!("index count for key group {} is wrong", g.0),
                ));
            }
        }
        if idx.next().is_some() || count != entries {
            return Err(corrupt(
                path,
                "index or entry count disagrees with the entries",
            ));
        }
        Ok(Segment {
            bytes,
            index,
            entries_end: index_offset,
            kg_start,
            kg_end,
        })
    }

    /// Byte offset of the first entry with key group `>= kg`.
    fn offset_of(&self, kg: u32) -> usize {
        let i = self.index.partition_point(|r| r.0 < kg);
        self.index.get(i).map_or(self.entries_end, |r| r.1 as usize)
    }

    /// Number of entries (tombstones included) with key group in `[start, end)`.
    pub(crate) fn count_in(&self, start: u32, end: u32) -> u64 {
        let from = self.index.partition_point(|r| r.0 < start);
        let to = self.index.partition_point(|r| r.0 < end);
        self.index[from..to].iter().map(|r| u64::from(r.2)).sum()
    }

    /// The bytes of the entries with key group in `[start, end)` (read them with
    /// [`entry_at`]).
    pub(crate) fn entry_bytes(&self, start: u32, end: u32) -> &[u8] {
        let (from, to) = (self.offset_of(start), self.offset_of(end));
        &self.bytes[from..to.max(from)]
    }

    /// Bytes of the entries with key group in `[start, end)`.
    pub(crate) fn bytes_in(&self, start: u32, end: u32) -> u64 {
        (self.offset_of(end).saturating_sub(self.offset_of(start))) as u64
    }

    /// The entry bytes of a verified segment (read them with [`entry_at`]).
    pub(crate) fn entries(&self) -> &[u8] {
        &self.bytes[..self.entries_end]
    }

    /// The entry bytes of a verified segment (read them with [`entry_at`]) and the byte range
    /// of key group `kg`'s entries in them (empty if the segment has none).
    pub(crate) fn group(&self, kg: u32) -> (&[u8], usize, usize) {
        let (from, to) = (self.offset_of(kg), self.offset_of(kg.saturating_add(1)));
        (&self.bytes[..self.entries_end], from, to.max(from))
    }

    /// Entries with key group in `[start, end)`, in order.
    pub(crate) fn cursor(&self, start: u32, end: u32) -> SegCursor<'_> {
        SegCursor {
            data: &self.bytes[..self.entries_end],
            pos: self.offset_of(start),
            end,
        }
    }
}

/// The entry at `pos` of a verified segment's entry bytes, and where the next one begins.
#[inline]
pub(crate) fn entry_at(d: &[u8], pos: usize) -> (RawEntry<'_>, usize) {
    // In bounds for a verified segment: `Segment::verify` walked every entry.
    let u = |at: usize| u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]]);
    let kg = u(pos);
    let klen = u(pos + 4) as usize;
    let vlen = u(pos + 8);
    let kstart = pos + ENTRY_PREFIX;
    let key = &d[kstart..kstart + klen];
    if vlen == TOMBSTONE {
        return (
            RawEntry {
                kg,
                key,
                value: None,
            },
            kstart + klen,
        );
    }
    let vs = kstart + klen;
    let ve = vs + vlen as usize;
    (
        RawEntry {
            kg,
            key,
            value: Some(&d[vs..ve]),
        },
        ve,
    )
}

/// Walks the entries of a verified segment.
pub(crate) struct SegCursor<'a> {
    data: &'a [u8],
    pos: usize,
    end: u32,
}

impl<'a> Iterator for SegCursor<'a> {
    type Item = RawEntry<'a>;

    fn next(&mut self) -> Option<RawEntry<'a>> {
        if self.pos >= self.data.len() {
            return None;
        }
        let (e, next) = entry_at(self.data, self.pos);
        if e.kg >= self.end {
            self.pos = self.data.len();
            return None;
        }
        self.pos = next;
        Some(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimStorage;

    type TestEntry<'a> = (u32, &'a [u8], Option<&'a [u8]>);

    fn write(storage: &SimStorage, entries: &[TestEntry<'_>]) -> SegmentInfo {
        let mut b = SegmentBuilder::create(storage, Path::new("/d"), segment_name(1, 0)).unwrap();
        for (kg, k, v) in entries {
            b.push(*kg, k, *v).unwrap();
        }
        b.finish(storage).unwrap()
    }

    #[test]
    fn segment_round_trips_and_seeks_by_key_group() {
        let s = SimStorage::new();
        let info = write(
            &s,
            &[
                (1, b"a", Some(b"x")),
                (1, b"b", None),
                (4, b"", Some(b"")),
                (9, b"z", Some(b"y")),
            ],
        );
        assert_eq!((info.kg_start, info.kg_end, info.entries), (1, 10, 4));
        let seg = Segment::open(&s, Path::new("/d"), &info, Path::new("/d/m")).unwrap();
        let all: Vec<_> = seg.cursor(0, 100).collect();
        assert_eq!(all.len(), 4);
        assert_eq!(
            all[1],
            RawEntry {
                kg: 1,
                key: b"b",
                value: None
            }
        );
        let mid: Vec<u32> = seg.cursor(2, 9).map(|e| e.kg).collect();
        assert_eq!(mid, vec![4]);
    }

    /// The structural walk catches what a checksum cannot: a well-checksummed file that breaks
    /// the format's invariants (here, entries out of order, as a writer bug would produce).
    #[test]
    fn out_of_order_entries_are_rejected_even_with_a_valid_checksum() {
        let s = SimStorage::new();
        let mut b = SegmentBuilder::create(&s, Path::new("/d"), segment_name(1, 0)).unwrap();
        b.push(1, b"b", Some(b"x")).unwrap();
        b.push(1, b"a", Some(b"x")).unwrap();
        let info = b.finish(&s).unwrap();
        let err = Segment::open(&s, Path::new("/d"), &info, Path::new("/d/m")).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
    }
}
