//! The changed entries of one keyed state on their way into a checkpoint.
//!
//! A checkpoint of a large state carries tens of millions of entries from the processing
//! threads to the writer. Held as a key group and two vectors each, that was two heap
//! allocations per entry, about 190 bytes of memory per 12-byte entry, and a writer thread
//! that spent half its time in the allocator. [`Entries`] keeps every key and value encoded
//! back to back in one buffer and one fixed-size row per entry, so that a checkpoint costs two
//! growing allocations whatever its size, and sorting moves 32-byte rows that mostly compare
//! without touching the buffer.

use crate::error::Result;
use flow_state::{key_prefix, prefetch};
use std::cmp::Ordering;

/// The buffer is sized for the expected entries after this many.
const SAMPLE: usize = 256;

/// `vlen` of a deletion.
const TOMBSTONE: u32 = u32::MAX;

/// One entry: its key group, where its key starts in the buffer (its value follows the key),
/// the lengths, the key's first eight bytes for comparisons, and its place in the order of
/// writing (which of several writes of a key is the last).
#[derive(Clone, Copy, Debug)]
struct Row {
    prefix: u64,
    at: u64,
    kg: u32,
    klen: u32,
    vlen: u32,
    seq: u32,
}

/// Encoded entries `(key group, key, value or deletion)` of one keyed state, in the order
/// they were written until [`Entries::sort_last_wins`].
#[derive(Default)]
pub(crate) struct Entries {
    bytes: Vec<u8>,
    rows: Vec<Row>,
    /// The number of the next entry written ([`Row::seq`], counted past `u32::MAX` to know
    /// when the numbers no longer tell the order of writing).
    next_seq: u64,
}

impl Row {
    /// The bytes of its key and value.
    fn len(&self) -> usize {
        self.klen as usize
            + if self.vlen == TOMBSTONE {
                0
            } else {
                self.vlen as usize
            }
    }
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries")
            .field("len", &self.rows.len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Entries {
    /// Room for `n` entries (the buffer grows as they come).
    pub(crate) fn with_capacity(n: usize) -> Self {
        Entries {
            bytes: Vec::new(),
            rows: Vec::with_capacity(n),
            next_seq: 0,
        }
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Appends an entry (`value` `None`: the key was deleted).
    pub(crate) fn push(&mut self, kg: u32, key: &[u8], value: Option<&[u8]>) {
        let at = self.bytes.len();
        self.bytes.extend_from_slice(key);
        if let Some(v) = value {
            self.bytes.extend_from_slice(v);
        }
        self.add_row(kg, at, key.len(), value.map(<[u8]>::len));
    }

    /// Appends an entry that `key` and `value` encode straight into the buffer; `value`
    /// returns `false` for a deletion (having written nothing). On an error nothing is added.
    pub(crate) fn push_with(
        &mut self,
        kg: u32,
        key: impl FnOnce(&mut Vec<u8>) -> Result<()>,
        value: impl FnOnce(&mut Vec<u8>) -> Result<bool>,
    ) -> Result<()> {
        let at = self.bytes.len();
        let written = key(&mut self.bytes).and_then(|()| {
            let klen = self.bytes.len() - at;
            let live = value(&mut self.bytes)?;
            Ok((klen, live))
        });
        match written {
            Ok((klen, live)) => {
                let vlen = live.then(|| self.bytes.len() - at - klen);
                self.add_row(kg, at, klen, vlen);
                Ok(())
            }
            Err(e) => {
                self.bytes.truncate(at);
                Err(e)
            }
        }
    }

    fn add_row(&mut self, kg: u32, at: usize, klen: usize, vlen: Option<usize>) {
        let key = &self.bytes[at..at + klen];
        // Past 2^32 entries the numbers repeat; `sort_last_wins` then keeps the order of
        // writing by a stable sort instead.
        let seq = self.next_seq as u32;
        self.next_seq += 1;
        self.rows.push(Row {
            prefix: key_prefix(key),
            at: at as u64,
            kg,
            // Keys and values are encoded state: far below 4 GiB each.
            klen: klen as u32,
            vlen: vlen.map_or(TOMBSTONE, |v| v as u32),
            seq,
        });
        if self.rows.len() == SAMPLE {
            // Room for the expected entries, at the first `SAMPLE`'s average size and half
            // as much again, in one allocation: a buffer that doubled on the way to a large
            // checkpoint's size would copy itself twenty times (and the allocator may copy
            // its whole capacity, touching every page). Room not used is never touched, so
            // it costs address space, not memory.
            let more = self.rows.capacity().saturating_sub(SAMPLE);
            let room = (self.bytes.len() / SAMPLE).saturating_mul(more) / 2 * 3;
            self.bytes.reserve_exact(room);
        }
    }

    fn entry(&self, r: &Row) -> (u32, &[u8], Option<&[u8]>) {
        let at = r.at as usize;
        let kend = at + r.klen as usize;
        let value = (r.vlen != TOMBSTONE).then(|| &self.bytes[kend..kend + r.vlen as usize]);
        (r.kg, &self.bytes[at..kend], value)
    }

    /// The entries in their current order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = (u32, &[u8], Option<&[u8]>)> {
        self.rows.iter().map(|r| self.entry(r))
    }

    /// Adds `newer`'s entries after these: of two writes of a key, `newer`'s wins in
    /// [`Entries::sort_last_wins`].
    pub(crate) fn append_newer(&mut self, newer: Entries) {
        let shift = self.bytes.len() as u64;
        self.bytes.extend_from_slice(&newer.bytes);
        let first = self.next_seq;
        self.next_seq += newer.next_seq;
        self.rows.extend(newer.rows.into_iter().map(|mut r| {
            r.at += shift;
            r.seq = (u64::from(r.seq) + first) as u32;
            r
        }));
    }

    /// Sorts the entries by (key group, key bytes) — the order of a segment — and keeps, of
    /// several writes of one key, the last written.
    pub(crate) fn sort_last_wins(&mut self) {
        let bytes = &self.bytes;
        let key = |r: &Row| &bytes[r.at as usize..(r.at + u64::from(r.klen)) as usize];
        let same_key = |a: &Row, b: &Row| -> Ordering {
            (a.kg, a.prefix)
                .cmp(&(b.kg, b.prefix))
                .then_with(|| key(a).cmp(key(b)))
        };
        // The writes of one key in their order, the last written last: by their numbers (their
        // places in the buffer cannot tell it: an empty deletion takes no bytes), which lets
        // an unstable sort do it, faster than a stable one on these 32-byte rows.
        if self.next_seq <= 1 << 32 {
            self.rows
                .sort_unstable_by(|a, b| same_key(a, b).then(a.seq.cmp(&b.seq)));
        } else {
            self.rows.sort_by(same_key);
        }
        let n = self.rows.len();
        let mut kept = 0;
        for i in 0..n {
            let last_of_key = i + 1 == n || same_key(&self.rows[i], &self.rows[i + 1]).is_ne();
            if last_of_key {
                self.rows[kept] = self.rows[i];
                kept += 1;
            }
        }
        self.rows.truncate(kept);
        // The writer reads every entry in row order. Rows that point all over a buffer
        // larger than the caches miss on every key (in a VM with two busy workers about half
        // a microsecond each, most of the writer's time): rewrite the buffer in row order
        // once, where the misses overlap, unless it is in order already.
        if self.rows.windows(2).any(|w| w[1].at < w[0].at) || self.live() < self.bytes.len() / 2 {
            self.compact();
        }
    }

    /// The bytes the rows' keys and values take.
    fn live(&self) -> usize {
        self.rows.iter().map(Row::len).sum()
    }

    /// Rewrites the buffer with only the rows' bytes, in row order. The loop touches the
    /// rows' bytes a few rows ahead of copying them ([`prefetch`]), so that the cache misses
    /// of a buffer in another order overlap rather than follow each other.
    fn compact(&mut self) {
        const AHEAD: usize = 8;
        let mut bytes = Vec::with_capacity(self.live());
        let n = self.rows.len();
        for i in 0..n {
            if let Some(ahead) = self.rows.get(i + AHEAD) {
                prefetch(&self.bytes, ahead.at as usize);
            }
            let r = &mut self.rows[i];
            let at = r.at as usize;
            let start = bytes.len();
            bytes.extend_from_slice(&self.bytes[at..at + r.len()]);
            r.at = start as u64;
        }
        self.bytes = bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn owned(e: &Entries) -> Vec<(u32, Vec<u8>, Option<Vec<u8>>)> {
        e.iter()
            .map(|(kg, k, v)| (kg, k.to_vec(), v.map(<[u8]>::to_vec)))
            .collect()
    }

    #[test]
    fn of_several_writes_of_a_key_the_last_wins_and_entries_come_sorted() {
        let mut e = Entries::default();
        e.push(2, b"b", Some(&[1]));
        e.push(1, b"z", Some(&[2]));
        e.push(2, b"a", Some(&[3]));
        e.push(2, b"b", Some(&[4]));
        e.push(1, b"z", None);
        e.sort_last_wins();
        assert_eq!(
            owned(&e),
            vec![
                (1, b"z".to_vec(), None),
                (2, b"a".to_vec(), Some(vec![3])),
                (2, b"b".to_vec(), Some(vec![4]))
            ]
        );
    }

    #[test]
    fn a_buffer_mostly_of_overwritten_entries_is_compacted() {
        let mut e = Entries::default();
        for i in 0..10u8 {
            e.push(0, b"key", Some(&[i; 8]));
        }
        e.sort_last_wins();
        assert_eq!(owned(&e), vec![(0, b"key".to_vec(), Some(vec![9; 8]))]);
        assert_eq!(e.bytes.len(), 11, "only the kept entry's bytes");
    }

    #[test]
    fn a_failed_encoding_adds_nothing() {
        let mut e = Entries::default();
        e.push(0, b"k", Some(b"v"));
        let err = e.push_with(
            1,
            |b| {
                b.extend_from_slice(b"half");
                Ok(())
            },
            |_| Err(crate::error::Error::Checkpoint("no".into())),
        );
        assert!(err.is_err());
        e.push_with(
            3,
            |b| {
                b.push(7);
                Ok(())
            },
            |_| Ok(false),
        )
        .unwrap();
        assert_eq!(
            owned(&e),
            vec![(0, b"k".to_vec(), Some(b"v".to_vec())), (3, vec![7], None)]
        );
    }

    proptest! {
        /// Sorting equals a model: a map of the last write per (key group, key), in order,
        /// also across an appended newer batch, sorted before or not.
        #[test]
        fn sorted_entries_are_the_last_write_of_each_key_in_segment_order(
            writes in proptest::collection::vec(
                (0u32..4, proptest::collection::vec(0u8..3, 0..10),
                 proptest::option::of(proptest::collection::vec(any::<u8>(), 0..4))),
                0..200),
            split in 0usize..200,
            sorted_first in any::<bool>(),
        ) {
            let split = split.min(writes.len());
            let mut model = std::collections::BTreeMap::new();
            let mut older = Entries::default();
            let mut newer = Entries::default();
            for (i, (kg, k, v)) in writes.iter().enumerate() {
                model.insert((*kg, k.clone()), v.clone());
                let side = if i < split { &mut older } else { &mut newer };
                side.push(*kg, k, v.as_deref());
            }
            if sorted_first {
                // As a failed checkpoint's changes are merged into the next one's: each
                // batch sorted (and so rid of its overwritten entries) before.
                older.sort_last_wins();
                newer.sort_last_wins();
            }
            older.append_newer(newer);
            older.sort_last_wins();
            // The buffer holds the entries in row order, as the writer reads them.
            prop_assert!(older.rows.windows(2).all(|w| w[0].at <= w[1].at));
            let want: Vec<_> = model.into_iter().map(|((kg, k), v)| (kg, k, v)).collect();
            prop_assert_eq!(owned(&older), want);
        }
    }
}
