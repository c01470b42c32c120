//! A state of a restored checkpoint, read lazily: [`LazyState`] answers point lookups and
//! hands out its entries in batches, so that a job can resume processing at once and load
//! its state while it runs, instead of loading all of it before the first record.

use std::collections::HashMap;
use std::sync::Arc;

use super::segment::{entry_at, Segment};
use super::view::RestoreView;
use crate::error::{Result, StateError};
use crate::KeyGroupRange;

/// A lookup samples every this many entries of a key group in a segment: a lookup then
/// binary-searches the samples and walks at most this many entries.
const SAMPLE_EVERY: usize = 16;

/// One state (operator uid, state name) of a restored checkpoint, in one key-group range,
/// not yet loaded: [`LazyState::get`] finds a key's value (newest segment first, a tombstone
/// hides older versions), and [`LazyState::next_entries`] reads the live entries in
/// (key group, key) order, a batch at a time; [`LazyState::commit`] hands out what was read,
/// which is then no longer looked up: the owner holds it.
///
/// It keeps the checkpoint's segments mapped (and their files, even if a later checkpoint's
/// garbage collection removes them, readable) until it is dropped.
///
/// ```
/// use std::sync::Arc;
/// use flow_state::{CheckpointStore, FsStorage, KeyGroupRange};
///
/// let dir = tempfile::tempdir().unwrap();
/// let mut store = CheckpointStore::open(dir.path(), Arc::new(FsStorage)).unwrap();
/// let mut cp = store.begin(1).unwrap();
/// let mut w = cp.state("op", "counts");
/// w.put(3, b"a", Some(b"1")).unwrap();
/// w.put(3, b"b", Some(b"2")).unwrap();
/// w.put(9, b"c", Some(b"3")).unwrap();
/// w.finish().unwrap();
/// cp.commit().unwrap();
///
/// let view = store.restore_view(1).unwrap();
/// let mut lazy = view.lazy("op", "counts", KeyGroupRange { start: 0, end: 128 }).unwrap();
/// assert_eq!(lazy.get(3, b"b"), Some(&b"2"[..]));
/// assert_eq!(lazy.get(3, b"x"), None);
/// let mut seen = Vec::new();
/// lazy.next_entries(2, |kg, k, _| { seen.push((kg, k.to_vec())); Ok(()) }).unwrap();
/// assert_eq!(seen, vec![(3, b"a".to_vec()), (3, b"b".to_vec())]);
/// assert_eq!(lazy.get(3, b"b"), Some(&b"2"[..]), "read, not handed out yet");
/// lazy.commit();
/// assert_eq!(lazy.get(3, b"b"), None, "handed out: the owner has it now");
/// assert_eq!(lazy.get(9, b"c"), Some(&b"3"[..]));
/// assert!(lazy.next_entries(10, |_, _, _| Ok(())).unwrap(), "all handed out");
/// ```
pub struct LazyState {
    /// The segments overlapping the range, oldest first.
    segs: Vec<Arc<Segment>>,
    range: KeyGroupRange,
    /// Byte offsets of every [`SAMPLE_EVERY`]th entry of a key group in a segment, by
    /// (segment, key group): built on the first lookup there, dropped once it is handed out.
    samples: HashMap<(usize, u32), Box<[usize]>>,
    /// Key groups below this one are read completely.
    next_kg: u32,
    /// Within `next_kg`, keys up to this one are read (`None`: none yet).
    last_key: Option<Vec<u8>>,
    /// What is handed out ([`LazyState::commit`]): key groups below `done_kg`, and within
    /// it keys up to `done_key`.
    done_kg: u32,
    done_key: Option<Vec<u8>>,
    /// The merge of `next_kg`'s entries under way: per segment holding some, newest first.
    cursors: Vec<Cursor>,
    started: bool,
}

/// A segment's entries of one key group, with its current entry parsed.
struct Cursor {
    seg: usize,
    /// Where the current entry starts.
    pos: usize,
    end: usize,
    /// Where the next entry starts.
    next: usize,
    /// The current entry's key, as a byte range.
    key: (usize, usize),
    /// Its value (`None`: a tombstone), as a byte range.
    value: Option<(usize, usize)>,
}

impl Cursor {
    /// Parses the entry at `pos` (if `pos < end`).
    fn load(&mut self, data: &[u8]) {
        if self.pos < self.end {
            let (e, next) = entry_at(data, self.pos);
            let at = |x: &[u8]| x.as_ptr() as usize - data.as_ptr() as usize;
            let k = at(e.key);
            self.key = (k, k + e.key.len());
            self.value = e.value.map(|v| (at(v), at(v) + v.len()));
            self.next = next;
        }
    }
}

impl std::fmt::Debug for LazyState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyState")
            .field("segments", &self.segs.len())
            .field("range", &self.range)
            .field("next_kg", &self.next_kg)
            .finish()
    }
}

impl RestoreView {
    /// State `name` of operator `uid` in key groups `range`, to be read lazily
    /// ([`LazyState`]). The segments were verified when the view was opened.
    pub fn lazy(&self, uid: &str, name: &str, range: KeyGroupRange) -> Result<LazyState> {
        let segs = self
            .state_segments(uid, name)
            .ok_or_else(|| StateError::UnknownState {
                checkpoint: self.manifest.id,
                uid: uid.to_owned(),
                name: name.to_owned(),
            })?
            .iter()
            .filter(|s| s.kg_start < range.end && s.kg_end > range.start)
            .cloned()
            .collect();
        Ok(LazyState {
            segs,
            range,
            samples: HashMap::new(),
            next_kg: range.start,
            last_key: None,
            done_kg: range.start,
            done_key: None,
            cursors: Vec::new(),
            started: false,
        })
    }
}

impl LazyState {
    /// Whether every entry was read ([`LazyState::next_entries`]).
    pub fn is_done(&self) -> bool {
        self.next_kg >= self.range.end
    }

    /// Marks every entry read so far as handed out: [`LazyState::get`] no longer answers
    /// for them (their reader holds them now). Until then it does, so a reader may load what
    /// it read in batches of its own choosing.
    pub fn commit(&mut self) {
        for kg in self.done_kg..self.next_kg.min(self.range.end) {
            for i in 0..self.segs.len() {
                self.samples.remove(&(i, kg));
            }
        }
        self.done_kg = self.next_kg;
        self.done_key = self.last_key.clone();
    }

    /// At most how many entries (tombstones and shadowed versions included) are still to be
    /// handed out.
    pub fn remaining_bound(&self) -> u64 {
        let start = self.next_kg.max(self.range.start);
        self.segs
            .iter()
            .map(|s| s.count_in(start, self.range.end))
            .sum()
    }

    /// Whether `key` of key group `kg` was handed out already (or lies outside the range).
    fn handed_out(&self, kg: u32, key: &[u8]) -> bool {
        !self.range.contains(kg)
            || kg < self.done_kg
            || (kg == self.done_kg && self.done_key.as_deref().is_some_and(|l| key <= l))
    }

    /// The value of `key` in key group `kg` as of the checkpoint, unless it was handed out
    /// already ([`LazyState::commit`]): `None` if it has none (never written, deleted, or
    /// handed out).
    pub fn get(&mut self, kg: u32, key: &[u8]) -> Option<&[u8]> {
        if self.handed_out(kg, key) {
            return None;
        }
        for i in (0..self.segs.len()).rev() {
            let seg = &self.segs[i];
            if kg < seg.kg_start || kg >= seg.kg_end {
                continue;
            }
            let (data, from, to) = seg.group(kg);
            if from == to {
                continue;
            }
            let samples = self.samples.entry((i, kg)).or_insert_with(|| {
                let mut out = Vec::new();
                let (mut pos, mut n) = (from, 0usize);
                while pos < to {
                    if n % SAMPLE_EVERY == 0 {
                        out.push(pos);
                    }
                    pos = entry_at(data, pos).1;
                    n += 1;
                }
                out.into_boxed_slice()
            });
            // The last sample whose key is not greater than `key`.
            let p = samples.partition_point(|&pos| entry_at(data, pos).0.key <= key);
            let Some(&start) = p.checked_sub(1).and_then(|p| samples.get(p)) else {
                continue;
            };
            let mut pos = start;
            while pos < to {
                let (e, next) = entry_at(data, pos);
                match e.key.cmp(key) {
                    std::cmp::Ordering::Less => pos = next,
                    // The newest version decides; a tombstone hides older ones.
                    std::cmp::Ordering::Equal => return e.value,
                    std::cmp::Ordering::Greater => break,
                }
            }
        }
        None
    }

    /// Reads the next `max` live entries in (key group, key) order — key group, key, value —
    /// into `f`. Returns whether everything is read. An error of `f` stops the walk after
    /// that entry. [`LazyState::commit`] hands them out.
    pub fn next_entries(
        &mut self,
        max: usize,
        mut f: impl FnMut(u32, &[u8], &[u8]) -> Result<()>,
    ) -> Result<bool> {
        let mut n = 0usize;
        while self.next_kg < self.range.end {
            let kg = self.next_kg;
            if !self.started {
                self.cursors.clear();
                for i in (0..self.segs.len()).rev() {
                    let seg = &self.segs[i];
                    if kg >= seg.kg_start && kg < seg.kg_end {
                        let (data, from, to) = seg.group(kg);
                        if from < to {
                            let mut c = Cursor {
                                seg: i,
                                pos: from,
                                end: to,
                                next: from,
                                key: (0, 0),
                                value: None,
                            };
                            c.load(data);
                            self.cursors.push(c);
                        }
                    }
                }
                self.started = true;
            }
            let segs = &self.segs;
            loop {
                // The smallest current key; among equal ones the newest (first) segment's.
                let mut best: Option<(usize, &[u8])> = None;
                for (c, cur) in self.cursors.iter().enumerate() {
                    if cur.pos < cur.end {
                        let key = &segs[cur.seg].entries()[cur.key.0..cur.key.1];
                        if best.is_none_or(|(_, k)| key < k) {
                            best = Some((c, key));
                        }
                    }
                }
                let Some((c, key)) = best else { break };
                let data = segs[self.cursors[c].seg].entries();
                let value = self.cursors[c].value.map(|(a, b)| &data[a..b]);
                // Step past this key in every segment (older versions are shadowed).
                for cur in self.cursors.iter_mut() {
                    if cur.pos < cur.end {
                        let d = segs[cur.seg].entries();
                        if &d[cur.key.0..cur.key.1] == key {
                            cur.pos = cur.next;
                            cur.load(d);
                        }
                    }
                }
                if let Some(v) = value {
                    n += 1;
                    f(kg, key, v)?;
                }
                if n >= max {
                    self.last_key = Some(key.to_vec());
                    return Ok(false);
                }
            }
            self.next_kg += 1;
            self.last_key = None;
            self.started = false;
            self.cursors.clear();
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use crate::{CheckpointStore, FsStorage, KeyGroupRange};
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(16))]
        /// Over checkpoints that set and delete keys of a few large key groups, lookups
        /// answer as the eager merge does until a key is handed out, and the entries handed
        /// out in batches of any size are the eager merge's entries.
        #[test]
        fn lookups_and_batches_match_the_eager_merge(
            changes in proptest::collection::vec(
                proptest::collection::btree_map(
                    (0..4u32, 0..3000u32),
                    proptest::option::of(0..1000u32),
                    0..2000,
                ),
                1..4,
            ),
            batch in 1..700usize,
            range_start in 0..2u32,
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = CheckpointStore::open(dir.path(), Arc::new(FsStorage)).unwrap();
            // Keys of varying length, so entries are not all alike.
            let key = |k: u32| format!("{k:0>width$}", width = 1 + (k % 7) as usize).into_bytes();
            let mut model: BTreeMap<(u32, Vec<u8>), Vec<u8>> = BTreeMap::new();
            for (i, c) in changes.iter().enumerate() {
                let mut rows: Vec<(u32, Vec<u8>, Option<u32>)> =
                    c.iter().map(|(&(g, k), v)| (g, key(k), *v)).collect();
                rows.sort();
                rows.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
                let mut cp = store.begin(i as u64 + 1).unwrap();
                let mut w = cp.state("op", "s");
                for (g, k, v) in &rows {
                    let v = v.map(|v| v.to_le_bytes().to_vec());
                    w.put(*g, k, v.as_deref()).unwrap();
                    match v {
                        Some(v) => model.insert((*g, k.clone()), v),
                        None => model.remove(&(*g, k.clone())),
                    };
                }
                w.finish().unwrap();
                cp.commit().unwrap();
            }
            let range = KeyGroupRange { start: range_start, end: 4 };
            model.retain(|(g, _), _| range.contains(*g));
            let view = store.restore_view(changes.len() as u64).unwrap();
            let mut lazy = view.lazy("op", "s", range).unwrap();
            for g in 0..4u32 {
                for k in (0..3000u32).step_by(7) {
                    let want = model.get(&(g, key(k))).map(Vec::as_slice);
                    prop_assert_eq!(lazy.get(g, &key(k)), want);
                }
            }
            let mut out: BTreeMap<(u32, Vec<u8>), Vec<u8>> = BTreeMap::new();
            let mut last: Option<(u32, Vec<u8>)> = None;
            loop {
                let mut got = Vec::new();
                let done = lazy
                    .next_entries(batch, |g, k, v| {
                        got.push((g, k.to_vec(), v.to_vec()));
                        Ok(())
                    })
                    .unwrap();
                prop_assert!(done || got.len() == batch);
                if let Some((g, k, v)) = got.last() {
                    prop_assert_eq!(lazy.get(*g, k), Some(v.as_slice()), "read, not handed out");
                }
                lazy.commit();
                for (g, k, v) in got {
                    let at = (g, k);
                    prop_assert!(last.as_ref() < Some(&at), "in order");
                    // Handed out: no longer looked up.
                    prop_assert_eq!(lazy.get(at.0, &at.1), None);
                    last = Some(at.clone());
                    out.insert(at, v);
                }
                if let Some((g, k)) = &last {
                    // Not handed out yet: still answered.
                    if let Some(((g2, k2), v)) = model.range((*g, k.clone())..).nth(1) {
                        prop_assert_eq!(lazy.get(*g2, k2), Some(v.as_slice()));
                    }
                }
                if done {
                    break;
                }
            }
            prop_assert!(lazy.is_done());
            prop_assert_eq!(out, model);
        }
    }
}
