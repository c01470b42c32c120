//! Manifests (FORMAT.md §3): per checkpoint, the segments it needs and its metadata blobs.

use std::collections::BTreeMap;
use std::path::Path;

use super::format::*;
use crate::error::{corrupt, Result};

/// What a manifest records about one segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SegmentInfo {
    pub(crate) name: String,
    pub(crate) kg_start: u32,
    pub(crate) kg_end: u32,
    pub(crate) len: u64,
    pub(crate) crc: u32,
    pub(crate) entries: u64,
}

/// (operator uid, state name)
pub(crate) type StateKey = (String, String);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Manifest {
    pub(crate) id: u64,
    pub(crate) base: Option<u64>,
    /// Per state, its segments oldest first.
    pub(crate) states: BTreeMap<StateKey, Vec<SegmentInfo>>,
    pub(crate) metadata: BTreeMap<String, Vec<u8>>,
}

impl Manifest {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut e = Enc(header(MAN_MAGIC).to_vec());
        e.u64(self.id);
        e.u64(self.base.unwrap_or(NO_BASE));
        e.u32(self.states.len() as u32);
        for ((uid, name), segs) in &self.states {
            e.bytes(uid.as_bytes());
            e.bytes(name.as_bytes());
            e.u32(segs.len() as u32);
            for s in segs {
                e.bytes(s.name.as_bytes());
                e.u32(s.kg_start);
                e.u32(s.kg_end);
                e.u64(s.len);
                e.u32(s.crc);
                e.u64(s.entries);
            }
        }
        e.u32(self.metadata.len() as u32);
        for (name, blob) in &self.metadata {
            e.bytes(name.as_bytes());
            e.bytes(blob);
        }
        let crc = crc32c::crc32c(&e.0);
        e.u32(crc);
        e.0.extend_from_slice(MAN_END_MAGIC);
        e.0
    }

    /// Decodes and checks a manifest read from `path`, which should hold checkpoint `id`.
    pub(crate) fn decode(bytes: &[u8], path: &Path, id: u64) -> Result<Manifest> {
        check_header(path, bytes, MAN_MAGIC, "manifest")?;
        if bytes.len() < HEADER_LEN + 12 {
            return Err(corrupt(path, "truncated: no room for the footer"));
        }
        let body_end = bytes.len() - 12;
        if &bytes[body_end + 4..] != MAN_END_MAGIC {
            return Err(corrupt(path, "bad end magic (truncated or overwritten)"));
        }
        let stored = u32::from_le_bytes([
            bytes[body_end],
            bytes[body_end + 1],
            bytes[body_end + 2],
            bytes[body_end + 3],
        ]);
        let actual = crc32c::crc32c(&bytes[..body_end]);
        if stored != actual {
            return Err(corrupt(
                path,
                format!("checksum mismatch: stored {stored:#010x}, computed {actual:#010x}"),
            ));
        }
        let mut d = Dec {
            buf: &bytes[..body_end],
            pos: HEADER_LEN,
            path,
        };
        let file_id = d.u64()?;
        if file_id != id {
            return Err(corrupt(
                path,
                format!("holds checkpoint {file_id}, its name says {id}"),
            ));
        }
        let base = match d.u64()? {
            NO_BASE => None,
            b => Some(b),
        };
        let mut m = Manifest {
            id,
            base,
            ..Manifest::default()
        };
        for _ in 0..d.u32()? {
            let uid = d.string()?;
            let name = d.string()?;
            let n = d.u32()?;
            let mut segs = Vec::new();
            for _ in 0..n {
                let name = d.string()?;
                if !is_segment_name(&name) {
                    return Err(corrupt(
                        path,
                        format!("lists {name:?}, which is not a segment file name"),
                    ));
                }
                segs.push(SegmentInfo {
                    name,
                    kg_start: d.u32()?,
                    kg_end: d.u32()?,
                    len: d.u64()?,
                    crc: d.u32()?,
                    entries: d.u64()?,
                });
            }
            m.states.insert((uid, name), segs);
        }
        for _ in 0..d.u32()? {
            let name = d.string()?;
            let blob = d.bytes()?.to_vec();
            m.metadata.insert(name, blob);
        }
        if d.pos != body_end {
            return Err(corrupt(path, "trailing bytes after the metadata"));
        }
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_round_trips_and_checks_its_id() {
        let mut m = Manifest {
            id: 5,
            base: Some(4),
            ..Manifest::default()
        };
        m.states.insert(
            ("op".into(), "s".into()),
            vec![SegmentInfo {
                name: "segment-00000000000000000004-000000.seg".into(),
                kg_start: 1,
                kg_end: 9,
                len: 100,
                crc: 7,
                entries: 3,
            }],
        );
        m.metadata.insert("source".into(), b"pos".to_vec());
        let bytes = m.encode();
        let p = Path::new("/m");
        assert_eq!(Manifest::decode(&bytes, p, 5).unwrap(), m);
        // A manifest renamed to another checkpoint's name is damage.
        assert!(Manifest::decode(&bytes, p, 6).is_err());
    }
}
