//! Byte-level encoding shared by segments and manifests (FORMAT.md §2, §3).

use std::path::Path;

use crate::error::{corrupt, Result};

pub(crate) const FORMAT_VERSION: u32 = 1;
pub(crate) const SEG_MAGIC: &[u8; 8] = b"FLOWSEG\0";
pub(crate) const SEG_END_MAGIC: &[u8; 8] = b"FSEGEND\0";
pub(crate) const MAN_MAGIC: &[u8; 8] = b"FLOWMAN\0";
pub(crate) const MAN_END_MAGIC: &[u8; 8] = b"FMANEND\0";
pub(crate) const HEADER_LEN: usize = 16;
/// index offset u64 | index records u32 | kg_start u32 | kg_end u32 | entry count u64 |
/// reserved u32 | crc32c u32 | end magic (8)
pub(crate) const SEG_FOOTER_LEN: usize = 8 + 4 + 4 + 4 + 8 + 4 + 4 + 8;
pub(crate) const ENTRY_PREFIX: usize = 12;
pub(crate) const INDEX_RECORD: usize = 16;
pub(crate) const TOMBSTONE: u32 = u32::MAX;
pub(crate) const NO_BASE: u64 = u64::MAX;

pub(crate) const LOCK_NAME: &str = "LOCK";
pub(crate) const TMP_SUFFIX: &str = ".tmp";

pub(crate) fn header(magic: &[u8; 8]) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[..8].copy_from_slice(magic);
    h[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
    h
}

pub(crate) fn check_header(path: &Path, bytes: &[u8], magic: &[u8; 8], what: &str) -> Result<()> {
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(
            path,
            format!(
                "truncated: {} bytes, shorter than a {what} header",
                bytes.len()
            ),
        ));
    }
    if &bytes[..8] != magic {
        return Err(corrupt(path, format!("bad magic: not a {what}")));
    }
    let v = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if v != FORMAT_VERSION {
        return Err(corrupt(
            path,
            format!("unsupported format version {v} (this build reads {FORMAT_VERSION})"),
        ));
    }
    Ok(())
}

pub(crate) fn manifest_name(id: u64) -> String {
    format!("checkpoint-{id:020}.manifest")
}

pub(crate) fn segment_name(id: u64, seq: u32) -> String {
    format!("segment-{id:020}-{seq:06}.seg")
}

/// The name of segment `seq` that compacting checkpoint `base`'s segments wrote (§6a).
pub(crate) fn compacted_segment_name(base: u64, seq: u32) -> String {
    format!("{}{seq:05}.seg", compacted_prefix(base))
}

/// What the names of the segments compacted from checkpoint `base` begin with.
pub(crate) fn compacted_prefix(base: u64) -> String {
    format!("segment-{base:020}-c")
}

/// The checkpoint id of a manifest's file name.
pub(crate) fn parse_manifest_name(name: &str) -> Option<u64> {
    let digits = name
        .strip_prefix("checkpoint-")?
        .strip_suffix(".manifest")?;
    parse_id(digits)
}

/// Whether `name` is a segment's final name.
pub(crate) fn is_segment_name(name: &str) -> bool {
    let Some(rest) = name
        .strip_prefix("segment-")
        .and_then(|r| r.strip_suffix(".seg"))
    else {
        return false;
    };
    match rest.split_once('-') {
        Some((id, seq)) => {
            // `seq` of a checkpoint's own segment, or `c` and five digits for a compacted one.
            let digits = seq.strip_prefix('c').unwrap_or(seq);
            parse_id(id).is_some() && seq.len() == 6 && digits.bytes().all(|b| b.is_ascii_digit())
        }
        None => false,
    }
}

/// Whether `name` is a temporary file of a segment or manifest being written.
pub(crate) fn is_tmp_name(name: &str) -> bool {
    name.strip_suffix(TMP_SUFFIX)
        .is_some_and(|base| is_segment_name(base) || parse_manifest_name(base).is_some())
}

fn parse_id(digits: &str) -> Option<u64> {
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Appends little-endian fields and length-prefixed strings.
pub(crate) struct Enc(pub(crate) Vec<u8>);

impl Enc {
    pub(crate) fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.u32(b.len() as u32);
        self.0.extend_from_slice(b);
    }
}

/// Reads little-endian fields; every read is bounds-checked and reports the file's path.
pub(crate) struct Dec<'a> {
    pub(crate) buf: &'a [u8],
    pub(crate) pos: usize,
    pub(crate) path: &'a Path,
}

impl<'a> Dec<'a> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len());
        match end {
            Some(end) => {
                let s = &self.buf[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(corrupt(
                self.path,
                format!("truncated: field at offset {} runs past the end", self.pos),
            )),
        }
    }
    pub(crate) fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub(crate) fn string(&mut self) -> Result<String> {
        let at = self.pos;
        let b = self.bytes()?;
        String::from_utf8(b.to_vec())
            .map_err(|_| corrupt(self.path, format!("invalid UTF-8 string at offset {at}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_not_ours() {
        assert_eq!(parse_manifest_name(&manifest_name(42)), Some(42));
        assert_eq!(
            parse_manifest_name(&manifest_name(u64::MAX - 1)),
            Some(u64::MAX - 1)
        );
        assert!(is_segment_name(&segment_name(7, 3)));
        assert!(is_segment_name(&compacted_segment_name(7, 3)));
        assert!(compacted_segment_name(7, 3).starts_with(&compacted_prefix(7)));
        assert!(is_tmp_name(&format!("{}{TMP_SUFFIX}", segment_name(7, 3))));
        assert!(is_tmp_name(&format!("{}{TMP_SUFFIX}", manifest_name(7))));
        for other in [
            "LOCK",
            "notes.txt",
            "checkpoint-1.manifest",
            "segment-1-1.seg",
            "x.tmp",
        ] {
            assert!(
                parse_manifest_name(other).is_none()
                    && !is_segment_name(other)
                    && !is_tmp_name(other),
                "{other}"
            );
        }
        // Names sort by id.
        assert!(manifest_name(9) < manifest_name(10));
    }
}

/// The order of entries in a segment: by key group, then key bytes (bytewise). Compares the
/// first eight key bytes as one integer before calling `memcmp`: keys are short and mostly
/// differ there, and a `memcmp` call per entry was most of the cost of checking a segment.
#[inline]
pub fn entry_order(ga: u32, a: &[u8], gb: u32, b: &[u8]) -> std::cmp::Ordering {
    ga.cmp(&gb)
        .then_with(|| key_prefix(a).cmp(&key_prefix(b)))
        .then_with(|| a.cmp(b))
}

/// The first eight bytes of a key as a big-endian integer, zero-padded: keys whose prefixes
/// differ compare as their bytes do (a shorter key padded with zeros is below a longer one
/// that differs from it within the first eight bytes).
#[inline]
pub fn key_prefix(k: &[u8]) -> u64 {
    if let Some(head) = k.first_chunk::<8>() {
        return u64::from_be_bytes(*head);
    }
    // Shorter keys: byte by byte, without a call to `memcpy` for a few bytes.
    let mut v = 0u64;
    for (i, &b) in k.iter().enumerate() {
        v |= u64::from(b) << (56 - 8 * i);
    }
    v
}

#[cfg(test)]
mod order_tests {
    use super::entry_order;
    use proptest::prelude::*;

    proptest! {
        /// The fast order is the bytewise order of (key group, key).
        #[test]
        fn entry_order_is_bytewise(
            ga in 0u32..3, a in proptest::collection::vec(any::<u8>(), 0..12),
            gb in 0u32..3, b in proptest::collection::vec(any::<u8>(), 0..12),
        ) {
            prop_assert_eq!(entry_order(ga, &a, gb, &b), (ga, &a).cmp(&(gb, &b)));
            let mut padded = [0u8; 8];
            let n = a.len().min(8);
            padded[..n].copy_from_slice(&a[..n]);
            prop_assert_eq!(super::key_prefix(&a), u64::from_be_bytes(padded));
        }
    }
}
