//! flow-state: how keyed state is partitioned and stored.
//!
//! Keyed state in flow is partitioned by *key group*: a key's stable 64-bit hash is mapped to one
//! of `max_parallelism` key groups, and each parallel subtask owns a contiguous range of key
//! groups. Because the key-group count is fixed for the lifetime of a job while parallelism may
//! change, state written by a job at one parallelism can be redistributed to another by handing
//! whole key groups to new owners (the same scheme as Apache Flink).
//!
//! ```
//! use flow_state::{KeyGroupRange, key_group_of, subtask_for_key_group};
//!
//! let max_parallelism = 128;
//! let kg = key_group_of(0xDEAD_BEEF, max_parallelism);
//! let owner = subtask_for_key_group(kg, max_parallelism, 4);
//! assert!(KeyGroupRange::for_subtask(owner, max_parallelism, 4).contains(kg));
//! ```
//!
//! Checkpoints of keyed state are stored by [`CheckpointStore`] in one directory, in the format
//! and with the commit protocol of `FORMAT.md` (beside this crate's `Cargo.toml`), through the
//! [`Storage`] trait: [`FsStorage`] on a real filesystem, [`SimStorage`] to simulate power loss.
//!
//! ```
//! use std::sync::Arc;
//! use flow_state::{CheckpointStore, FsStorage, KeyGroupRange};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let mut store = CheckpointStore::open(dir.path(), Arc::new(FsStorage)).unwrap();
//! let mut cp = store.begin(1).unwrap();
//! let mut counts = cp.state("count-words", "counts");
//! counts.put(3, b"flink", Some(b"2")).unwrap();
//! counts.put(7, b"flow", Some(b"5")).unwrap();
//! counts.finish().unwrap();
//! cp.put_metadata("source-0", b"offset=1234");
//! cp.commit().unwrap();
//!
//! let latest = store.latest_complete().unwrap();
//! assert_eq!(latest.checkpoint, Some(1));
//! let view = store.restore_view(1).unwrap();
//! let kgs = KeyGroupRange { start: 0, end: 5 };
//! let entries: Vec<_> = view.entries("count-words", "counts", kgs).unwrap().collect();
//! assert_eq!(entries.len(), 1);
//! assert_eq!(entries[0].value, b"2");
//! ```

#![deny(clippy::undocumented_unsafe_blocks)]

mod checkpoint;
mod error;
pub mod sim;
pub mod spill;
pub mod storage;
mod sys;

pub use checkpoint::{
    entry_order, key_prefix, ChainShape, CheckpointStore, CheckpointWriter, CommitInfo, Compacted,
    Compaction, CompactionFiles, Entry, GcReport, LazyState, Recovered, RestoreView, StateIter,
    StateWriter, StoreOptions,
};
pub use error::{Result, StateError};

pub use sim::SimStorage;
pub use storage::{FsStorage, LockGuard, ReadOnlyBytes, Storage, WritableFile};
pub use sys::prefetch;

/// The default number of key groups (Flink's default lower bound for `maxParallelism`).
pub const DEFAULT_MAX_PARALLELISM: u32 = 128;

/// Spreads a 64-bit hash so that every bit of the input affects the low bits of the output.
///
/// Key groups are taken modulo `max_parallelism`; hash maps inside an operator use the low bits
/// of the same key's hash. Mixing first keeps the two uses independent, so the keys owned by
/// one subtask still spread across all buckets of that subtask's hash maps.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The key group of a key whose stable hash is `hash`.
#[inline]
pub fn key_group_of(hash: u64, max_parallelism: u32) -> u32 {
    (mix64(hash) % u64::from(max_parallelism.max(1))) as u32
}

/// The subtask (0-based) that owns key group `key_group` when a job with `max_parallelism` key
/// groups runs at `parallelism`: Flink's `keyGroup * parallelism / maxParallelism`.
#[inline]
pub fn subtask_for_key_group(key_group: u32, max_parallelism: u32, parallelism: u32) -> u32 {
    ((u64::from(key_group) * u64::from(parallelism)) / u64::from(max_parallelism.max(1))) as u32
}

/// A contiguous, inclusive-exclusive range of key groups `[start, end)` owned by one subtask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeyGroupRange {
    /// First key group of the range.
    pub start: u32,
    /// One past the last key group of the range.
    pub end: u32,
}

impl KeyGroupRange {
    /// The key groups that subtask `index` of `parallelism` owns; the inverse of
    /// [`subtask_for_key_group`].
    pub fn for_subtask(index: u32, max_parallelism: u32, parallelism: u32) -> Self {
        let p = u64::from(parallelism.max(1));
        let m = u64::from(max_parallelism);
        // smallest kg with kg * p / m >= index  <=>  kg >= ceil(index * m / p)
        let start = (u64::from(index) * m).div_ceil(p) as u32;
        let end = ((u64::from(index) + 1) * m).div_ceil(p) as u32;
        KeyGroupRange {
            start,
            end: end.min(max_parallelism),
        }
    }

    /// Whether `key_group` lies in this range.
    pub fn contains(&self, key_group: u32) -> bool {
        (self.start..self.end).contains(&key_group)
    }

    /// Number of key groups in the range.
    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the range holds no key group.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_partition_all_key_groups_and_agree_with_assignment() {
        for m in [1u32, 7, 128, 1000] {
            for p in 1..=m.min(9) {
                let mut next = 0;
                for i in 0..p {
                    let r = KeyGroupRange::for_subtask(i, m, p);
                    assert_eq!(r.start, next, "m={m} p={p} i={i}");
                    for kg in r.start..r.end {
                        assert_eq!(subtask_for_key_group(kg, m, p), i, "m={m} p={p} kg={kg}");
                    }
                    next = r.end;
                }
                assert_eq!(next, m);
            }
        }
    }

    #[test]
    fn key_groups_use_every_group_for_sequential_hashes() {
        let mut seen = [false; 128];
        for h in 0..10_000u64 {
            seen[key_group_of(h, 128) as usize] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
