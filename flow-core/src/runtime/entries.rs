//! The changed entries of one keyed state on their way into a checkpoint.
//!
//! A checkpoint of a large state carries tens of millions of entries from the processing
//! threads to the writer. Held as a key group and two vectors each, that was two heap
//! allocations per entry, about 190 bytes of memory per 12-byte entry, and a writer thread
//! that spent half its time in the allocator. [`Entries`] keeps every key and value encoded
//! back to back in one buffer and one fixed-size row per entry, so that a checkpoint costs two
//! growing allocations whatever its size, and sorting moves 32-byte rows that mostly compare
//! without touching the buffer. The buffers of dropped entries are kept for the next
//! checkpoint's (up to 64 MB), and rows are put in order by counting sorts (key
//! group, then a key's first byte) before small comparison sorts.

use crate::error::Result;
use flow_state::{key_prefix, prefetch};
use std::cmp::Ordering;

/// The buffer is sized for the expected entries after this many.
const SAMPLE: usize = 256;

/// `vlen` of a deletion.
const TOMBSTONE: u32 = u32::MAX;

/// At most this many bytes of buffers are kept for the next entries ([`Spare`]).
const SPARE_LIMIT: usize = 64 << 20;

/// The buffers of dropped entries, kept for the next checkpoint's, up to [`SPARE_LIMIT`]
/// bytes. Memory fresh from the system costs a page fault and the zeroing of a page for every
/// 4 KiB touched: in a VM, most of the time of a counting sort of a part's rows, a cost every
/// checkpoint paid again wherever the allocator returns large freed blocks to the system.
/// One list for the process: entries are filled on the processing threads and dropped on the
/// checkpoint writer's, a few times per checkpoint, so the lock is never contended for long.
#[derive(Default)]
struct Spare {
    rows: Vec<Vec<Row>>,
    bytes: Vec<Vec<u8>>,
    held: usize,
}

static SPARE: std::sync::Mutex<Spare> = std::sync::Mutex::new(Spare {
    rows: Vec::new(),
    bytes: Vec::new(),
    held: 0,
});

impl Spare {
    /// A kept buffer with room for `n` items (and the items it held), or a new one.
    fn take<T>(&mut self, pick: fn(&mut Spare) -> &mut Vec<Vec<T>>, n: usize) -> Vec<T> {
        let list = pick(self);
        // The smallest with room for `n`, else the largest: a small state's few entries
        // leave the large buffers to the large states.
        let fits = (0..list.len())
            .filter(|&i| list[i].capacity() >= n)
            .min_by_key(|&i| list[i].capacity());
        let Some(best) = fits.or_else(|| (0..list.len()).max_by_key(|&i| list[i].capacity()))
        else {
            return Vec::new();
        };
        let v = list.swap_remove(best);
        self.held -= v.capacity() * std::mem::size_of::<T>();
        v
    }

    /// Keeps `v` (with its items: a counting sort overwrites rows in place, without first
    /// filling a buffer) if there is room for it; else frees it.
    fn give<T>(&mut self, pick: fn(&mut Spare) -> &mut Vec<Vec<T>>, v: Vec<T>) {
        let size = v.capacity() * std::mem::size_of::<T>();
        if size > 0 && self.held + size <= SPARE_LIMIT {
            self.held += size;
            pick(self).push(v);
        }
    }
}

/// A kept buffer with room for `n` items in all, whatever items it still holds, or a new one.
fn take_spare<T>(pick: fn(&mut Spare) -> &mut Vec<Vec<T>>, n: usize) -> Vec<T> {
    // A poisoned lock only means a panic elsewhere while it was held: the list is whole.
    let mut v = SPARE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take(pick, n);
    v.reserve(n.saturating_sub(v.len()));
    v
}

/// Keeps `v` for the next entries, if there is room for it.
fn give_spare<T>(pick: fn(&mut Spare) -> &mut Vec<Vec<T>>, v: Vec<T>) {
    if v.capacity() == 0 {
        return;
    }
    SPARE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .give(pick, v);
}

fn spare_rows(s: &mut Spare) -> &mut Vec<Vec<Row>> {
    &mut s.rows
}

fn spare_bytes(s: &mut Spare) -> &mut Vec<Vec<u8>> {
    &mut s.bytes
}

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

/// A buffer of entries out of row order is rewritten in row order from this size (a core's
/// L2 cache): a smaller one stays in the caches while the writer reads it in any order; a
/// larger one missed on most keys (stop 26's profile) while the workers' tables filled the
/// shared cache.
const COMPACT_FROM_BYTES: usize = if cfg!(test) { 1 } else { 1 << 20 };

/// Below this many rows one comparison sort of all of them is as fast as counting sorts first.
const GROUP_SORT_FROM: usize = if cfg!(test) { 2 } else { 4096 };

/// `rows` ordered by `key` into `out` (a stable counting sort, two passes), with where each
/// run of one key ends; `None` (and `out` untouched) if the keys span too wide a range for a
/// count per key (key groups are below 32,768, the largest max parallelism; a byte below 256).
fn counting_sort(
    rows: &[Row],
    key: impl Fn(&Row) -> u32,
    out: &mut Vec<Row>,
) -> Option<Vec<usize>> {
    let (lo, hi) = rows.iter().fold((u32::MAX, 0), |(lo, hi), r| {
        (lo.min(key(r)), hi.max(key(r)))
    });
    if rows.is_empty() || hi - lo >= 1 << 16 {
        return None;
    }
    let span = (hi - lo) as usize + 1;
    let mut next = vec![0usize; span];
    for r in rows {
        next[(key(r) - lo) as usize] += 1;
    }
    let mut ends = Vec::with_capacity(span);
    let mut at = 0;
    for c in next.iter_mut() {
        let n = *c;
        *c = at;
        at += n;
        if n > 0 {
            ends.push(at);
        }
    }
    // Every slot is written below: what `out` held is only overwritten.
    out.truncate(rows.len());
    out.resize(rows.len(), ZERO_ROW);
    for r in rows {
        let slot = &mut next[(key(r) - lo) as usize];
        out[*slot] = *r;
        *slot += 1;
    }
    Some(ends)
}

/// A row to fill a buffer with before a counting sort overwrites it.
const ZERO_ROW: Row = Row {
    prefix: 0,
    at: 0,
    kg: 0,
    klen: 0,
    vlen: 0,
    seq: 0,
};

/// The order of two rows' (key group, key bytes), keys in `bytes`.
fn key_order(bytes: &[u8], a: &Row, b: &Row) -> Ordering {
    let key = |r: &Row| &bytes[r.at as usize..(r.at + u64::from(r.klen)) as usize];
    (a.kg, a.prefix)
        .cmp(&(b.kg, b.prefix))
        .then_with(|| key(a).cmp(key(b)))
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

impl Drop for Entries {
    fn drop(&mut self) {
        give_spare(spare_rows, std::mem::take(&mut self.rows));
        give_spare(spare_bytes, std::mem::take(&mut self.bytes));
    }
}

impl Entries {
    /// Room for `n` entries (the buffer grows as they come).
    pub(crate) fn with_capacity(n: usize) -> Self {
        // A guess at the bytes, to pick a spare buffer (the first entries then size it).
        let mut bytes = take_spare(spare_bytes, n.saturating_mul(8));
        bytes.clear();
        let mut rows = take_spare(spare_rows, n);
        rows.clear();
        Entries {
            bytes,
            rows,
            next_seq: 0,
        }
    }

    /// Number of entries.
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
        self.rows.extend(newer.rows.iter().map(|&r| Row {
            at: r.at + shift,
            seq: (u64::from(r.seq) + first) as u32,
            ..r
        }));
    }

    /// Sorts the entries by (key group, key bytes) — the order of a segment — and keeps, of
    /// several writes of one key, the last written.
    pub(crate) fn sort_last_wins(&mut self) {
        self.sort_rows();
        let bytes = &self.bytes;
        let same_key = |a: &Row, b: &Row| key_order(bytes, a, b);
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
        // once, where the misses overlap, unless it is in order already or small enough to
        // stay in the caches.
        let scattered = self.bytes.len() >= COMPACT_FROM_BYTES
            && self.rows.windows(2).any(|w| w[1].at < w[0].at);
        if scattered || self.live() < self.bytes.len() / 2 {
            self.compact();
        }
    }

    /// Sorts the rows by (key group, key bytes), of several writes of a key the last
    /// written last.
    fn sort_rows(&mut self) {
        let bytes = &self.bytes;
        let same_key = |a: &Row, b: &Row| key_order(bytes, a, b);
        // The writes of one key in their order, the last written last: by their numbers (their
        // places in the buffer cannot tell it: an empty deletion takes no bytes), which lets
        // an unstable sort do it, faster than a stable one on these 32-byte rows.
        let unstable = self.next_seq <= 1 << 32;
        let sort = |rows: &mut [Row]| {
            if unstable {
                rows.sort_unstable_by(|a, b| same_key(a, b).then(a.seq.cmp(&b.seq)));
            } else {
                rows.sort_by(same_key);
            }
        };
        if self.rows.len() < GROUP_SORT_FROM {
            sort(&mut self.rows);
            return;
        }
        // A counting sort by key group, then within each group by the key's first byte (two
        // stable passes each), then a comparison sort of each run of rows with the same
        // first byte: most runs are a handful of rows, sorted within the caches. One
        // comparison sort of all the rows took a third of the checkpoint writer's time.
        let mut by_group = take_spare(spare_rows, self.rows.len());
        let Some(groups) = counting_sort(&self.rows, |r| r.kg, &mut by_group) else {
            give_spare(spare_rows, by_group);
            sort(&mut self.rows);
            return;
        };
        let mut by_byte = Vec::new();
        let mut start = 0;
        for end in groups {
            let group = &mut by_group[start..end];
            match counting_sort(group, |r| (r.prefix >> 56) as u32, &mut by_byte) {
                Some(runs) if runs.len() > 1 => {
                    group.copy_from_slice(&by_byte);
                    let mut s = 0;
                    for e in runs {
                        sort(&mut group[s..e]);
                        s = e;
                    }
                }
                _ => sort(group),
            }
            start = end;
        }
        give_spare(spare_rows, std::mem::replace(&mut self.rows, by_group));
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
        let mut bytes = take_spare(spare_bytes, self.live());
        bytes.clear();
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
        give_spare(spare_bytes, std::mem::replace(&mut self.bytes, bytes));
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

    #[test]
    fn a_kept_buffer_goes_to_the_smallest_that_fits_else_the_largest_and_none_beyond_the_limit() {
        let mut s = Spare::default();
        let small: Vec<Row> = Vec::with_capacity(100);
        let large: Vec<Row> = Vec::with_capacity(10_000);
        let (ps, pl) = (small.as_ptr(), large.as_ptr());
        s.give(spare_rows, small);
        s.give(spare_rows, large);
        assert_eq!(s.held, 10_100 * std::mem::size_of::<Row>());
        let first = s.take(spare_rows, 50);
        assert_eq!(first.as_ptr(), ps, "the smallest with room");
        let second = s.take(spare_rows, 20_000);
        assert_eq!(second.as_ptr(), pl, "else the largest");
        assert_eq!(s.held, 0);
        assert_eq!(s.take(spare_rows, 1).capacity(), 0, "none kept: a new one");
        s.give(spare_bytes, Vec::<u8>::with_capacity(SPARE_LIMIT + 1));
        assert_eq!(s.held, 0, "a buffer beyond the limit is freed");
        assert!(s.bytes.is_empty());
    }

    #[test]
    fn entries_on_a_kept_buffer_hold_only_their_own_entries() {
        let mut e = Entries::with_capacity(10_000);
        for i in 0..10_000u32 {
            e.push(i % 7, &i.to_be_bytes(), Some(&[1]));
        }
        e.sort_last_wins();
        drop(e);
        // Taken from another thread, as the writer drops what a processing thread filled.
        std::thread::spawn(|| {
            let mut small = Entries::with_capacity(10);
            let big = Entries::with_capacity(5_000);
            assert!(big.is_empty());
            assert!(big.rows.capacity() >= 5_000);
            small.push(0, b"k", None);
            assert_eq!(owned(&small), vec![(0, b"k".to_vec(), None)]);
        })
        .join()
        .unwrap();
        assert!(SPARE.lock().unwrap().held <= SPARE_LIMIT);
    }

    /// Sorting 210,000 entries over 64 key groups (a checkpoint of `checkpoint_state`'s
    /// subtask) by key group first, against one sort of all the rows. Run by hand:
    /// `cargo test --release -p flow-core sort_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn sort_speed() {
        let make = || {
            let mut e = Entries::with_capacity(210_000);
            for i in 0..210_000u64 {
                let k = (i * 200).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let mut key = Vec::new();
                crate::runtime::snapshot::encode(&k, &mut key).unwrap();
                e.push((k >> 58) as u32, &key, Some(&[1, 2]));
            }
            e
        };
        for round in 0..3 {
            let mut a = make();
            let t = std::time::Instant::now();
            a.sort_rows();
            let grouped = t.elapsed();
            let mut b = make();
            let t = std::time::Instant::now();
            let bytes = &b.bytes;
            b.rows
                .sort_unstable_by(|x, y| key_order(bytes, x, y).then(x.seq.cmp(&y.seq)));
            let whole = t.elapsed();

            println!("round {round}: by key group {grouped:?}, one sort {whole:?}");
        }
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
