//! Partitioners: which consumer of an exchange gets each record.
//!
//! Keyed exchanges route a record by its key: key → stable hash → key group
//! (`hash % max_parallelism`) → the subtask that owns the key group, Flink's formula; the one
//! function for it is [`subtask_of_key`]. Keyed state is partitioned by the same key groups,
//! which is what lets a job be rescaled without rewriting its state.
use crate::runtime::panic::Named;
use std::hash::{BuildHasher, Hash};

/// Chooses the consumer of each record.
pub(crate) trait Partitioner<T>: Send {
    /// The consumer, `0..consumers`, of `item`.
    fn route(&mut self, item: &T, consumers: usize) -> usize;
}

impl<T: Send + 'static> Partitioner<T> for Box<dyn Partitioner<T>> {
    #[inline]
    fn route(&mut self, item: &T, consumers: usize) -> usize {
        (**self).route(item, consumers)
    }
}

/// The stable hash of a key: the same in every run and process, as key groups must be.
#[inline]
pub(crate) fn stable_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    rustc_hash::FxBuildHasher.hash_one(key)
}

/// The subtask, of `parallelism`, that owns `key`'s key group.
#[inline]
pub(crate) fn subtask_of_key<K: Hash + ?Sized>(
    key: &K,
    max_parallelism: u32,
    parallelism: usize,
) -> usize {
    let kg = flow_state::key_group_of(stable_hash(key), max_parallelism);
    flow_state::subtask_for_key_group(kg, max_parallelism, parallelism as u32) as usize
}

/// Routes records by the key group of the key that `key` computes.
pub(crate) struct ByKey<KF> {
    pub(crate) key: Named<KF>,
    pub(crate) max_parallelism: u32,
}

impl<T, K: Hash, KF: FnMut(&T) -> K + Send> Partitioner<T> for ByKey<KF> {
    #[inline]
    fn route(&mut self, item: &T, consumers: usize) -> usize {
        let k = crate::runtime::panic::guarded!(self.key.name, (self.key.f)(item));
        subtask_of_key(&k, self.max_parallelism, consumers)
    }
}

/// Routes `(key, value)` pairs by the key group of their key.
pub(crate) struct ByPairKey {
    pub(crate) max_parallelism: u32,
}

impl<K: Hash, V> Partitioner<(K, V)> for ByPairKey {
    #[inline]
    fn route(&mut self, item: &(K, V), consumers: usize) -> usize {
        subtask_of_key(&item.0, self.max_parallelism, consumers)
    }
}

/// Routes records round-robin, one record at a time (Flink's `rebalance`).
pub(crate) struct RoundRobin(pub(crate) usize);

impl<T> Partitioner<T> for RoundRobin {
    #[inline]
    fn route(&mut self, _item: &T, consumers: usize) -> usize {
        self.0 = (self.0 + 1) % consumers.max(1);
        self.0
    }
}

/// Routes records to consumers chosen at random (Flink's `shuffle`), from a generator seeded
/// by the producer's index, so a run is reproducible.
pub(crate) struct Shuffle(pub(crate) u64);

impl<T> Partitioner<T> for Shuffle {
    #[inline]
    fn route(&mut self, _item: &T, consumers: usize) -> usize {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = flow_state::mix64(self.0);
        ((z as u128 * consumers.max(1) as u128) >> 64) as usize
    }
}

/// Round-robin over consumers `lo..hi` (`rescale`).
pub(crate) struct Rescale {
    pub(crate) lo: usize,
    pub(crate) hi: usize,
    pub(crate) next: usize,
}

impl<T> Partitioner<T> for Rescale {
    #[inline]
    fn route(&mut self, _item: &T, consumers: usize) -> usize {
        let width = self.hi.saturating_sub(self.lo).max(1);
        let t = self.lo + self.next;
        self.next = (self.next + 1) % width;
        t.min(consumers.max(1) - 1)
    }
}

/// Routes by a user function of the record and the number of consumers (`partition_custom`).
pub(crate) struct Custom<F>(pub(crate) Named<F>);

impl<T, F: FnMut(&T, usize) -> usize + Send> Partitioner<T> for Custom<F> {
    #[inline]
    fn route(&mut self, item: &T, consumers: usize) -> usize {
        let n = consumers.max(1);
        crate::runtime::panic::guarded!(self.0.name, (self.0.f)(item, n)) % n
    }
}

/// Sends everything to one consumer (side outputs: subtask `i` feeds subtask `i`).
pub(crate) struct Forward(pub(crate) usize);

impl<T> Partitioner<T> for Forward {
    #[inline]
    fn route(&mut self, _item: &T, consumers: usize) -> usize {
        self.0 % consumers.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_goes_to_the_subtask_that_owns_its_key_group() {
        for p in 1..=5 {
            let mut seen = vec![false; p];
            for k in 0..1000u32 {
                let s = subtask_of_key(&k, 128, p);
                let kg = flow_state::key_group_of(stable_hash(&k), 128);
                assert_eq!(
                    s,
                    flow_state::subtask_for_key_group(kg, 128, p as u32) as usize
                );
                seen[s] = true;
            }
            assert!(
                seen.iter().all(|&x| x),
                "every subtask owns some keys at p={p}"
            );
        }
    }

    #[test]
    fn a_record_and_its_pair_route_alike() {
        let name = crate::runtime::panic::OpName::new("key_by", std::panic::Location::caller());
        let mut by_key = ByKey {
            key: Named {
                f: |x: &(String, u8)| x.0.clone(),
                name,
            },
            max_parallelism: 128,
        };
        let mut by_pair = ByPairKey {
            max_parallelism: 128,
        };
        for w in ["a", "bb", "ccc", "dddd"] {
            let r = (w.to_string(), 1u8);
            assert_eq!(by_key.route(&r, 3), by_pair.route(&r, 3));
        }
    }
}
