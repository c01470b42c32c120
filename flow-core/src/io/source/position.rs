//! Source positions for checkpoints: which units of its input a replayable source has read.
//!
//! The replayable sources hand out their input in numbered units, in increasing order: a
//! file's chunks, a generator's indices, a collection's items. Each subtask remembers the
//! units it emitted as a [`RangeSet`]; its position at a barrier is (a superset of nothing
//! but) units emitted before that barrier. On restore every subtask of the new run gets the
//! positions of all subtasks of the checkpointed run, whatever the parallelism was: their
//! union is what the checkpoint read, and the source hands out only the other units.
//!
//! ## Keeping positions small
//!
//! Subtasks take units from a shared counter, so each one's own set is full of holes (the
//! units the others took) and would grow with the input. [`Progress`] compacts them with
//! *claims*: a claim is the union of every subtask's recorded units at some moment, labelled
//! with the first checkpoint it is valid for. At a moment when no subtask has passed barrier
//! `b` yet, everything any subtask recorded precedes that subtask's barrier `b` (or its end),
//! so the union at that moment belongs in every checkpoint from `b` on. A subtask whose next
//! position is for checkpoint `h` or later may replace its units by any claim labelled `h` or
//! less; its position is then that claim plus what it emitted since. The first subtask to
//! reach a barrier makes a new claim, and so does a subtask whose own set grew large, so in a
//! steady state a position is a prefix plus a few ranges.
//!
//! Checkpoint numbers are counted per source: every subtask of a source injects every barrier
//! in order, so its `k`-th barrier is the same checkpoint for all of them.
//!
//! ## Blob format
//!
//! Byte 0 is the format version ([`VERSION`]), byte 1 the kind of source (`f` file, `g`
//! generator, `i` collection); the rest is postcard: the source's header (see each source),
//! then the done set and the marked set, each a `Vec<u64>` of `(gap, length)` pairs, a gap
//! counting from the end of the previous range (from 0 for the first). Marks are a subset of
//! the done units: for CSV files, the chunks with an odd number of `"` bytes.
use crate::error::{Error, Result};
use crate::runtime::snapshot::{decode, encode};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::Arc;

/// The version of the position blobs this build writes and reads.
pub(crate) const VERSION: u8 = 1;

/// A set of `u64`s as sorted, disjoint, non-adjacent, non-empty half-open ranges.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct RangeSet {
    r: Vec<(u64, u64)>,
}

impl RangeSet {
    /// The ranges, in increasing order.
    pub(crate) fn ranges(&self) -> &[(u64, u64)] {
        &self.r
    }

    /// The number of ranges.
    pub(crate) fn len(&self) -> usize {
        self.r.len()
    }

    /// Whether the set is empty.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.r.is_empty()
    }

    /// One past the largest element (0 when empty).
    pub(crate) fn end(&self) -> u64 {
        self.r.last().map_or(0, |r| r.1)
    }

    /// The end of the range that holds `x`, if any.
    #[cfg(test)]
    pub(crate) fn covering(&self, x: u64) -> Option<u64> {
        let i = self.r.partition_point(|&(_, e)| e <= x);
        match self.r.get(i) {
            Some(&(s, e)) if s <= x => Some(e),
            _ => None,
        }
    }

    /// Whether `x` is in the set.
    #[cfg(test)]
    pub(crate) fn contains(&self, x: u64) -> bool {
        self.covering(x).is_some()
    }

    /// Adds `[from, to)`: constant time when it starts at or after the set's end.
    pub(crate) fn insert(&mut self, from: u64, to: u64) {
        if from >= to {
            return;
        }
        match self.r.last_mut() {
            None => return self.r.push((from, to)),
            Some(last) if from > last.1 => return self.r.push((from, to)),
            Some(last) if from >= last.0 => {
                last.1 = last.1.max(to);
                return;
            }
            Some(_) => {}
        }
        // Ranges i..j overlap or touch [from, to).
        let i = self.r.partition_point(|&(_, e)| e < from);
        let j = self.r.partition_point(|&(s, _)| s <= to);
        if i == j {
            self.r.insert(i, (from, to));
        } else {
            let s = from.min(self.r[i].0);
            let e = to.max(self.r[j - 1].1);
            self.r.splice(i..j, [(s, e)]);
        }
    }

    /// Adds every element of `other`.
    pub(crate) fn union_with(&mut self, other: &RangeSet) {
        if other.r.is_empty() {
            return;
        }
        if self.r.is_empty() {
            self.r = other.r.clone();
            return;
        }
        let mut out: Vec<(u64, u64)> = Vec::with_capacity(self.r.len() + other.r.len());
        let (mut a, mut b) = (self.r.iter().peekable(), other.r.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 <= y.0 => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => break,
            };
            let Some(&(s, e)) = next else { break };
            match out.last_mut() {
                Some(last) if s <= last.1 => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        self.r = out;
    }

    /// Removes every element of `other`.
    pub(crate) fn subtract(&mut self, other: &RangeSet) {
        if self.r.is_empty() || other.r.is_empty() {
            return;
        }
        let mut out = Vec::with_capacity(self.r.len());
        let mut j = 0;
        for &(mut s, e) in &self.r {
            // Skip the ranges of `other` that end before this one starts.
            while j < other.r.len() && other.r[j].1 <= s {
                j += 1;
            }
            let mut k = j;
            while s < e {
                match other.r.get(k) {
                    Some(&(os, oe)) if os < e => {
                        if os > s {
                            out.push((s, os));
                        }
                        s = s.max(oe);
                        k += 1;
                    }
                    _ => {
                        out.push((s, e));
                        break;
                    }
                }
            }
        }
        self.r = out;
    }

    /// The `(gap, length)` pairs of the blob format.
    fn deltas(&self) -> Vec<u64> {
        let mut out = Vec::with_capacity(self.r.len() * 2);
        let mut prev = 0;
        for &(s, e) in &self.r {
            out.push(s - prev);
            out.push(e - s);
            prev = e;
        }
        out
    }

    /// Reads `(gap, length)` pairs.
    fn from_deltas(d: &[u64]) -> std::result::Result<Self, String> {
        if !d.len().is_multiple_of(2) {
            return Err("odd number of range fields".into());
        }
        let mut set = RangeSet::default();
        let mut prev = 0u64;
        for pair in d.chunks_exact(2) {
            let s = prev.checked_add(pair[0]).ok_or("range out of bounds")?;
            let e = s.checked_add(pair[1]).ok_or("range out of bounds")?;
            if s == e {
                return Err("empty range".into());
            }
            set.insert(s, e);
            prev = e;
        }
        Ok(set)
    }
}

/// What a source read: the done units, and which of them are marked (for CSV files: the
/// chunks with an odd number of quotes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Done {
    pub(crate) set: RangeSet,
    pub(crate) marks: RangeSet,
}

impl Done {
    /// Adds units `[from, to)`, marked if `mark`.
    pub(crate) fn insert(&mut self, from: u64, to: u64, mark: bool) {
        self.set.insert(from, to);
        if mark {
            self.marks.insert(from, to);
        }
    }

    pub(crate) fn union_with(&mut self, other: &Done) {
        self.set.union_with(&other.set);
        self.marks.union_with(&other.marks);
    }

    /// Removes the units of `other` (and their marks).
    pub(crate) fn subtract(&mut self, other: &Done) {
        self.set.subtract(&other.set);
        self.marks.subtract(&other.set);
    }
}

/// Encodes a position blob: `header` then `done` (see the module's docs).
pub(crate) fn encode_blob<H: Serialize>(kind: u8, header: &H, done: &Done) -> Result<Vec<u8>> {
    let mut out = vec![VERSION, kind];
    encode(&(header, done.set.deltas(), done.marks.deltas()), &mut out)?;
    Ok(out)
}

/// Decodes a position blob of a source of `kind`; `source` names it for error messages.
pub(crate) fn decode_blob<H: DeserializeOwned>(
    kind: u8,
    blob: &[u8],
    source: &str,
) -> Result<(H, Done)> {
    let bad = |why: String| {
        Error::Checkpoint(format!(
            "{source}: cannot read its position in the checkpoint: {why}"
        ))
    };
    match blob {
        [VERSION, k, ..] if *k == kind => {}
        [VERSION, k, ..] => {
            return Err(bad(format!(
                "it was written by a different kind of source ({:?}): did the job change?",
                *k as char
            )))
        }
        [v, ..] => {
            return Err(bad(format!(
                "format version {v}, this build reads version {VERSION}"
            )))
        }
        [] => return Err(bad("empty position".into())),
    }
    let what = || format!("the position of {source}");
    let (header, set, marks): (H, Vec<u64>, Vec<u64>) = decode(&blob[2..], &what)?;
    let done = Done {
        set: RangeSet::from_deltas(&set).map_err(&bad)?,
        marks: RangeSet::from_deltas(&marks).map_err(&bad)?,
    };
    Ok((header, done))
}

/// The units a restored source still has to hand out: those in `[0, limit)` that are not
/// done, numbered in increasing order by *positions* 0, 1, 2, ...
pub(crate) struct Todo {
    ranges: Vec<(u64, u64)>,
    /// Per range, the positions before it.
    cum: Vec<u64>,
}

impl Todo {
    pub(crate) fn new(done: &RangeSet, limit: u64) -> Self {
        let mut ranges = Vec::new();
        let mut at = 0u64;
        for &(s, e) in done.ranges() {
            if s >= limit {
                break;
            }
            if s > at {
                ranges.push((at, s));
            }
            at = e;
        }
        if at < limit {
            ranges.push((at, limit));
        }
        let mut cum = Vec::with_capacity(ranges.len());
        let mut n = 0u64;
        for &(s, e) in &ranges {
            cum.push(n);
            n = n.saturating_add(e - s);
        }
        Todo { ranges, cum }
    }

    /// The unit at position `p`, or `None` past the last one.
    pub(crate) fn nth(&self, p: u64) -> Option<u64> {
        self.runs(p, 1).next().map(|r| r.0)
    }

    /// The units at positions `[p, p + n)`, as runs of consecutive units.
    pub(crate) fn runs(&self, p: u64, n: u64) -> Runs<'_> {
        let i = self.cum.partition_point(|&c| c <= p).saturating_sub(1);
        Runs {
            todo: self,
            i,
            p,
            left: n,
        }
    }
}

/// See [`Todo::runs`].
pub(crate) struct Runs<'a> {
    todo: &'a Todo,
    i: usize,
    p: u64,
    left: u64,
}

impl Iterator for Runs<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        if self.left == 0 {
            return None;
        }
        let (&(s, e), &c) = (self.todo.ranges.get(self.i)?, self.todo.cum.get(self.i)?);
        let from = s.checked_add(self.p.checked_sub(c)?)?;
        if from >= e {
            return None;
        }
        let k = (e - from).min(self.left);
        self.left -= k;
        self.p = self.p.saturating_add(k);
        self.i += 1;
        Some((from, from + k))
    }
}

/// What a restored source resumes from, installed once by the first of its subtasks to
/// restore.
pub(crate) struct Resume {
    /// The units still to hand out.
    pub(crate) todo: Todo,
    /// What the restored checkpoint read.
    pub(crate) done: Arc<Done>,
}

/// The union of the done sets of `positions`, each decoded by `decode` (which checks its
/// header).
pub(crate) fn union_of(
    positions: &[&[u8]],
    mut decode: impl FnMut(&[u8]) -> Result<Done>,
) -> Result<Done> {
    let mut done = Done::default();
    for p in positions {
        done.union_with(&decode(p)?);
    }
    Ok(done)
}

/// A subtask's own position state; see [`Progress`].
pub(crate) struct Cursor {
    /// The subtask's index among the source's readers.
    me: usize,
    /// The barriers it passed.
    count: u64,
    /// The claim (or restored set) its position includes besides its own units.
    base: Arc<Done>,
    /// Whether its input ended: the next position is its final one.
    pub(crate) ended: bool,
    /// Own ranges at which to try a compaction while reading.
    compact_at: usize,
}

impl Cursor {
    /// Starts from `restored`: what the restored checkpoint read.
    pub(crate) fn set_base(&mut self, restored: Arc<Done>) {
        self.base = restored;
    }
}

/// The claims of the source's subtasks, see the module's docs.
#[derive(Default)]
struct Ledger {
    /// The most barriers any subtask has passed.
    passed: u64,
    /// Recent claims with the first checkpoint (counted per source) they are valid for;
    /// labels and sets increase.
    claims: VecDeque<(u64, Arc<Done>)>,
}

/// Claims kept for subtasks that lag behind.
const CLAIMS_KEPT: usize = 8;
/// Own ranges at which a reading subtask tries to compact its set.
const COMPACT_AT: usize = 4096;

/// The units each subtask of a source emitted, shared by the subtasks (see the module's docs).
pub(crate) struct Progress {
    /// Per subtask, the units it emitted that its base does not hold.
    emitted: Vec<Mutex<Done>>,
    ledger: Mutex<Ledger>,
}

impl Progress {
    pub(crate) fn new(readers: usize) -> Self {
        Progress {
            emitted: (0..readers.max(1)).map(|_| Mutex::default()).collect(),
            ledger: Mutex::default(),
        }
    }

    /// The position state of subtask `me`.
    pub(crate) fn cursor(&self, me: usize) -> Cursor {
        Cursor {
            me: me.min(self.emitted.len() - 1),
            count: 0,
            base: Arc::default(),
            ended: false,
            compact_at: COMPACT_AT,
        }
    }

    /// Makes `restored` (what the restored checkpoint read) the first claim. Called once,
    /// before any subtask reads.
    pub(crate) fn install(&self, restored: Arc<Done>) {
        self.ledger.lock().claims.push_back((0, restored));
    }

    /// Records that the subtask of `cur` emitted units `[from, to)` (`mark`ed).
    pub(crate) fn record(&self, cur: &mut Cursor, from: u64, to: u64, mark: bool) {
        let n = {
            let Some(e) = self.emitted.get(cur.me) else {
                return;
            };
            let mut e = e.lock();
            e.insert(from, to, mark);
            e.set.len()
        };
        if n >= cur.compact_at {
            // Its next position is for the next barrier or its end.
            let horizon = cur.count + 1;
            self.compact(cur, horizon, false);
            let left = self.emitted.get(cur.me).map_or(0, |e| e.lock().set.len());
            cur.compact_at = COMPACT_AT.max(left.saturating_mul(2));
        }
    }

    /// The position of the subtask of `cur` for its next barrier, or its final one once its
    /// input ended.
    pub(crate) fn snapshot(&self, cur: &mut Cursor) -> Done {
        let horizon = if cur.ended {
            cur.count + 1
        } else {
            cur.count += 1;
            cur.count
        };
        self.compact(cur, horizon, !cur.ended);
        let mut d = (*cur.base).clone();
        if let Some(e) = self.emitted.get(cur.me) {
            d.union_with(&e.lock());
        }
        d
    }

    /// Replaces the units of `cur` by the newest claim valid for checkpoint `horizon`, making
    /// a new claim if no subtask has passed that barrier yet. `barrier`: the subtask is now
    /// passing barrier `horizon`.
    fn compact(&self, cur: &mut Cursor, horizon: u64, barrier: bool) {
        let mut l = self.ledger.lock();
        if l.passed < horizon {
            // No subtask has passed barrier `passed + 1`: everything recorded so far precedes
            // it (each subtask records a unit before it passes on the unit's records).
            let mut claim = l.claims.back().map(|c| (*c.1).clone()).unwrap_or_default();
            for e in &self.emitted {
                claim.union_with(&e.lock());
            }
            let label = l.passed + 1;
            l.claims.push_back((label, Arc::new(claim)));
            if l.claims.len() > CLAIMS_KEPT {
                l.claims.pop_front();
            }
        }
        if barrier {
            l.passed = l.passed.max(horizon);
        }
        let pick = l
            .claims
            .iter()
            .rev()
            .find(|c| c.0 <= horizon)
            .map(|c| c.1.clone());
        drop(l);
        if let Some(claim) = pick {
            if !Arc::ptr_eq(&claim, &cur.base) {
                if let Some(e) = self.emitted.get(cur.me) {
                    e.lock().subtract(&claim);
                }
                cur.base = claim;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(r: &[(u64, u64)]) -> RangeSet {
        let mut s = RangeSet::default();
        for &(a, b) in r {
            s.insert(a, b);
        }
        s
    }

    #[test]
    fn range_set_inserts_merge_in_any_order() {
        let s = set(&[(5, 7), (0, 2), (2, 3), (10, 12), (6, 11)]);
        assert_eq!(s.ranges(), &[(0, 3), (5, 12)]);
        assert!(s.contains(11) && !s.contains(12) && !s.contains(4));
        assert_eq!(s.covering(5), Some(12));
        let s = set(&[(0, 1), (4, 5), (2, 3)]);
        assert_eq!(s.ranges(), &[(0, 1), (2, 3), (4, 5)]);
    }

    #[test]
    fn range_set_union_and_subtract() {
        let mut a = set(&[(0, 3), (6, 9), (20, 25)]);
        a.union_with(&set(&[(3, 4), (8, 12), (30, 31)]));
        assert_eq!(a.ranges(), &[(0, 4), (6, 12), (20, 25), (30, 31)]);
        a.subtract(&set(&[(1, 2), (5, 7), (10, 22), (24, 40)]));
        assert_eq!(a.ranges(), &[(0, 1), (2, 4), (7, 10), (22, 24)]);
        let mut b = set(&[(0, 10)]);
        b.subtract(&set(&[(0, 10)]));
        assert!(b.is_empty());
    }

    #[test]
    fn blobs_round_trip_and_reject_other_kinds() {
        let done = Done {
            set: set(&[(0, 100), (103, 104), (u64::MAX - 1, u64::MAX)]),
            marks: set(&[(7, 8)]),
        };
        let b = encode_blob(b'g', &Some(5u64), &done).unwrap();
        let (h, d): (Option<u64>, Done) = decode_blob(b'g', &b, "test").unwrap();
        assert_eq!((h, d), (Some(5), done));
        let e = decode_blob::<Option<u64>>(b'f', &b, "read_lines(x)").unwrap_err();
        assert!(e.to_string().contains("read_lines(x)"), "{e}");
        let mut b2 = b.clone();
        b2[0] = 9;
        let e = decode_blob::<Option<u64>>(b'g', &b2, "g").unwrap_err();
        assert!(e.to_string().contains("version 9"), "{e}");
        assert!(decode_blob::<Option<u64>>(b'g', &b[..4], "g").is_err());
    }

    #[test]
    fn todo_numbers_the_units_not_done() {
        let t = Todo::new(&set(&[(0, 3), (5, 6), (8, 10)]), 12);
        let all: Vec<u64> = (0..8).map_while(|p| t.nth(p)).collect();
        assert_eq!(all, vec![3, 4, 6, 7, 10, 11]);
        let runs: Vec<_> = t.runs(1, 4).collect();
        assert_eq!(runs, vec![(4, 5), (6, 8), (10, 11)]);
        assert_eq!(t.runs(5, 10).collect::<Vec<_>>(), vec![(11, 12)]);
        assert_eq!(t.runs(6, 10).count(), 0);
        let unbounded = Todo::new(&set(&[(0, 10)]), u64::MAX);
        assert_eq!(unbounded.nth(5), Some(15));
        assert_eq!(Todo::new(&set(&[(0, 12)]), 12).nth(0), None);
    }

    #[test]
    fn readers_compact_their_sets_between_barriers() {
        let p = Progress::new(2);
        let (mut a, mut b) = (p.cursor(0), p.cursor(1));
        for i in 0..40_000 {
            p.record(if i % 2 == 0 { &mut a } else { &mut b }, i, i + 1, false);
            for e in &p.emitted {
                assert!(e.lock().set.len() <= 2 * COMPACT_AT);
            }
        }
        a.ended = true;
        b.ended = true;
        let mut all = p.snapshot(&mut a);
        all.union_with(&p.snapshot(&mut b));
        assert_eq!(all.set.ranges(), &[(0, 40_000)]);
    }

    #[test]
    fn claims_keep_positions_small_and_complete() {
        // Two subtasks taking alternate units; subtask 0 reaches each barrier first.
        let p = Progress::new(2);
        let (mut a, mut b) = (p.cursor(0), p.cursor(1));
        for i in 0..10 {
            p.record(if i % 2 == 0 { &mut a } else { &mut b }, i, i + 1, false);
        }
        let pa = p.snapshot(&mut a); // first at barrier 1: claims 0..10
        assert_eq!(pa.set.ranges(), &[(0, 10)]);
        p.record(&mut b, 10, 11, false); // b, not yet at barrier 1
        p.record(&mut a, 11, 12, false); // a, after barrier 1
        let pb = p.snapshot(&mut b);
        // b's position for barrier 1: the claim and its unit 10, not a's unit 11.
        assert_eq!(pb.set.ranges(), &[(0, 11)]);
        let pa2 = p.snapshot(&mut a);
        assert_eq!(pa2.set.ranges(), &[(0, 12)]);
    }
}

/// Drives the subtasks of a source as the runtime does, for the sources' tests.
#[cfg(test)]
pub(crate) mod sim {
    use crate::record::Batch;
    use crate::runtime::checkpoint::Coordinator;
    use crate::runtime::persist::WriterShared;
    use crate::runtime::stage::{Input, Poll};
    use crate::runtime::task::{JobShared, TaskCx};
    use std::collections::BTreeMap;
    use std::sync::Arc;

    /// The records and positions of one checkpoint of a run.
    pub(crate) struct Run<T> {
        /// The records the subtasks emitted before the checkpoint's barrier (or before their
        /// end, if they ended before it).
        pub(crate) kept: Vec<T>,
        /// The subtasks' positions in the checkpoint.
        pub(crate) blobs: BTreeMap<usize, Vec<u8>>,
    }

    /// A pseudo-random number generator (xorshift).
    pub(crate) struct Rng(pub(crate) u64);

    impl Rng {
        pub(crate) fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Runs `inputs`, the subtasks of one source, after restoring `restore` (the positions of
    /// a checkpoint) if any, in an interleaving picked by `seed`, with checkpoint barriers
    /// requested at random. With `checkpoint: Some(c)`: stops a while after every subtask
    /// passed barrier `c` (or ended) and returns checkpoint `c`; barriers after `c` are
    /// requested too. With `None`: runs to the end and returns everything.
    pub(crate) fn run<T>(
        mut inputs: Vec<Box<dyn Input<T>>>,
        restore: Option<&BTreeMap<usize, Vec<u8>>>,
        seed: u64,
        checkpoint: Option<u64>,
    ) -> Run<T> {
        // A persisting job: sources record what they emit only then.
        let (tx, _rx) = crossbeam_channel::unbounded();
        let coordinator =
            Coordinator::persisting(None, 0, 0, Some((tx, Arc::new(WriterShared::default()))));
        let job = JobShared::with_checkpoints(vec![], 1, Arc::default(), coordinator, vec![])
            .expect("job");
        if let Some(blobs) = restore {
            let positions: Vec<&[u8]> = blobs.values().map(Vec::as_slice).collect();
            for i in &mut inputs {
                i.restore(&positions).expect("restore");
            }
        }
        let n = inputs.len();
        let target = checkpoint.unwrap_or(0);
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut emitted: Vec<Vec<T>> = (0..n).map(|_| Vec::new()).collect();
        let mut kept: Vec<Option<usize>> = vec![None; n];
        let mut blobs = BTreeMap::new();
        let mut count = vec![0u64; n];
        let mut ended = vec![false; n];
        let mut requested = 0;
        let mut after = 0;
        for step in 0.. {
            assert!(step < 10_000_000, "the source made no progress");
            if ended.iter().all(|e| *e) {
                break;
            }
            if checkpoint.is_some() && (0..n).all(|i| ended[i] || count[i] >= target) {
                after += 1;
                if after > 4 * n {
                    break;
                }
            }
            if requested < target + 2 && rng.below(6) == 0 {
                requested += 1;
            }
            let i = rng.below(n as u64) as usize;
            if ended[i] {
                continue;
            }
            // Between two batches: the barriers asked for since the last one.
            while checkpoint.is_some() && count[i] < requested {
                count[i] += 1;
                let b = inputs[i].snapshot().expect("snapshot").expect("a position");
                if count[i] == target {
                    blobs.insert(i, b);
                    kept[i] = Some(emitted[i].len());
                }
            }
            let cx = TaskCx {
                shared: &job,
                id: i,
            };
            let mut buf = Batch::default();
            match inputs[i].poll(&cx, &mut buf).expect("poll") {
                Poll::Data => emitted[i].append(&mut buf.data),
                Poll::Pending => {}
                Poll::End => {
                    ended[i] = true;
                    let b = inputs[i].snapshot().expect("snapshot").expect("a position");
                    if checkpoint.is_none() || count[i] < target {
                        // Its final position belongs to every later checkpoint.
                        blobs.insert(i, b);
                        kept[i] = Some(emitted[i].len());
                    }
                }
                Poll::Event(_) => panic!("a source sent an event"),
            }
        }
        let mut all = Vec::new();
        for (mut e, k) in emitted.into_iter().zip(kept) {
            e.truncate(k.unwrap_or(0));
            all.append(&mut e);
        }
        Run { kept: all, blobs }
    }

    /// Runs the source made by `make(parallelism)` at each parallelism of `runs` in turn,
    /// each run restoring the checkpoint the one before took (its checkpoint `c`), the last
    /// one running to the end; returns the records of all runs that the checkpoints kept.
    /// Positions of subtasks a run did not have stay in later checkpoints, as in the
    /// checkpoint writer.
    pub(crate) fn chain<T>(
        mut make: impl FnMut(usize) -> Vec<Box<dyn Input<T>>>,
        runs: &[usize],
        seed: u64,
        c: u64,
    ) -> Vec<T> {
        let mut carried: BTreeMap<usize, Vec<u8>> = BTreeMap::new();
        let mut out = Vec::new();
        for (k, &p) in runs.iter().enumerate() {
            let last = k + 1 == runs.len();
            let restore = (k > 0).then_some(&carried);
            let mut r = run(make(p), restore, seed + k as u64, (!last).then_some(c));
            out.append(&mut r.kept);
            carried.extend(r.blobs);
        }
        out
    }
}
