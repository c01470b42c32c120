//! The order in which a checkpoint's copy looks up its changed keys in a large table.
//!
//! A [`crate::state::KeyedTable`] lists the keys that changed since the last checkpoint in the
//! order they changed, which is random with respect to where they live in the hash table. In a
//! table larger than the caches each lookup in that order misses twice (the control bytes and
//! the slot), and in a VM each miss can also be a page-table walk: a copy of 200,000 keys of a
//! 1 GB table took about 350 ns a key. Looked up in the order of their places in the table, the
//! keys' control bytes are close to one another and their slots are on consecutive pages, so
//! most misses become hits or prefetched lines.
//!
//! [`CopyOrder`] puts the keys in that order a bounded amount of work at a time, so that the
//! ordering, like the copy, happens in the processing thread's short steps: one pass works out
//! each key's partition (a range of the table's buckets), a second moves the keys into their
//! partitions (a counting sort), and each partition is sorted by bucket just before its keys
//! are handed out. The order is only a matter of speed: a table that grows meanwhile, or a
//! guess of its bucket count that is off, makes the order less sequential, never wrong — every
//! key comes out exactly once either way.

/// Keys per partition, about: few enough that sorting one just before its keys are copied
/// costs little, many enough that the partitions' counts stay small beside the keys.
const PER_PARTITION: usize = 16;

/// Keys a preparation step handles (for one call of [`CopyOrder::next`] that returns
/// [`Next::Working`]): a lookup costs about this many times as much.
const PREPARE_STEP: usize = 32;

/// What [`CopyOrder::next`] gives.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Next<K> {
    /// The next key to copy.
    Key(K),
    /// A step of preparation was done; no key yet.
    Working,
    /// Every key was given.
    Done,
}

enum Phase<K> {
    /// Working out the partition of `keys[..counted]`.
    Counting {
        keys: Vec<K>,
        counted: usize,
    },
    /// Moving keys (from the end) to their partitions; `next[p]` is where partition `p`'s
    /// next key goes.
    Moving {
        keys: Vec<K>,
        sorted: Vec<Option<K>>,
        next: Vec<u32>,
    },
    /// Handing out `sorted[at..]`, partition after partition; `sorted[at..end]` is the
    /// current partition, sorted by bucket.
    Giving {
        sorted: Vec<Option<K>>,
        at: usize,
        end: usize,
        partition: usize,
    },
    Done,
}

/// Keys to copy, put in the order of their buckets in a hash table a step at a time (module
/// documentation).
pub(crate) struct CopyOrder<K> {
    phase: Phase<K>,
    /// The partition of each key (by its index in the original list).
    part: Vec<u16>,
    /// Where each partition starts in `sorted`, and (last) the number of keys.
    starts: Vec<u32>,
    /// A key's bucket is `hash & mask`; its partition, the bucket `>> shift`.
    mask: u64,
    shift: u32,
}

impl<K> CopyOrder<K> {
    /// Orders `keys` for lookups in a table of `buckets` buckets (a power of two, or it is
    /// rounded up to one) that places a key of hash `h` at bucket `h & (buckets - 1)`.
    /// At most `u32::MAX` keys ([`CopyOrder::fits`]).
    pub(crate) fn new(keys: Vec<K>, buckets: usize) -> Self {
        debug_assert!(Self::fits(keys.len()));
        let buckets = buckets.max(1).next_power_of_two() as u64;
        let partitions = (keys.len() / PER_PARTITION)
            .max(1)
            .next_power_of_two()
            .min(1 << 16) as u64;
        let partitions = partitions.min(buckets);
        let shift = buckets.trailing_zeros() - partitions.trailing_zeros();
        let n = keys.len();
        let phase = if n == 0 {
            Phase::Done
        } else {
            Phase::Counting { keys, counted: 0 }
        };
        CopyOrder {
            phase,
            part: Vec::with_capacity(n),
            starts: vec![0; partitions as usize + 1],
            mask: buckets - 1,
            shift,
        }
    }

    /// Whether `n` keys can be ordered (their places are counted in `u32`s).
    pub(crate) fn fits(n: usize) -> bool {
        u32::try_from(n).is_ok()
    }

    /// Whether every key was given.
    pub(crate) fn is_done(&self) -> bool {
        match &self.phase {
            Phase::Done => true,
            Phase::Giving { sorted, at, .. } => *at == sorted.len(),
            Phase::Counting { .. } | Phase::Moving { .. } => false,
        }
    }

    /// The next key in bucket order, or a step of the work that finds it; `hash` is the
    /// table's hash of a key. `touch` is called on each key of a partition once it is sorted,
    /// before its keys are given: a lookup there, in a loop of lookups that do not depend on
    /// one another, lets the processor wait for several cache misses at once, where the
    /// copy's own lookups, one key at a time, wait for each in turn.
    pub(crate) fn next(&mut self, hash: impl Fn(&K) -> u64, touch: impl FnMut(&K)) -> Next<K> {
        match &mut self.phase {
            Phase::Done => Next::Done,
            Phase::Counting { keys, counted } => {
                let end = (*counted + PREPARE_STEP).min(keys.len());
                for k in &keys[*counted..end] {
                    let p = ((hash(k) & self.mask) >> self.shift) as usize;
                    // In range: the mask keeps the bucket below `buckets`, and `shift`
                    // leaves one partition per `1 << shift` buckets.
                    self.part.push(p as u16);
                    self.starts[p + 1] += 1;
                }
                *counted = end;
                if end == keys.len() {
                    for i in 1..self.starts.len() {
                        self.starts[i] += self.starts[i - 1];
                    }
                    let keys = std::mem::take(keys);
                    let mut sorted = Vec::with_capacity(keys.len());
                    sorted.resize_with(keys.len(), || None);
                    let next = self.starts[..self.starts.len() - 1].to_vec();
                    self.phase = Phase::Moving { keys, sorted, next };
                }
                Next::Working
            }
            Phase::Moving { keys, sorted, next } => {
                for _ in 0..PREPARE_STEP {
                    let Some(k) = keys.pop() else { break };
                    let p = self.part[keys.len()] as usize;
                    sorted[next[p] as usize] = Some(k);
                    next[p] += 1;
                }
                if keys.is_empty() {
                    self.part = Vec::new();
                    let sorted = std::mem::take(sorted);
                    self.phase = Phase::Giving {
                        sorted,
                        at: 0,
                        end: 0,
                        partition: 0,
                    };
                }
                Next::Working
            }
            Phase::Giving {
                sorted,
                at,
                end,
                partition,
            } => {
                if *at == *end {
                    if *at == sorted.len() {
                        self.phase = Phase::Done;
                        return Next::Done;
                    }
                    // The next partition that has keys, sorted by bucket.
                    while self.starts[*partition + 1] as usize <= *at {
                        *partition += 1;
                    }
                    *end = self.starts[*partition + 1] as usize;
                    let mask = self.mask;
                    let part = &mut sorted[*at..*end];
                    part.sort_unstable_by_key(|k| k.as_ref().map(|k| hash(k) & mask));
                    part.iter().flatten().for_each(touch);
                    return Next::Working;
                }
                let k = sorted[*at].take();
                *at += 1;
                match k {
                    Some(k) => Next::Key(k),
                    // Cannot happen: every place below `end` was filled by the move.
                    None => Next::Working,
                }
            }
        }
    }

    /// The bucket of a key of hash `hash` (for tests and assertions).
    #[cfg(test)]
    fn bucket_of(&self, hash: u64) -> u64 {
        hash & self.mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every key, in the order given, and the number of calls that gave nothing before the
    /// first key.
    fn drain(o: &mut CopyOrder<u64>, hash: impl Fn(&u64) -> u64 + Copy) -> (Vec<u64>, usize) {
        let mut out = Vec::new();
        let mut before_first = 0;
        loop {
            match o.next(hash, |_| {}) {
                Next::Key(k) => out.push(k),
                Next::Working if out.is_empty() => before_first += 1,
                Next::Working => {}
                Next::Done => return (out, before_first),
            }
        }
    }

    #[test]
    fn keys_come_out_in_bucket_order() {
        let hash = |k: &u64| k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let keys: Vec<u64> = (0..10_000).collect();
        let mut o = CopyOrder::new(keys.clone(), 1 << 20);
        let (out, _) = drain(&mut o, hash);
        let buckets: Vec<u64> = out.iter().map(|k| o.bucket_of(hash(k))).collect();
        assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
        let mut sorted = out;
        sorted.sort_unstable();
        assert_eq!(sorted, keys);
        assert!(o.is_done());
    }

    #[test]
    fn each_call_does_a_bounded_amount_of_work() {
        // A call that prepares handles at most PREPARE_STEP keys: both passes over n keys
        // take at least 2n / PREPARE_STEP calls that give nothing before the first key.
        let n = 5_000;
        let mut o = CopyOrder::new((0..n as u64).collect(), 1 << 16);
        let (out, before_first) = drain(&mut o, |k: &u64| *k);
        assert_eq!(out.len(), n);
        assert!(
            before_first >= 2 * n / PREPARE_STEP,
            "{before_first} calls before the first key"
        );
    }

    proptest! {
        /// Every key comes out exactly once (repeats too), whatever the table's size, and in
        /// bucket order.
        #[test]
        fn every_key_comes_out_once(
            keys in proptest::collection::vec(0u64..500, 0..2000),
            log_buckets in 0u32..24,
        ) {
            let hash = |k: &u64| k.wrapping_mul(0xff51_afd7_ed55_8ccd).rotate_left(17);
            let mut o = CopyOrder::new(keys.clone(), 1usize << log_buckets);
            let (out, _) = drain(&mut o, hash);
            let buckets: Vec<u64> = out.iter().map(|k| o.bucket_of(hash(k))).collect();
            prop_assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
            let (mut a, mut b) = (out, keys);
            a.sort_unstable();
            b.sort_unstable();
            prop_assert_eq!(a, b);
        }
    }
}
