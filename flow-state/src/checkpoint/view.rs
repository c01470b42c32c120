//! Reading a checkpoint: [`RestoreView`] merges a state's segments newest first and applies
//! tombstones.

use std::cmp::{Ordering, Reverse};
use std::collections::{BTreeMap, BinaryHeap};
use std::sync::Arc;

use super::format::key_prefix;
use super::manifest::{Manifest, StateKey};
use super::segment::{RawEntry, SegCursor, Segment};
use crate::error::{Result, StateError};
use crate::KeyGroupRange;

/// The state of one complete checkpoint, with every segment it needs opened and verified.
#[derive(Debug)]
pub struct RestoreView {
    pub(crate) manifest: Manifest,
    /// Per state, its opened segments oldest first (parallel to the manifest's lists).
    pub(crate) segments: BTreeMap<StateKey, Vec<Arc<Segment>>>,
}

/// One live entry of a state: tombstones are never returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The entry's key group.
    pub key_group: u32,
    /// The key, as the engine wrote it.
    pub key: &'a [u8],
    /// The value as of the checkpoint.
    pub value: &'a [u8],
}

impl RestoreView {
    /// The checkpoint this view shows.
    pub fn checkpoint_id(&self) -> u64 {
        self.manifest.id
    }

    /// The checkpoint this one was written on top of, if any.
    pub fn base(&self) -> Option<u64> {
        self.manifest.base
    }

    /// The (operator uid, state name) pairs the checkpoint holds.
    pub fn states(&self) -> impl Iterator<Item = (&str, &str)> {
        self.manifest
            .states
            .keys()
            .map(|(u, n)| (u.as_str(), n.as_str()))
    }

    /// The metadata blob `name` written with this checkpoint.
    pub fn metadata(&self, name: &str) -> Option<&[u8]> {
        self.manifest.metadata.get(name).map(Vec::as_slice)
    }

    /// Every metadata blob of this checkpoint, by name.
    pub fn metadata_entries(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.manifest
            .metadata
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Number of segment files the state is made of (newest-first reads touch up to this many).
    pub fn segment_count(&self, uid: &str, name: &str) -> usize {
        self.segments.get(&key(uid, name)).map_or(0, Vec::len)
    }

    /// The segments of a state, oldest first (`None`: the checkpoint does not hold it).
    pub(crate) fn state_segments(&self, uid: &str, name: &str) -> Option<&[Arc<Segment>]> {
        self.segments.get(&key(uid, name)).map(Vec::as_slice)
    }

    fn state(&self, uid: &str, name: &str) -> Result<&[Arc<Segment>]> {
        self.segments
            .get(&key(uid, name))
            .map(Vec::as_slice)
            .ok_or_else(|| StateError::UnknownState {
                checkpoint: self.manifest.id,
                uid: uid.to_owned(),
                name: name.to_owned(),
            })
    }

    /// The live entries of state `name` of operator `uid` in key groups `range`, ordered by
    /// (key group, key): the state as of this checkpoint.
    pub fn entries(&self, uid: &str, name: &str, range: KeyGroupRange) -> Result<StateIter<'_>> {
        Ok(merge(self.state(uid, name)?, range))
    }

    /// An upper bound of the live entries [`RestoreView::entries`] yields for the same
    /// arguments, from the segments' indexes alone (a key in several segments, or deleted,
    /// counts more than once): to size a table before a restore fills it. 0 for an unknown
    /// state.
    pub fn entry_count_bound(&self, uid: &str, name: &str, range: KeyGroupRange) -> u64 {
        self.segments.get(&key(uid, name)).map_or(0, |segs| {
            segs.iter()
                .map(|s| s.count_in(range.start, range.end))
                .sum()
        })
    }

    /// The value of `key` in key group `key_group`, as of this checkpoint.
    pub fn get(&self, uid: &str, name: &str, key_group: u32, key: &[u8]) -> Result<Option<&[u8]>> {
        for seg in self.state(uid, name)?.iter().rev() {
            if key_group < seg.kg_start || key_group >= seg.kg_end {
                continue;
            }
            for e in seg.cursor(key_group, key_group + 1) {
                if e.key == key {
                    return Ok(e.value);
                }
                if e.key > key {
                    break;
                }
            }
        }
        Ok(None)
    }
}

/// The live entries of a state's `segs` (oldest first) in key-group range `range`, merged in
/// (key group, key) order: the newest segment holding a key decides, a tombstone hides it.
///
/// Consecutive segments whose key-group ranges follow one another without overlap (the
/// segments one checkpoint wrote for a state, split by size or by subtask) are read as one
/// run, so the heap holds a run per checkpoint rather than a cursor per file.
pub(crate) fn merge(segs: &[Arc<Segment>], range: KeyGroupRange) -> StateIter<'_> {
    let mut runs: Vec<Vec<&Segment>> = Vec::new();
    for seg in segs {
        if seg.kg_end <= range.start || seg.kg_start >= range.end {
            continue;
        }
        match runs.last_mut() {
            Some(run) if run.last().is_some_and(|l| l.kg_end <= seg.kg_start) => run.push(seg),
            _ => runs.push(vec![seg]),
        }
    }
    let mut heap = BinaryHeap::with_capacity(runs.len());
    let mut cursors = Vec::with_capacity(runs.len());
    // Newest first: among equal keys, the lower rank wins.
    for run in runs.into_iter().rev() {
        let mut c = RunCursor {
            rest: run.into_iter(),
            cur: None,
            range,
        };
        let rank = cursors.len();
        if let Some(e) = c.next() {
            heap.push(Reverse(HeapItem::new(e, rank)));
        }
        cursors.push(c);
    }
    let head = heap.pop().map(|Reverse(h)| h);
    StateIter {
        cursors,
        heap,
        head,
    }
}

/// The entries in a key-group range of segments that follow one another without overlap.
struct RunCursor<'a> {
    rest: std::vec::IntoIter<&'a Segment>,
    cur: Option<SegCursor<'a>>,
    range: KeyGroupRange,
}

impl<'a> Iterator for RunCursor<'a> {
    type Item = RawEntry<'a>;

    #[inline]
    fn next(&mut self) -> Option<RawEntry<'a>> {
        loop {
            if let Some(e) = self.cur.as_mut().and_then(Iterator::next) {
                return Some(e);
            }
            let seg = self.rest.next()?;
            self.cur = Some(seg.cursor(self.range.start, self.range.end));
        }
    }
}

fn key(uid: &str, name: &str) -> StateKey {
    (uid.to_owned(), name.to_owned())
}

/// An entry in the merge's heap, ordered by (key group, key, rank): the newest version of a
/// key (lowest rank) first.
struct HeapItem<'a> {
    kg: u32,
    /// The key's first eight bytes, big-endian: most comparisons end here.
    prefix: u64,
    /// Its next eight bytes: keys of up to 16 bytes compare without `memcmp`, which matters
    /// when many segments hold the same keys (a hot set updated in every checkpoint).
    suffix: u64,
    key: &'a [u8],
    rank: usize,
    value: Option<&'a [u8]>,
}

impl<'a> HeapItem<'a> {
    #[inline]
    fn new(e: RawEntry<'a>, rank: usize) -> Self {
        HeapItem {
            kg: e.kg,
            prefix: key_prefix(e.key),
            suffix: e.key.get(8..).map_or(0, key_prefix),
            key: e.key,
            rank,
            value: e.value,
        }
    }

    /// Whether `other` holds the same key.
    #[inline]
    fn same_key(&self, other: &HeapItem<'_>) -> bool {
        self.kg == other.kg
            && self.prefix == other.prefix
            && self.suffix == other.suffix
            && (self.key.len() == other.key.len())
            && (self.key.len() <= 16 || self.key == other.key)
    }

    /// The bytewise order of keys: when both are at most 16 bytes long and agree in their
    /// zero-padded 16 bytes, the shorter one is a prefix of the longer one.
    #[inline]
    fn key_order(&self, other: &HeapItem<'_>) -> Ordering {
        self.prefix
            .cmp(&other.prefix)
            .then(self.suffix.cmp(&other.suffix))
            .then_with(|| {
                if self.key.len() <= 16 && other.key.len() <= 16 {
                    self.key.len().cmp(&other.key.len())
                } else {
                    self.key.cmp(other.key)
                }
            })
    }
}

impl Ord for HeapItem<'_> {
    #[inline]
    fn cmp(&self, other: &Self) -> Ordering {
        self.kg
            .cmp(&other.kg)
            .then_with(|| self.key_order(other))
            .then(self.rank.cmp(&other.rank))
    }
}

impl PartialOrd for HeapItem<'_> {
    #[inline]
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for HeapItem<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for HeapItem<'_> {}

/// Iterator over a state's live entries: a k-way merge of its segments, newest wins.
pub struct StateIter<'a> {
    cursors: Vec<RunCursor<'a>>,
    /// The smallest entry not yet returned, kept out of `heap` (it is never larger than the
    /// heap's top): while its run goes on with entries smaller than the heap's top — the
    /// common case of a large base among small deltas — each costs one comparison and no
    /// heap operation.
    head: Option<HeapItem<'a>>,
    heap: BinaryHeap<Reverse<HeapItem<'a>>>,
}

impl<'a> StateIter<'a> {
    /// Takes the smallest entry and refills `head` from the same run, or from the heap when
    /// the run's next entry is larger than the heap's top (which then takes its place).
    fn pop_min(&mut self) -> Option<HeapItem<'a>> {
        let min = self.head.take()?;
        self.head = match self.cursors[min.rank].next() {
            Some(e) => {
                let next = HeapItem::new(e, min.rank);
                match self.heap.peek_mut() {
                    Some(mut top) if top.0 < next => {
                        Some(std::mem::replace(&mut *top, Reverse(next)).0)
                    }
                    _ => Some(next),
                }
            }
            None => self.heap.pop().map(|Reverse(h)| h),
        };
        Some(min)
    }
}

impl<'a> StateIter<'a> {
    /// The next key's newest version, a tombstone included (`value` `None`).
    pub(crate) fn next_raw(&mut self) -> Option<RawEntry<'a>> {
        let top = self.pop_min()?;
        // Older versions of the same key (higher ranks) come next: they are shadowed.
        while self.head.as_ref().is_some_and(|h| h.same_key(&top)) {
            self.pop_min();
        }
        Some(RawEntry {
            kg: top.kg,
            key: top.key,
            value: top.value,
        })
    }
}

impl<'a> Iterator for StateIter<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        loop {
            let e = self.next_raw()?;
            if let Some(value) = e.value {
                return Some(Entry {
                    key_group: e.kg,
                    key: e.key,
                    value,
                });
            }
        }
    }
}

impl std::fmt::Debug for StateIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateIter")
            .field("runs", &self.cursors.len())
            .finish()
    }
}
