//! Reading a checkpoint: [`RestoreView`] merges a state's segments newest first and applies
//! tombstones.

use std::cmp::Reverse;
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
pub(crate) fn merge(segs: &[Arc<Segment>], range: KeyGroupRange) -> StateIter<'_> {
    let mut heap = BinaryHeap::new();
    let mut cursors = Vec::new();
    for seg in segs.iter().rev() {
        if seg.kg_end <= range.start || seg.kg_start >= range.end {
            continue;
        }
        let mut c = seg.cursor(range.start, range.end);
        let rank = cursors.len();
        if let Some(e) = c.next() {
            heap.push(Reverse(HeapItem {
                kg: e.kg,
                prefix: key_prefix(e.key),
                key: e.key,
                rank,
                value: e.value,
            }));
        }
        cursors.push(c);
    }
    StateIter { cursors, heap }
}

fn key(uid: &str, name: &str) -> StateKey {
    (uid.to_owned(), name.to_owned())
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct HeapItem<'a> {
    kg: u32,
    /// The key's first eight bytes, big-endian: most comparisons end here, without `memcmp`.
    prefix: u64,
    key: &'a [u8],
    rank: usize,
    value: Option<&'a [u8]>,
}

/// Iterator over a state's live entries: a k-way merge of its segments, newest wins.
pub struct StateIter<'a> {
    cursors: Vec<SegCursor<'a>>,
    heap: BinaryHeap<Reverse<HeapItem<'a>>>,
}

impl<'a> StateIter<'a> {
    fn advance(&mut self, rank: usize) {
        if let Some(RawEntry { kg, key, value }) = self.cursors[rank].next() {
            self.heap.push(Reverse(HeapItem {
                kg,
                prefix: key_prefix(key),
                key,
                rank,
                value,
            }));
        }
    }
}

impl<'a> Iterator for StateIter<'a> {
    type Item = Entry<'a>;

    fn next(&mut self) -> Option<Entry<'a>> {
        loop {
            let Reverse(top) = self.heap.pop()?;
            self.advance(top.rank);
            // Older versions of the same key are shadowed.
            while let Some(Reverse(older)) = self.heap.peek() {
                if older.kg != top.kg || older.key != top.key {
                    break;
                }
                let rank = older.rank;
                self.heap.pop();
                self.advance(rank);
            }
            if let Some(value) = top.value {
                return Some(Entry {
                    key_group: top.kg,
                    key: top.key,
                    value,
                });
            }
        }
    }
}

impl std::fmt::Debug for StateIter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateIter")
            .field("segments", &self.cursors.len())
            .finish()
    }
}
