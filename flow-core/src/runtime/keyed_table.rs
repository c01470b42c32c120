//! [`KeyedTable`]: the in-memory keyed state of one subtask — a hash table from key to value —
//! that remembers which keys changed since the last checkpoint, so a checkpoint encodes only
//! those (an incremental snapshot whose cost is what changed, not the size of the state).
//!
//! Change tracking is a flag beside each value and a list of the keys that set it: reading a
//! value costs what a hash-map lookup costs; the first change of a key after a checkpoint
//! costs one key clone more. Without checkpoints it is off and the table is a plain map.
//!
//! A table whose keys and values have a codec can also hold more state than memory: it keeps
//! within its share of the job's budget ([`crate::Config::state_memory`]) by moving its coldest
//! entries — those not touched since the last eviction pass (a CLOCK sweep) — into immutable,
//! block-checksummed run files ([`flow_state::spill`]), read back through memory maps when a
//! key comes back. A lookup that misses in memory asks the runs newest first; runs are merged
//! as they pile up (size-tiered, so each entry is rewritten a logarithmic number of times).
//! A changed entry that was evicted stays a change: the next checkpoint reads its value back
//! from the run, still encoded.
//!
//! ```
//! use flow_core::state::KeyedTable;
//!
//! let mut counts: KeyedTable<String, u64> = KeyedTable::tracking();
//! *counts.get_or_insert_with("flink".to_string(), || 0) += 1;
//! *counts.get_or_insert_with("flow".to_string(), || 0) += 2;
//! assert_eq!(counts.get("flow"), Some(&2));
//! let changed = counts.take_changes().unwrap();
//! assert_eq!(changed.len(), 2);
//! assert_eq!(counts.take_changes().unwrap().len(), 0, "nothing changed since");
//! ```
use crate::error::{Error, Result};
use crate::runtime::copy_order::{CopyOrder, Next};
use crate::runtime::entries::Entries;
use crate::runtime::exchange::partition::stable_hash;
use crate::runtime::snapshot::Codec;
use crate::runtime::state_memory::StateMemory;
use flow_state::spill::{self, Run, SpillDir};
use hashbrown::hash_map::Entry;
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

type Map<K, V> = hashbrown::HashMap<K, Slot<V>, rustc_hash::FxBuildHasher>;

/// How [`KeyedTable::upsert`] folds an item into a value.
pub trait Fold<T, V> {
    /// The value of a key's first item.
    fn insert(&mut self, item: T) -> V;
    /// Folds a later item into the value.
    fn update(&mut self, value: &mut V, item: T);
}

/// A pair of closures as a [`Fold`].
pub struct FoldWith<I, U>(pub I, pub U);

impl<T, V, I: FnMut(T) -> V, U: FnMut(&mut V, T)> Fold<T, V> for FoldWith<I, U> {
    fn insert(&mut self, item: T) -> V {
        (self.0)(item)
    }
    fn update(&mut self, value: &mut V, item: T) {
        (self.1)(value, item)
    }
}

/// A value, when it last changed, and whether it was used since the last eviction pass.
struct Slot<V> {
    value: V,
    /// The table's change epoch in which the value last changed ([`CLEAN`]: not since a
    /// checkpoint copied it; [`LOADED`]: read back from a run, maybe a pending change). A
    /// value whose epoch is the table's is in its list of changed keys.
    epoch: u32,
    hot: bool,
    /// When the value was last written, in [`TICK`]s since the table's epoch (with a TTL).
    stamp: u32,
}

/// [`Slot::epoch`] of a value not changed since a checkpoint copied it (or never changed).
const CLEAN: u32 = 0;
/// [`Slot::epoch`] of a value read back from a run: it may be a change of the epoch being
/// frozen, so a write to it saves it first, as to a pending value.
const LOADED: u32 = u32::MAX;

/// A checkpoint's copy of the changed entries being taken a chunk at a time
/// ([`KeyedTable::begin_freeze`]): values the processing thread overwrites before their
/// turn are saved first (copy on write), so the copy is of the table at the barrier.
struct Freeze<K, V> {
    /// Keys changed in `epoch` still to copy (any order; a key may appear twice).
    keys: Vec<K>,
    /// The keys instead, put in the order of their places in a large table.
    order: Option<CopyOrder<K>>,
    /// The epoch being frozen: the table's epoch at the barrier.
    epoch: u32,
    /// The time at the barrier, in ticks (for expiry).
    now: u32,
    /// Values of pending keys as they were at the barrier, saved before a write.
    saved: hashbrown::HashMap<K, (Copied<V>, u32), rustc_hash::FxBuildHasher>,
    /// Keys copied already, when the list may repeat a key (`repeats`).
    done: hashbrown::HashSet<K, rustc_hash::FxBuildHasher>,
    /// Whether the list may repeat a key (a key removed and written again, or read back
    /// from a run, in the epoch): only then is `done` kept.
    repeats: bool,
    /// How values are saved before a write, and copied when the copy is not encoded.
    copy: Copier<V>,
    /// How each change is encoded into `entries`, if the copy is encoded
    /// ([`KeyedTable::begin_freeze_encoded`]); else the changes go into `out`.
    to: Option<EncodeTo<K, V>>,
    out: Vec<(K, Option<Copied<V>>, Option<i64>)>,
    entries: Entries,
    failure: Option<Error>,
    /// The longest [`KeyedTable::freeze_step`] so far.
    longest: std::time::Duration,
    /// The time all steps took, their number and when the copy began (for the debug log).
    busy: std::time::Duration,
    steps: u32,
    begun: std::time::Instant,
}

/// How a checkpoint's copy copies a value: by `Clone`, or (for state types that are not
/// `Clone`, such as a keyed process function's) by encoding it with the state codec, which
/// is also all the checkpoint writer needs of it.
pub(crate) enum Copier<V> {
    /// `V::clone`.
    Clone(fn(&V) -> V),
    /// The value's encoding.
    Encode(Codec<V>),
}

impl<V> Clone for Copier<V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<V> Copy for Copier<V> {}

/// A value as a checkpoint's copy holds it ([`Copier`]).
pub(crate) enum Copied<V> {
    /// Cloned.
    Value(V),
    /// Encoded with the state codec.
    Bytes(Vec<u8>),
}

impl<V> Copied<V> {
    /// The value of a copy taken by [`Copier::Clone`].
    pub(crate) fn value(self) -> Result<V> {
        match self {
            Copied::Value(v) => Ok(v),
            Copied::Bytes(_) => Err(Error::Checkpoint(
                "a copy taken encoded was asked for as values".into(),
            )),
        }
    }
}

/// A changed key and its value as a checkpoint's copy took it (`None`: deleted), with its
/// write time under a TTL ([`KeyedTable::take_frozen_copies`]).
pub(crate) type CopiedChange<K, V> = (K, Option<Copied<V>>, Option<i64>);

/// How a checkpoint's copy encodes each change straight into [`Entries`], the form the
/// checkpoint writer sorts and writes ([`KeyedTable::begin_freeze_encoded`]): a key and its
/// value are encoded once, where they are read, instead of copied into a vector of typed
/// changes for the writer to encode (a copy that cost a second delta's worth of memory and,
/// for states copied encoded, an allocation per change).
pub(crate) struct EncodeTo<K, V> {
    /// The keys' codec.
    pub(crate) keys: Codec<K>,
    /// The values' codec: the one the table spills with, whose bytes go in as they are.
    pub(crate) values: Codec<V>,
    /// Writes a value's write time (ms since the Unix epoch) before it, under a TTL.
    pub(crate) time: fn(i64, &mut Vec<u8>) -> Result<()>,
    /// The job's max parallelism, which maps a key's stable hash to its key group.
    pub(crate) max_parallelism: u32,
}

impl<K, V> Clone for EncodeTo<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K, V> Copy for EncodeTo<K, V> {}

/// A changed value as a checkpoint's copy finds it.
enum Held<'a, V> {
    /// Saved before a write, or copied already.
    Copied(Copied<V>),
    /// In memory, unchanged since the barrier.
    Live(&'a V),
    /// Spilled: its bytes in the values' codec, after any write stamp.
    Bytes(&'a [u8]),
}

impl<K: Hash + Eq + Clone, V> Freeze<K, V> {
    /// Takes `k`'s change: its value at the barrier written at `stamp` (`None`: absent).
    fn take(&mut self, k: K, v: Option<Held<'_, V>>, stamp: u32, ttl: &Option<Ttl>) {
        let v = v.filter(|_| !expired(ttl, stamp, self.now));
        let t = v.as_ref().and_then(|_| write_time(ttl, stamp));
        if self.repeats {
            self.done.insert(k.clone());
        }
        let Some(to) = self.to else {
            let v = match v {
                None => None,
                Some(Held::Copied(c)) => Some(c),
                Some(Held::Live(v)) => match self.copy.copy(v) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        self.failure.get_or_insert(e);
                        return;
                    }
                },
                // Decoded (or copied) by the caller for a copy that is not encoded.
                Some(Held::Bytes(b)) => Some(Copied::Bytes(b.to_vec())),
            };
            self.out.push((k, v, t));
            return;
        };
        let kg = flow_state::key_group_of(stable_hash(&k), to.max_parallelism);
        let pushed = self.entries.push_with(
            kg,
            |b| (to.keys.enc)(&k, b),
            |b| {
                let Some(v) = v else {
                    return Ok(false);
                };
                if let Some(t) = t {
                    (to.time)(t, b)?;
                }
                match v {
                    Held::Live(v) => (to.values.enc)(v, b)?,
                    Held::Copied(Copied::Value(v)) => (to.values.enc)(&v, b)?,
                    // Saved by the values' codec, or spilled with it.
                    Held::Copied(Copied::Bytes(x)) => b.extend_from_slice(&x),
                    Held::Bytes(x) => b.extend_from_slice(x),
                }
                Ok(true)
            },
        );
        if let Err(e) = pushed {
            self.failure.get_or_insert(e);
        }
    }
}

impl<V> Copier<V> {
    fn copy(&self, v: &V) -> Result<Copied<V>> {
        match self {
            Copier::Clone(c) => Ok(Copied::Value(c(v))),
            Copier::Encode(c) => {
                let mut b = Vec::new();
                (c.enc)(v, &mut b)?;
                Ok(Copied::Bytes(b))
            }
        }
    }
}

/// The resolution of state TTL timestamps: 100 ms (a `u32` of them spans 13 years).
const TICK: std::time::Duration = std::time::Duration::from_millis(100);

/// A state time-to-live in processing time ([`KeyedTable::set_ttl`]).
struct Ttl {
    /// Entries written longer than this many ticks ago are expired.
    ticks: u32,
    epoch: std::time::Instant,
    /// The wall-clock time of `epoch`, in ms since the Unix epoch: write times outlive the
    /// process in checkpoints as wall-clock times.
    epoch_ms: i64,
    /// When expired entries were last swept out of memory.
    last_sweep: u32,
}

/// Ticks since `epoch`.
#[inline]
fn ticks_since(epoch: std::time::Instant) -> u32 {
    (epoch.elapsed().as_millis() / TICK.as_millis()) as u32
}

/// The wall-clock write time (ms since the Unix epoch) of stamp `stamp` under `ttl`.
fn write_time(ttl: &Option<Ttl>, stamp: u32) -> Option<i64> {
    let t = ttl.as_ref()?;
    // Stamps before the epoch (entries restored with older write times) wrap below zero.
    Some(t.epoch_ms + i64::from(stamp as i32) * TICK.as_millis() as i64)
}

/// Whether a value written at `stamp` is expired at `now` under `ttl`.
#[inline(always)]
fn expired(ttl: &Option<Ttl>, stamp: u32, now: u32) -> bool {
    ttl.as_ref()
        .is_some_and(|t| now.wrapping_sub(stamp) > t.ticks)
}

/// The stamp of an entry written at wall-clock time `ms` (0 without a TTL).
fn stamp_at(ttl: &Option<Ttl>, ms: i64) -> u32 {
    match ttl {
        Some(t) => {
            let ticks = (ms - t.epoch_ms).div_euclid(TICK.as_millis() as i64);
            ticks.clamp(i64::from(i32::MIN / 2), i64::from(i32::MAX / 2)) as i32 as u32
        }
        None => 0,
    }
}

/// Splits the write stamp off a spilled value (tables with a TTL write one first).
fn split_stamp(with_ttl: bool, bytes: &[u8]) -> (u32, &[u8]) {
    match bytes.split_first_chunk::<4>() {
        Some((stamp, rest)) if with_ttl => (u32::from_le_bytes(*stamp), rest),
        _ => (0, bytes),
    }
}

/// A changed key, its value and, with a TTL, its wall-clock write time in ms since the Unix
/// epoch ([`KeyedTable::take_timed_changes`]).
pub type TimedChange<'a, K, V> = (K, Change<'a, V>, Option<i64>);

/// A changed key, its value owned (`None`: deleted) and, with a TTL, its write time
/// ([`KeyedTable::take_timed_changes_owned`]).
pub type OwnedTimedChange<K, V> = (K, Option<V>, Option<i64>);

/// A changed key's value, as [`KeyedTable::take_changes`] gives it.
pub enum Change<'a, V> {
    /// The value, in memory.
    Value(&'a V),
    /// The value, still encoded with the table's codec: it was evicted to a spill run.
    Encoded(Vec<u8>),
    /// The key was deleted.
    Deleted,
}

/// What a table moved out of memory so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpillStats {
    /// Eviction passes.
    pub evictions: u64,
    /// Entries written to runs by evictions.
    pub evicted: u64,
    /// Entries read back into memory.
    pub loaded: u64,
    /// Runs now.
    pub runs: usize,
    /// Bytes of the runs now.
    pub run_bytes: u64,
}

/// Marks an existing entry changed (once per checkpoint), when changes are tracked.
#[inline]
fn touch_entry<K: Clone + Hash + Eq, V, S: std::hash::BuildHasher>(
    changed: &mut Option<Vec<K>>,
    epoch: u32,
    freeze: &mut Option<Box<Freeze<K, V>>>,
    o: &mut hashbrown::hash_map::OccupiedEntry<'_, K, Slot<V>, S>,
) {
    if o.get().epoch != epoch {
        let key = o.key().clone();
        mark_changed(changed, epoch, freeze, key, o.get_mut());
    }
    o.get_mut().hot = true;
}

/// The first change of `slot` in the table's epoch `epoch`: saves the value if a freeze
/// still has to copy it, and lists the key as changed.
#[inline]
fn mark_changed<K: Clone + Hash + Eq, V>(
    changed: &mut Option<Vec<K>>,
    epoch: u32,
    freeze: &mut Option<Box<Freeze<K, V>>>,
    key: K,
    slot: &mut Slot<V>,
) {
    if let Some(f) = freeze.as_mut() {
        save_pending(f, &key, slot);
    }
    if let Some(c) = changed.as_mut() {
        slot.epoch = epoch;
        c.push(key);
    }
}

/// Saves `slot`'s value for the freeze `f` if `f` has yet to copy it.
#[cold]
fn save_pending<K: Clone + Hash + Eq, V>(f: &mut Freeze<K, V>, key: &K, slot: &Slot<V>) {
    if (slot.epoch == f.epoch || slot.epoch == LOADED) && !f.done.contains(key) {
        if let hashbrown::hash_map::Entry::Vacant(e) = f.saved.entry(key.clone()) {
            match f.copy.copy(&slot.value) {
                Ok(v) => {
                    e.insert((v, slot.stamp));
                }
                // The checkpoint fails (the copy would not be the table at the barrier).
                Err(err) => {
                    f.failure.get_or_insert(err);
                }
            }
        }
    }
}

/// Records a new key as changed; returns its epoch.
#[inline]
fn record_new<K: Clone>(changed: &mut Option<Vec<K>>, epoch: u32, key: &K) -> u32 {
    match changed.as_mut() {
        Some(c) => {
            c.push(key.clone());
            epoch
        }
        None => CLEAN,
    }
}

/// The cold tier of a table: its runs and what it needs to write and read them.
struct Spill<K, V> {
    memory: Arc<StateMemory>,
    keys: Codec<K>,
    values: Codec<V>,
    dir: Option<Arc<SpillDir>>,
    /// Oldest first.
    runs: Vec<Run>,
    /// Keys deleted in memory that a run may still hold; written as tombstones by the next
    /// eviction.
    tombstones: hashbrown::HashSet<K, rustc_hash::FxBuildHasher>,
    /// Estimated heap bytes per entry (of keys and values), sampled at each check.
    heap: usize,
    /// Bytes of run blocks read since the maps' pages were last released.
    touched: usize,
    /// The first I/O or decoding error; the owner fails the job with it.
    failure: Option<String>,
    stats: SpillStats,
    /// A restored checkpoint's state not yet loaded: older than every run.
    base: Option<Base<K, V>>,
}

/// Decodes an entry of a restored checkpoint, its key's and its value's bytes: the key, the
/// value and (under a TTL) its write time, ms since the Unix epoch.
pub(crate) type RestoredDecode<K, V> =
    Box<dyn Fn(&[u8], &[u8]) -> Result<(K, V, Option<i64>)> + Send>;

/// The part of a restored checkpoint a table has not loaded yet ([`KeyedTable::restore_lazily`]).
struct Base<K, V> {
    state: flow_state::LazyState,
    max_parallelism: u32,
    /// Key-group ranges whose entries are not restored.
    skip: Vec<(u32, u32)>,
    decode: RestoredDecode<K, V>,
    /// A key's encoding, for a lookup.
    buf: Vec<u8>,
    /// [`KeyedTable::restore_for`] loads no more before this time.
    resume_at: std::time::Instant,
    /// Entries read and not yet inserted (taken as they are).
    pending: Vec<Option<(K, V, Option<i64>)>>,
    /// Once `pending` is complete: its indexes in the order of their places in the table,
    /// each below the place in the high 32 bits; inserted up to `pos`.
    order: Vec<u64>,
    pos: usize,
}

/// A lazy restore reads this many entries, then inserts them in the table's order (both a
/// step at a time): the larger, the closer the inserts to one another in the table. (Small in
/// unit tests, so that they load in many batches.)
const LOAD_BATCH: usize = if cfg!(test) { 100 } else { 1 << 17 };

/// Whether key group `kg` lies in one of the ranges `skip`.
fn skipped(skip: &[(u32, u32)], kg: u32) -> bool {
    skip.iter().any(|&(s, e)| (s..e).contains(&kg))
}

/// How long one step of a checkpoint's copy ([`KeyedTable::freeze_for`]) holds up processing,
/// between batches (the stage's step between two is about a millisecond). Longer steps finish
/// the copy sooner after the barrier (its share of the subtask's time is `step / (step + 1
/// ms)`); each step is one pause of the records.
pub(crate) const FREEZE_STEP: std::time::Duration = std::time::Duration::from_millis(3);

/// A checkpoint's copy looks up its keys in the order of their places in the table
/// ([`CopyOrder`]) from this many keys, in a table of at least `ORDER_FROM_BYTES` of buckets
/// (beyond the caches, where the listed order misses on every key). Always in unit tests.
const ORDER_FROM_KEYS: usize = if cfg!(test) { 2 } else { 4096 };
const ORDER_FROM_BYTES: usize = if cfg!(test) { 1 } else { 16 << 20 };

/// How long an operator's drain loads restored state at most ([`KeyedTable::restore_for`]),
/// between batches; then the records have as long.
pub(crate) const RESTORE_TIME: std::time::Duration = std::time::Duration::from_millis(2);

/// A lazy restore loads this many entries at a time.
const RESTORE_STEP: usize = 4096;

impl<K, V> Base<K, V> {
    /// The restored entry of `key` (of hash `hash`), if it was not loaded yet.
    fn get(&mut self, hash: u64, key: &K, keys: Codec<K>) -> Result<Option<(K, V, Option<i64>)>> {
        let kg = flow_state::key_group_of(hash, self.max_parallelism);
        if skipped(&self.skip, kg) {
            return Ok(None);
        }
        self.buf.clear();
        (keys.enc)(key, &mut self.buf)?;
        match self.state.get(kg, &self.buf) {
            Some(vb) => (self.decode)(&self.buf, vb).map(Some),
            None => Ok(None),
        }
    }
}

/// Release mapped run pages after this many bytes of reads, so they do not accumulate in the
/// resident set.
const RELEASE_AFTER: usize = 16 << 20;
/// The in-memory part is checked against the budget first at this many entries.
const FIRST_CHECK: usize = 4096;

/// Keyed state of one subtask with change tracking for incremental checkpoints and, when it
/// has codecs, a memory budget beyond which its coldest entries are spilled to disk.
pub struct KeyedTable<K, V> {
    map: Map<K, V>,
    /// Keys changed (or removed) since the last [`KeyedTable::take_changes`]; `None` when
    /// changes are not tracked.
    changed: Option<Vec<K>>,
    /// At this many entries in memory the budget is checked again (`usize::MAX`: never).
    limit: usize,
    /// Whether a run may hold keys that are not in memory.
    cold: bool,
    spill: Option<Box<Spill<K, V>>>,
    /// Expiry of entries not written for a while.
    ttl: Option<Ttl>,
    /// The change epoch: bumped when a checkpoint starts copying the changes.
    epoch: u32,
    /// The checkpoint copy under way, if any.
    freeze: Option<Box<Freeze<K, V>>>,
    /// Whether the list of changed keys may hold a key twice.
    repeats: bool,
}

impl<K, V> Default for KeyedTable<K, V> {
    fn default() -> Self {
        KeyedTable {
            map: Map::default(),
            changed: None,
            limit: usize::MAX,
            cold: false,
            spill: None,
            ttl: None,
            epoch: CLEAN,
            freeze: None,
            repeats: false,
        }
    }
}

impl<K, V> Drop for KeyedTable<K, V> {
    fn drop(&mut self) {
        if let Some(s) = &self.spill {
            s.memory.unregister();
        }
    }
}

/// The largest number of entries whose bucket array — also while it grows, when the old and
/// the new one are both allocated — and heap data fit in `share` bytes.
fn entries_within(share: usize, slot: usize, heap: usize) -> usize {
    let heap = heap.max(1);
    let mut buckets = (share / slot.max(1)).max(16).next_power_of_two();
    while buckets > 16 {
        let fit = (buckets / 8 * 7).min(share.saturating_sub(buckets * slot) / heap);
        // The array grew to `buckets` at half its load, with the old one still allocated.
        let grow_at = buckets / 16 * 7;
        let peak = buckets / 2 * 3 * slot + grow_at * heap;
        if peak <= share && fit >= grow_at {
            return fit;
        }
        buckets /= 2;
    }
    16
}

impl<K: Hash + Eq + Clone, V> KeyedTable<K, V> {
    /// A table that does not track changes (no checkpoints).
    pub fn new() -> Self {
        Self::default()
    }

    /// A table that tracks changes for incremental checkpoints.
    pub fn tracking() -> Self {
        let mut t = Self::default();
        t.track_changes(true);
        t
    }

    /// Turns change tracking on or off.
    pub fn track_changes(&mut self, on: bool) {
        self.settle_freeze();
        self.changed = on.then(Vec::new);
        self.epoch = if on { self.epoch.max(1) } else { CLEAN };
    }

    /// Keeps the in-memory part within a share of `memory`'s budget, spilling the coldest
    /// entries, encoded with `keys` and `values`, beyond it.
    pub(crate) fn spill_within(
        &mut self,
        memory: Arc<StateMemory>,
        keys: Codec<K>,
        values: Codec<V>,
    ) {
        if let Some(old) = &self.spill {
            old.memory.unregister();
        }
        memory.register();
        let slot = std::mem::size_of::<(K, Slot<V>)>() + 1;
        let share = usize::try_from(memory.share()).unwrap_or(usize::MAX);
        self.limit = entries_within(share, slot, 1).min(FIRST_CHECK);
        self.spill = Some(Box::new(Spill {
            memory,
            keys,
            values,
            dir: None,
            runs: Vec::new(),
            tombstones: Default::default(),
            heap: 0,
            touched: 0,
            failure: None,
            stats: SpillStats::default(),
            base: None,
        }));
    }

    /// Expires entries not written for longer than `ttl` (processing time; Flink's state TTL
    /// with `OnCreateAndWrite` updates and `NeverReturnExpired` visibility): an expired entry
    /// reads as absent, a write to it starts afresh, and expired entries are removed — in
    /// memory by [`KeyedTable::expire`], on disk when read or merged — as deletions, which the
    /// next checkpoint records. Resolution 100 ms. Checkpoints keep write times as wall-clock
    /// times ([`KeyedTable::take_timed_changes`], [`KeyedTable::restore_written_at`]), so an
    /// entry's age survives a restore. `None` turns expiry off.
    pub fn set_ttl(&mut self, ttl: Option<std::time::Duration>) {
        self.ttl = ttl.map(|d| Ttl {
            ticks: u32::try_from(d.as_millis() / TICK.as_millis())
                .unwrap_or(u32::MAX / 2)
                .min(u32::MAX / 2),
            epoch: std::time::Instant::now(),
            epoch_ms: crate::time::now_ms(),
            last_sweep: 0,
        });
    }

    /// Whether entries expire ([`KeyedTable::set_ttl`]).
    pub fn has_ttl(&self) -> bool {
        self.ttl.is_some()
    }

    /// The wall-clock write time (ms since the Unix epoch) of an entry stamped `stamp`.
    fn write_time(&self, stamp: u32) -> Option<i64> {
        write_time(&self.ttl, stamp)
    }

    /// The stamp of an entry written at wall-clock time `ms` (0 without a TTL).
    fn stamp_at(&self, ms: i64) -> u32 {
        stamp_at(&self.ttl, ms)
    }

    /// The time now, in ticks (0 without a TTL: no clock is read).
    #[inline(always)]
    fn now(&self) -> u32 {
        match &self.ttl {
            Some(t) => ticks_since(t.epoch),
            None => 0,
        }
    }

    /// Removes the expired entries from memory (at most every quarter of the TTL; cheap to
    /// call often). Returns how many it removed.
    pub fn expire(&mut self) -> usize {
        let Some(t) = self.ttl.as_mut() else { return 0 };
        let now = ticks_since(t.epoch);
        if now.wrapping_sub(t.last_sweep) < (t.ticks / 4).max(1) {
            return 0;
        }
        t.last_sweep = now;
        let ticks = t.ticks;
        self.settle_freeze();
        self.repeats = true;
        let epoch = self.epoch;
        let mut n = 0;
        let changed = &mut self.changed;
        let tombstones = self
            .spill
            .as_mut()
            .filter(|_| self.cold)
            .map(|s| &mut s.tombstones);
        let mut tombstones = tombstones;
        for (k, slot) in self
            .map
            .extract_if(|_, s| now.wrapping_sub(s.stamp) > ticks)
        {
            n += 1;
            if let Some(c) = changed.as_mut() {
                if slot.epoch != epoch {
                    c.push(k.clone());
                }
            }
            if let Some(t) = tombstones.as_mut() {
                t.insert(k);
            }
        }
        n
    }

    /// Removes `key`'s expired entry from memory, as a deletion.
    fn drop_expired<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.settle_freeze();
        self.repeats = true;
        if let Some((k, slot)) = self.map.remove_entry(key) {
            if let Some(c) = self.changed.as_mut() {
                if slot.epoch != self.epoch {
                    c.push(k.clone());
                }
            }
            if self.cold {
                if let Some(s) = self.spill.as_mut() {
                    s.tombstones.insert(k);
                }
            }
        }
    }

    /// The number of keys in memory (the table's size unless it spilled).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is in memory and none was spilled.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && !self.cold
    }

    /// What the table moved out of memory so far.
    pub fn spill_stats(&self) -> SpillStats {
        self.spill
            .as_ref()
            .map_or_else(SpillStats::default, |s| SpillStats {
                runs: s.runs.len(),
                run_bytes: s.runs.iter().map(Run::file_bytes).sum(),
                ..s.stats
            })
    }

    /// Records a failure of the spilled state that surfaced elsewhere (see
    /// [`KeyedTable::check`]).
    pub(crate) fn record_failure(&mut self, e: &Error) {
        if let Some(s) = self.spill.as_mut() {
            s.failure.get_or_insert(e.to_string());
        }
    }

    /// Fails if spilling or reading spilled state failed since the table was made (the job
    /// must stop: the state in memory may be missing entries).
    pub fn check(&self) -> Result<()> {
        match self.spill.as_ref().and_then(|s| s.failure.as_ref()) {
            Some(f) => Err(Error::Spill(f.clone())),
            None => Ok(()),
        }
    }

    /// The value of `key`, read back into memory if it was spilled.
    #[inline]
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.bring_in(key)?;
        if self.drop_if_expired(key, self.now()) {
            return None;
        }
        let slot = self.map.get_mut(key)?;
        slot.hot = true;
        Some(&slot.value)
    }

    /// Reads `key` back into memory if it is only in a run; `None` if it is nowhere.
    fn bring_in<Q>(&mut self, key: &Q) -> Option<()>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if self.cold && !self.map.contains_key(key) {
            if self.has_runs() {
                // Reads runs, which a copy under way reads too; a key read back from one
                // may be in the list of changes already.
                self.settle_freeze();
                self.repeats = true;
            }
            let (k, v, stamp) = self.load(key)?;
            self.make_room_for_one();
            let slot = Slot {
                value: v,
                epoch: LOADED,
                hot: true,
                stamp,
            };
            self.map.insert(k, slot);
        }
        Some(())
    }

    /// Whether `key`'s entry in memory is expired at `now`; if so, removes it (a deletion).
    fn drop_if_expired<Q>(&mut self, key: &Q, now: u32) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let stale = self.ttl.is_some()
            && self
                .map
                .get(key)
                .is_some_and(|s| expired(&self.ttl, s.stamp, now));
        if stale {
            self.drop_expired(key);
        }
        stale
    }

    /// The value of `key`, to change: the key counts as changed.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.bring_in(key)?;
        let now = self.now();
        if self.drop_if_expired(key, now) {
            return None;
        }
        let slot = self.map.get_mut(key)?;
        slot.hot = true;
        if slot.epoch != self.epoch {
            mark_changed(
                &mut self.changed,
                self.epoch,
                &mut self.freeze,
                key.clone(),
                slot,
            );
        }
        slot.stamp = now;
        Some(&mut slot.value)
    }

    /// Whether a new key must take the slow path: the budget must be checked, or a run may
    /// hold it.
    #[inline(always)]
    fn slow_insert(&self, key: &K) -> bool {
        (self.cold || self.map.len() >= self.limit) && !self.map.contains_key(key)
    }

    /// Inserts a key that is not in memory, after making room and reading back its spilled
    /// value: `make` turns that value (if any) into the new one.
    #[cold]
    fn insert_slow(&mut self, key: K, make: impl FnOnce(Option<V>) -> V) -> &mut V {
        if self.has_runs() {
            // Reads runs, which a copy under way reads too; a key read back from one may be
            // in the list of changes already.
            self.settle_freeze();
        }
        self.make_room_for_one();
        if self.has_runs() {
            // (Also if the room was made just now.)
            self.repeats = true;
        }
        let deleted = self
            .spill
            .as_mut()
            .is_some_and(|s| s.tombstones.remove(&key));
        let old = if self.cold && !deleted {
            self.load(&key).map(|(_, v, _)| v)
        } else {
            None
        };
        let epoch = record_new(&mut self.changed, self.epoch, &key);
        let value = make(old);
        let stamp = self.now();
        &mut self
            .map
            .entry(key)
            .insert(Slot {
                value,
                epoch,
                hot: true,
                stamp,
            })
            .into_mut()
            .value
    }

    /// The value of `key`, inserting `f()` first if absent: the key counts as changed.
    #[inline]
    pub fn get_or_insert_with(&mut self, key: K, f: impl FnOnce() -> V) -> &mut V {
        if self.slow_insert(&key) {
            return self.insert_slow(key, |old| old.unwrap_or_else(f));
        }
        let now = self.now();
        match self.map.entry(key) {
            Entry::Occupied(mut o) => {
                let stale = expired(&self.ttl, o.get().stamp, now);
                touch_entry(&mut self.changed, self.epoch, &mut self.freeze, &mut o);
                let slot = o.into_mut();
                if stale {
                    slot.value = f();
                }
                slot.stamp = now;
                &mut slot.value
            }
            Entry::Vacant(v) => {
                let epoch = record_new(&mut self.changed, self.epoch, v.key());
                &mut v
                    .insert(Slot {
                        value: f(),
                        epoch,
                        hot: true,
                        stamp: now,
                    })
                    .value
            }
        }
    }

    /// Folds `item` into the value of `key` with `f`: `f.update` if present, else
    /// `f.insert` creates it. The key counts as changed. Returns the value.
    #[inline]
    pub fn upsert<T, F: Fold<T, V>>(&mut self, key: K, item: T, f: &mut F) -> &mut V {
        if self.slow_insert(&key) {
            return self.insert_slow(key, |old| match old {
                Some(mut v) => {
                    f.update(&mut v, item);
                    v
                }
                None => f.insert(item),
            });
        }
        let now = self.now();
        match self.map.entry(key) {
            Entry::Occupied(mut o) => {
                let stale = expired(&self.ttl, o.get().stamp, now);
                touch_entry(&mut self.changed, self.epoch, &mut self.freeze, &mut o);
                let slot = o.into_mut();
                if stale {
                    slot.value = f.insert(item);
                } else {
                    f.update(&mut slot.value, item);
                }
                slot.stamp = now;
                &mut slot.value
            }
            Entry::Vacant(v) => {
                let epoch = record_new(&mut self.changed, self.epoch, v.key());
                &mut v
                    .insert(Slot {
                        value: f.insert(item),
                        epoch,
                        hot: true,
                        stamp: now,
                    })
                    .value
            }
        }
    }

    /// Sets the value of `key`: the key counts as changed. Returns the old value.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        if self.slow_insert(&key) {
            let mut old = None;
            self.insert_slow(key, |o| {
                old = o;
                value
            });
            return old;
        }
        let now = self.now();
        match self.map.entry(key) {
            Entry::Occupied(mut o) => {
                let stale = expired(&self.ttl, o.get().stamp, now);
                touch_entry(&mut self.changed, self.epoch, &mut self.freeze, &mut o);
                let slot = o.into_mut();
                slot.stamp = now;
                let old = std::mem::replace(&mut slot.value, value);
                (!stale).then_some(old)
            }
            Entry::Vacant(v) => {
                let epoch = record_new(&mut self.changed, self.epoch, v.key());
                v.insert(Slot {
                    value,
                    epoch,
                    hot: true,
                    stamp: now,
                });
                None
            }
        }
    }

    /// Removes `key`: the key counts as changed (deleted). Returns its value (`None` if it
    /// was absent or expired).
    pub fn remove(&mut self, key: &K) -> Option<V> {
        if self.has_runs() {
            self.settle_freeze();
        }
        self.repeats = true;
        let now = self.now();
        let (existed, was_dirty, old) = match self.map.remove(key) {
            Some(slot) => {
                if let Some(f) = self.freeze.as_mut() {
                    save_pending(f, key, &slot);
                }
                (
                    true,
                    slot.epoch == self.epoch,
                    (!expired(&self.ttl, slot.stamp, now)).then_some(slot.value),
                )
            }
            None if self.cold => {
                let old = self.load(key).map(|(_, v, _)| v);
                (old.is_some(), false, old)
            }
            None => (false, false, None),
        };
        if self.cold {
            if let Some(s) = self.spill.as_mut() {
                // A run may hold it: shadow it.
                s.tombstones.insert(key.clone());
            }
        }
        if existed && !was_dirty {
            if let Some(c) = self.changed.as_mut() {
                c.push(key.clone());
            }
        }
        old
    }

    /// Makes room for `n` more entries before a restore inserts them (as many as the memory
    /// budget holds, for a table that spills): one allocation instead of a rehash at every
    /// doubling.
    pub fn reserve_for_restore(&mut self, n: usize) {
        let cap = match self.spill.as_ref() {
            None => n,
            Some(s) => {
                let slot = std::mem::size_of::<(K, Slot<V>)>() + 1;
                let share = usize::try_from(s.memory.share()).unwrap_or(usize::MAX);
                n.min(entries_within(share, slot, s.heap))
            }
        };
        self.map.reserve(cap);
    }

    /// Whether [`KeyedTable::restore_lazily`] can take a checkpoint's state (the table has
    /// codecs).
    pub(crate) fn can_restore_lazily(&self) -> bool {
        self.spill.is_some()
    }

    /// Restores `state` lazily: the table answers from it any key it does not hold yet
    /// (a lookup in its segments), and [`KeyedTable::restore_step`] loads it a batch at a
    /// time while the job runs. So processing resumes at once, whatever the state's size.
    /// `decode` turns an entry's bytes into key, value and write time; entries of key groups
    /// in `skip` are not restored. Returns `false` (dropping `state`) if the table has no
    /// codecs: then the caller restores eagerly.
    pub(crate) fn restore_lazily(
        &mut self,
        state: flow_state::LazyState,
        max_parallelism: u32,
        skip: Vec<(u32, u32)>,
        decode: RestoredDecode<K, V>,
    ) -> bool {
        let Some(s) = self.spill.as_mut() else {
            return false;
        };
        if state.is_done() {
            return true;
        }
        s.base = Some(Base {
            state,
            max_parallelism,
            skip,
            decode,
            buf: Vec::new(),
            resume_at: std::time::Instant::now(),
            pending: Vec::new(),
            order: Vec::new(),
            pos: 0,
        });
        // Lookups that miss in memory now look further.
        self.cold = true;
        true
    }

    /// Whether entries were spilled to runs (a copy under way reads them). A restored
    /// checkpoint not yet loaded is not: none of its keys changed since the restore (a key
    /// that did is in memory, in a run, or deleted), so no copy reads it.
    fn has_runs(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| !s.runs.is_empty())
    }

    /// Whether part of a restored checkpoint is still to be loaded
    /// ([`KeyedTable::restore_lazily`]).
    pub(crate) fn is_restoring(&self) -> bool {
        self.spill.as_ref().is_some_and(|s| s.base.is_some())
    }

    /// Loads the next `max` entries of the restored checkpoint, skipping keys the table
    /// holds a newer version (or a deletion) of. Returns whether everything is loaded.
    pub(crate) fn restore_step(&mut self, max: usize) -> Result<bool> {
        let buckets = (self.map.capacity().max(self.map.len()) / 7 * 8)
            .max(8)
            .next_power_of_two() as u64;
        let hasher = *self.map.hasher();
        let Some(s) = self.spill.as_mut() else {
            return Ok(true);
        };
        let Some(b) = s.base.as_mut() else {
            return Ok(true);
        };
        if b.order.is_empty() {
            // Reading the next entries into the batch.
            let mut failed = None;
            let (decode, skip, pending) = (&b.decode, &b.skip, &mut b.pending);
            let read_all = b.state.next_entries(max, |kg, kb, vb| {
                if !skipped(skip, kg) {
                    match decode(kb, vb) {
                        Ok(e) => pending.push(Some(e)),
                        Err(e) => {
                            failed.get_or_insert(e);
                        }
                    }
                }
                Ok(())
            })?;
            if let Some(e) = failed {
                return Err(e);
            }
            if !read_all && b.pending.len() < LOAD_BATCH {
                return Ok(false);
            }
            if b.pending.is_empty() {
                b.state.commit();
                self.end_restore();
                return Ok(true);
            }
            // The batch is inserted in the order of the entries' places in the table: the
            // inserts walk its memory in order instead of missing the cache at each.
            b.order = b
                .pending
                .iter()
                .zip(0u64..)
                .map(|(e, i)| {
                    let place = e
                        .as_ref()
                        .map_or(0, |e| hasher.hash_one(&e.0) & (buckets - 1));
                    (place << 32) | i
                })
                .collect();
            b.order.sort_unstable();
            b.pos = 0;
            return Ok(false);
        }
        // Inserting the next `max` entries of the batch.
        let end = (b.pos + max).min(b.order.len());
        let mut batch: Vec<(K, V, Option<i64>)> = b.order[b.pos..end]
            .iter()
            .filter_map(|&o| b.pending.get_mut((o & 0xFFFF_FFFF) as usize)?.take())
            .collect();
        b.pos = end;
        let batch_done = end == b.order.len();
        // A key the job touched since the restore has a newer version in memory or in a run,
        // or a deletion. Without runs, deletions or evictions to come, a key in memory is
        // skipped as it is inserted; else the batch is checked first (an eviction while it is
        // inserted would move newer versions out of the way).
        let filter = !s.tombstones.is_empty()
            || !s.runs.is_empty()
            || self.map.len() + batch.len() >= self.limit;
        let mut err = None;
        if filter {
            batch.retain(|(k, _, _)| {
                if self.map.contains_key(k) || s.tombstones.contains(k) {
                    return false;
                }
                if s.runs.is_empty() {
                    return true;
                }
                match find(s, hasher.hash_one(k), k) {
                    Ok(found) => found.is_none(),
                    Err(e) => {
                        err.get_or_insert(e);
                        false
                    }
                }
            });
        }
        if let Some(e) = err {
            return Err(e);
        }
        for (k, v, ms) in batch {
            let stamp = match ms {
                Some(ms) => self.stamp_at(ms),
                None => self.now(),
            };
            self.restore_stamped(k, v, stamp, true);
        }
        if !batch_done {
            return Ok(false);
        }
        let Some(b) = self.spill.as_mut().and_then(|s| s.base.as_mut()) else {
            return Ok(true);
        };
        b.pending.clear();
        b.order.clear();
        // What was read is in the table now: no longer looked up.
        b.state.commit();
        if b.state.is_done() {
            self.end_restore();
            return Ok(true);
        }
        Ok(false)
    }

    /// Ends a lazy restore whose entries are all loaded.
    fn end_restore(&mut self) {
        if let Some(s) = self.spill.as_mut() {
            s.base = None;
            self.cold = !s.runs.is_empty();
            if !self.cold {
                // They only shadowed the restored state.
                s.tombstones.clear();
            }
        }
    }

    /// Loads restored entries ([`KeyedTable::restore_step`]) for about `time`, then leaves
    /// the subtask as long to its records: a lazy restore takes half of a busy subtask's
    /// time. Returns when to call again (at once if called early), `None` once everything
    /// is loaded.
    pub(crate) fn restore_for(
        &mut self,
        time: std::time::Duration,
    ) -> Result<Option<std::time::Instant>> {
        let now = std::time::Instant::now();
        let Some(b) = self.spill.as_mut().and_then(|s| s.base.as_mut()) else {
            return Ok(None);
        };
        if now < b.resume_at {
            return Ok(Some(b.resume_at));
        }
        while !self.restore_step(RESTORE_STEP)? {
            let end = std::time::Instant::now();
            if end >= now + time {
                if let Some(b) = self.spill.as_mut().and_then(|s| s.base.as_mut()) {
                    b.resume_at = end + (end - now);
                    return Ok(Some(b.resume_at));
                }
            }
        }
        Ok(None)
    }

    /// Loads what is left of a restored checkpoint ([`KeyedTable::restore_step`]).
    fn restore_rest(&mut self) -> Result<()> {
        while !self.restore_step(1 << 16)? {}
        Ok(())
    }

    /// Loads an entry from a checkpoint: not a change.
    pub fn restore(&mut self, key: K, value: V) {
        let stamp = self.now();
        self.restore_stamped(key, value, stamp, false)
    }

    /// [`KeyedTable::restore`] of an entry written at wall-clock time `ms` (ms since the Unix
    /// epoch, as [`KeyedTable::take_timed_changes`] gives it): with a TTL it expires when it
    /// would have expired in the job that wrote it.
    pub fn restore_written_at(&mut self, key: K, value: V, ms: i64) {
        let stamp = self.stamp_at(ms);
        self.restore_stamped(key, value, stamp, false)
    }

    /// [`KeyedTable::restore`] (or, with a write time, [`KeyedTable::restore_written_at`]) of
    /// many entries, emptying `batch`. They are inserted in the order of their places in the
    /// table: a restore of millions of entries then walks the table's memory in order, rather
    /// than missing the cache and the TLB at every insert (the checkpoint's (key group, key)
    /// order is random to the table).
    pub fn restore_batch(&mut self, batch: &mut Vec<(K, V, Option<i64>)>) {
        self.restore_sorted(batch, false)
    }

    /// [`KeyedTable::restore_batch`]; with `absent_only`, of the entries whose key the table
    /// does not hold.
    fn restore_sorted(&mut self, batch: &mut Vec<(K, V, Option<i64>)>, absent_only: bool) {
        // The table's bucket mask: hashbrown places a key at `hash & mask` (or probes on from
        // there). An estimate suffices: the order only needs to follow the table's memory.
        let buckets = (self.map.capacity().max(self.map.len() + batch.len()) / 7 * 8)
            .max(8)
            .next_power_of_two() as u64;
        let Ok(n) = u32::try_from(batch.len()) else {
            // Never: batches are small. Unsorted then.
            for (k, v, ms) in batch.drain(..) {
                let stamp = ms.map_or_else(|| self.now(), |ms| self.stamp_at(ms));
                self.restore_stamped(k, v, stamp, absent_only);
            }
            return;
        };
        // Sorted as single words, (place, index): far cheaper to move than the entries.
        let hasher = *self.map.hasher();
        let mut order: Vec<u64> = batch
            .iter()
            .zip(0..n)
            .map(|(e, i)| ((hasher.hash_one(&e.0) & (buckets - 1)) << 32) | u64::from(i))
            .collect();
        order.sort_unstable();
        let mut entries: Vec<Option<(K, V, Option<i64>)>> = batch.drain(..).map(Some).collect();
        for o in order {
            let Some((k, v, ms)) = entries[(o & 0xFFFF_FFFF) as usize].take() else {
                continue;
            };
            let stamp = match ms {
                Some(ms) => self.stamp_at(ms),
                None => self.now(),
            };
            self.restore_stamped(k, v, stamp, absent_only);
        }
    }

    fn restore_stamped(&mut self, key: K, value: V, stamp: u32, absent_only: bool) {
        if self.map.len() >= self.limit {
            self.make_room_for_one();
        }
        let slot = Slot {
            value,
            epoch: CLEAN,
            hot: false,
            stamp,
        };
        if absent_only {
            if let Entry::Vacant(v) = self.map.entry(key) {
                v.insert(slot);
            }
        } else {
            self.map.insert(key, slot);
        }
    }

    /// Calls `f` with every entry, in no particular order (spilled ones are read back, not
    /// loaded into memory).
    pub fn for_each(&mut self, mut f: impl FnMut(&K, &V)) -> Result<()> {
        self.restore_rest()?;
        self.for_each_spilled(|k, v| f(&k, &v))?;
        let now = self.now();
        for (k, s) in &self.map {
            if !expired(&self.ttl, s.stamp, now) {
                f(k, &s.value);
            }
        }
        Ok(())
    }

    /// Calls `f` with every spilled entry that memory does not shadow.
    fn for_each_spilled(&mut self, mut f: impl FnMut(K, V)) -> Result<()> {
        if !self.cold {
            return Ok(());
        }
        let Some(s) = self.spill.as_ref() else {
            return Ok(());
        };
        let runs: Vec<&Run> = s.runs.iter().collect();
        let what = || "a spilled key".to_string();
        let now = self.now();
        for e in spill::merged(&runs)? {
            let e = e?;
            let Some(vb) = e.value else { continue };
            let (stamp, vb) = split_stamp(self.ttl.is_some(), vb);
            if expired(&self.ttl, stamp, now) {
                continue;
            }
            let k = s.keys.decode_all(e.key, &what)?;
            if self.map.contains_key(&k) || s.tombstones.contains(&k) {
                continue;
            }
            let v = s.values.decode_all(vb, &what)?;
            f(k, v);
        }
        for r in &s.runs {
            r.release_pages()?;
        }
        Ok(())
    }

    /// Removes every entry, giving each to `f`: all keys count as changed (deleted).
    pub fn drain_into(&mut self, mut f: impl FnMut(K, V)) -> Result<()> {
        self.restore_rest()?;
        self.settle_freeze();
        self.repeats = true;
        let mut changed = self.changed.take();
        self.for_each_spilled(|k, v| {
            if let Some(c) = changed.as_mut() {
                c.push(k.clone());
            }
            f(k, v)
        })?;
        let now = self.now();
        for (k, s) in self.map.drain() {
            if let Some(c) = changed.as_mut() {
                if s.epoch != self.epoch {
                    c.push(k.clone());
                }
            }
            if !expired(&self.ttl, s.stamp, now) {
                f(k, s.value);
            }
        }
        self.changed = changed;
        if let Some(s) = self.spill.as_mut() {
            let before = s.runs.iter().map(Run::file_bytes).sum();
            s.memory.note_runs(0, before, 0);
            s.runs.clear();
            s.tombstones.clear();
        }
        self.cold = false;
        Ok(())
    }

    /// The keys changed since the last call, each with its current value, and clears the
    /// changes. Empty when changes are not tracked.
    pub fn take_changes(&mut self) -> Result<Vec<(K, Change<'_, V>)>> {
        Ok(self
            .take_timed_changes()?
            .into_iter()
            .map(|(k, c, _)| (k, c))
            .collect())
    }

    /// [`KeyedTable::take_changes`], each value with its wall-clock write time in ms since the
    /// Unix epoch when the table has a TTL (for checkpoints: a restore with
    /// [`KeyedTable::restore_written_at`] keeps the entry's age).
    pub fn take_timed_changes(&mut self) -> Result<Vec<TimedChange<'_, K, V>>> {
        self.settle_freeze();
        let keys = self
            .changed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        // First clear the flags, then hand out shared references.
        for k in &keys {
            if let Some(s) = self.map.get_mut(k) {
                s.epoch = CLEAN;
            }
        }
        let map = &self.map;
        let hasher = map.hasher();
        let now = self.now();
        let ttl = &self.ttl;
        let mut out = Vec::with_capacity(keys.len());
        let time = |stamp: u32| self.write_time(stamp);
        for k in keys {
            let (c, stamp) = match map.get(&k) {
                Some(s) if !expired(ttl, s.stamp, now) => (Change::Value(&s.value), s.stamp),
                Some(_) => (Change::Deleted, 0),
                None => match self.spill.as_ref().filter(|_| self.cold) {
                    Some(s) if !s.tombstones.contains(&k) => {
                        match find(s, hasher.hash_one(&k), &k)? {
                            Some((_, Some(v))) => {
                                let (stamp, v) = split_stamp(ttl.is_some(), v);
                                if expired(ttl, stamp, now) {
                                    (Change::Deleted, 0)
                                } else {
                                    (Change::Encoded(v.to_vec()), stamp)
                                }
                            }
                            _ => (Change::Deleted, 0),
                        }
                    }
                    _ => (Change::Deleted, 0),
                },
            };
            out.push((k, c, time(stamp)));
        }
        Ok(out)
    }

    /// Starts copying the keys changed since the last checkpoint, each with its value (or
    /// its deletion) and, with a TTL, its write time, as they are now — without copying
    /// anything yet: the copy is taken by [`KeyedTable::freeze_step`] a chunk at a time
    /// while processing goes on, and a value written before its turn is saved first (copy
    /// on write). Finishes a copy still under way first ([`KeyedTable::take_frozen`] then
    /// gives both).
    pub fn begin_freeze(&mut self)
    where
        V: Clone,
    {
        self.begin_freeze_with(Copier::Clone(V::clone))
    }

    /// [`KeyedTable::begin_freeze`], copying values with `copy`.
    pub(crate) fn begin_freeze_with(&mut self, copy: Copier<V>) {
        self.begin_freeze_to(copy, None);
    }

    /// [`KeyedTable::begin_freeze`], encoding each change into [`Entries`] as `to` says
    /// ([`KeyedTable::take_frozen_entries`] gives them); values written before their turn
    /// are saved with `save` first. A value saved encoded must be in `to`'s values' codec.
    pub(crate) fn begin_freeze_encoded(&mut self, save: Copier<V>, to: EncodeTo<K, V>) {
        self.begin_freeze_to(save, Some(to));
    }

    fn begin_freeze_to(&mut self, copy: Copier<V>, to: Option<EncodeTo<K, V>>) {
        self.settle_freeze();
        let Some(changed) = self.changed.as_mut() else {
            return;
        };
        let mut keys = std::mem::take(changed);
        let (out, entries) = match to {
            None => (Vec::with_capacity(keys.len()), Entries::default()),
            Some(_) => (Vec::new(), Entries::with_capacity(keys.len())),
        };
        // hashbrown keeps 7 of each 8 buckets' worth of entries.
        let buckets = (self.map.capacity() / 7 * 8).next_power_of_two();
        let table_bytes = buckets.saturating_mul(std::mem::size_of::<(K, Slot<V>)>());
        let order = (keys.len() >= ORDER_FROM_KEYS
            && table_bytes >= ORDER_FROM_BYTES
            && CopyOrder::<K>::fits(keys.len()))
        .then(|| CopyOrder::new(std::mem::take(&mut keys), buckets));
        let f = Freeze {
            out,
            entries,
            to,
            keys,
            order,
            epoch: self.epoch,
            now: self.now(),
            saved: Default::default(),
            done: Default::default(),
            repeats: std::mem::take(&mut self.repeats),
            copy,
            failure: None,
            longest: std::time::Duration::ZERO,
            busy: std::time::Duration::ZERO,
            steps: 0,
            begun: std::time::Instant::now(),
        };
        self.freeze = Some(Box::new(f));
        // The epoch's first change of each key from now on lists it anew.
        self.epoch = match self.epoch.wrapping_add(1) {
            CLEAN | LOADED => 1,
            e => e,
        };
    }

    /// Whether a copy begun by [`KeyedTable::begin_freeze`] is still under way.
    pub fn is_freezing(&self) -> bool {
        self.freeze
            .as_ref()
            .is_some_and(|f| !f.keys.is_empty() || f.order.as_ref().is_some_and(|o| !o.is_done()))
    }

    /// Copies more keys of the copy under way for about `time` (at least a few hundred
    /// keys), so that a step holds processing up for a bounded time whatever the values cost
    /// to copy.
    pub fn freeze_for(&mut self, time: std::time::Duration) {
        let start = std::time::Instant::now();
        while self.is_freezing() {
            self.freeze_step(256);
            if start.elapsed() >= time {
                break;
            }
        }
        // One step, as the copy's pause measures it.
        if let Some(f) = self.freeze.as_mut() {
            f.longest = f.longest.max(start.elapsed());
        }
    }

    /// Copies up to `budget` more keys of the copy under way.
    pub fn freeze_step(&mut self, budget: usize) {
        let Some(mut f) = self.freeze.take() else {
            return;
        };
        let start = std::time::Instant::now();
        let what = || "a spilled value".to_string();
        let hasher = *self.map.hasher();
        for _ in 0..budget {
            let k = match f.order.as_mut() {
                Some(o) => match o.next(
                    |k| hasher.hash_one(k),
                    |k| {
                        std::hint::black_box(self.map.get(k).map(|s| s.epoch));
                    },
                ) {
                    Next::Key(k) => k,
                    Next::Working => continue,
                    Next::Done => break,
                },
                None => match f.keys.pop() {
                    Some(k) => k,
                    None => break,
                },
            };
            // Copied already: a key listed twice, or saved encoded before a write.
            if !f.done.is_empty() && f.done.contains(&k) {
                continue;
            }
            let saved = if f.saved.is_empty() {
                None
            } else {
                f.saved.remove(&k)
            };
            if let Some((v, stamp)) = saved {
                // Written since the barrier: as it was then.
                f.take(k, Some(Held::Copied(v)), stamp, &self.ttl);
                continue;
            }
            match self.map.get_mut(&k) {
                // Unchanged since the barrier.
                Some(s) if s.epoch == f.epoch || s.epoch == LOADED || s.epoch == CLEAN => {
                    if s.epoch == f.epoch {
                        s.epoch = CLEAN;
                    }
                    f.take(k, Some(Held::Live(&s.value)), s.stamp, &self.ttl);
                }
                // Absent at the barrier, inserted since.
                Some(_) => f.take(k, None, 0, &self.ttl),
                None => match self.spill.as_ref().filter(|_| self.cold) {
                    Some(s) if !s.tombstones.contains(&k) => {
                        let hash = self.map.hasher().hash_one(&k);
                        let found = find(s, hash, &k).and_then(|found| match found {
                            Some((_, Some(b))) => {
                                let (stamp, b) = split_stamp(self.ttl.is_some(), b);
                                let v = match (f.to, f.copy) {
                                    // Spilled with the values' codec.
                                    (Some(_), _) | (None, Copier::Encode(_)) => Held::Bytes(b),
                                    (None, Copier::Clone(_)) => {
                                        Held::Copied(Copied::Value(s.values.decode_all(b, &what)?))
                                    }
                                };
                                Ok((Some(v), stamp))
                            }
                            _ => Ok((None, 0)),
                        });
                        match found {
                            Ok((v, stamp)) => f.take(k, v, stamp, &self.ttl),
                            Err(e) => {
                                f.failure.get_or_insert(e);
                            }
                        }
                    }
                    _ => f.take(k, None, 0, &self.ttl),
                },
            }
        }
        let took = start.elapsed();
        f.longest = f.longest.max(took);
        f.busy += took;
        f.steps += 1;
        self.freeze = Some(f);
    }

    /// The finished copy begun by [`KeyedTable::begin_freeze`], once
    /// [`KeyedTable::freeze_step`] (or any operation that needs the table settled) has taken
    /// all of it, with the longest step it took; `None` while it is under way or when none
    /// was begun.
    #[allow(clippy::type_complexity)] // the changes and a duration
    pub fn take_frozen(
        &mut self,
    ) -> Option<(Result<Vec<OwnedTimedChange<K, V>>>, std::time::Duration)> {
        let (r, longest) = self.take_frozen_copies()?;
        let r = r.and_then(|out| {
            out.into_iter()
                .map(|(k, v, t)| Ok((k, v.map(Copied::value).transpose()?, t)))
                .collect()
        });
        Some((r, longest))
    }

    /// The finished copy, as taken: [`KeyedTable::take_frozen`] without converting the
    /// values (the checkpoint writer converts each as it encodes it).
    #[allow(clippy::type_complexity)] // the changes and a duration
    pub(crate) fn take_frozen_copies(
        &mut self,
    ) -> Option<(Result<Vec<CopiedChange<K, V>>>, std::time::Duration)> {
        let f = self.take_finished()?;
        let r = match f.failure {
            Some(e) => Err(e),
            None => Ok(f.out),
        };
        Some((r, f.longest))
    }

    /// The finished copy begun by [`KeyedTable::begin_freeze_encoded`], as its entries (in
    /// the order taken), with the longest step it took; `None` while it is under way or when
    /// none was begun.
    pub(crate) fn take_frozen_entries(&mut self) -> Option<(Result<Entries>, std::time::Duration)> {
        let f = *self.take_finished()?;
        let r = match f.failure {
            Some(e) => Err(e),
            None => Ok(f.entries),
        };
        Some((r, f.longest))
    }

    /// The copy under way, if it is finished.
    fn take_finished(&mut self) -> Option<Box<Freeze<K, V>>> {
        if self.is_freezing() {
            return None;
        }
        let f = self.freeze.take()?;
        tracing::debug!(
            changes = f.out.len().max(f.entries.len()),
            steps = f.steps,
            busy_ms = f.busy.as_secs_f64() * 1e3,
            wall_ms = f.begun.elapsed().as_secs_f64() * 1e3,
            "checkpoint copy taken"
        );
        Some(f)
    }

    /// Finishes the copy under way at once (operations that move entries between memory
    /// and runs, or remove many, need the table settled). The result stays for
    /// [`KeyedTable::take_frozen`].
    fn settle_freeze(&mut self) {
        if self.is_freezing() {
            self.freeze_step(usize::MAX);
        }
    }

    /// [`KeyedTable::take_changes`] with every value owned (spilled ones decoded).
    pub fn take_changes_owned(&mut self) -> Result<Vec<(K, Option<V>)>>
    where
        V: Clone,
    {
        Ok(self
            .take_timed_changes_owned()?
            .into_iter()
            .map(|(k, v, _)| (k, v))
            .collect())
    }

    /// [`KeyedTable::take_timed_changes`] with every value owned (spilled ones decoded).
    pub fn take_timed_changes_owned(&mut self) -> Result<Vec<OwnedTimedChange<K, V>>>
    where
        V: Clone,
    {
        self.settle_freeze();
        let keys = self
            .changed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let now = self.now();
        let what = || "a spilled value".to_string();
        let mut out = Vec::with_capacity(keys.len());
        // One lookup per key in memory (this runs while the subtask's processing waits):
        // clear the flag and copy the value out together.
        for k in keys {
            let (v, stamp) = match self.map.get_mut(&k) {
                Some(s) => {
                    s.epoch = CLEAN;
                    if expired(&self.ttl, s.stamp, now) {
                        (None, 0)
                    } else {
                        (Some(s.value.clone()), s.stamp)
                    }
                }
                None => match self.spill.as_ref().filter(|_| self.cold) {
                    Some(s) if !s.tombstones.contains(&k) => {
                        let hash = self.map.hasher().hash_one(&k);
                        match find(s, hash, &k)? {
                            Some((_, Some(b))) => {
                                let (stamp, b) = split_stamp(self.ttl.is_some(), b);
                                if expired(&self.ttl, stamp, now) {
                                    (None, 0)
                                } else {
                                    (Some(s.values.decode_all(b, &what)?), stamp)
                                }
                            }
                            _ => (None, 0),
                        }
                    }
                    _ => (None, 0),
                },
            };
            let t = v.as_ref().and_then(|_| self.write_time(stamp));
            out.push((k, v, t));
        }
        Ok(out)
    }

    /// Reads `key`'s spilled value back (not into memory). Records a failure and answers
    /// `None` if the runs cannot be read.
    fn load<Q>(&mut self, key: &Q) -> Option<(K, V, u32)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.map.hasher().hash_one(key);
        let now = self.now();
        let ttl = &self.ttl;
        let s = self.spill.as_mut()?;
        if s.tombstones.contains(key) {
            return None;
        }
        let r = match find(s, hash, key) {
            Ok(Some((k, Some(vb)))) => {
                let (stamp, vb) = split_stamp(ttl.is_some(), vb);
                if expired(ttl, stamp, now) {
                    Ok(None)
                } else {
                    s.values
                        .decode_all(vb, &|| "a spilled value".to_string())
                        .map(|v| Some((k, v, stamp)))
                }
            }
            Ok(Some((_, None))) => Ok(None),
            // Not in a run: the restored checkpoint may hold it.
            Ok(None) => match s.base.as_mut() {
                Some(b) => b.get(hash, &key.to_owned(), s.keys).map(|found| {
                    found.and_then(|(k, v, ms)| {
                        let stamp = ms.map_or(now, |ms| stamp_at(ttl, ms));
                        (!expired(ttl, stamp, now)).then_some((k, v, stamp))
                    })
                }),
                None => Ok(None),
            },
            Err(e) => Err(e),
        };
        // A page fault maps the pages around it too (the kernel's fault-around, 64 KiB).
        s.touched += s.runs.iter().filter(|r| r.may_contain(hash)).count() * (64 << 10);
        if s.touched > RELEASE_AFTER {
            s.touched = 0;
            for run in &s.runs {
                if let Err(e) = run.release_pages() {
                    s.failure.get_or_insert(e.to_string());
                }
            }
        }
        match r {
            Ok(Some(kv)) => {
                s.stats.loaded += 1;
                s.memory.note_loaded(1);
                Some(kv)
            }
            Ok(None) => None,
            Err(e) => {
                s.failure.get_or_insert(e.to_string());
                None
            }
        }
    }

    /// Evicts entries if the in-memory part is at its budget, so one more fits.
    fn make_room_for_one(&mut self) {
        if self.map.len() < self.limit {
            return;
        }
        let Some(s) = self.spill.as_mut() else {
            self.limit = usize::MAX;
            return;
        };
        if s.failure.is_some() {
            // Spilling failed: keep everything in memory; the job fails at its next check.
            self.limit = usize::MAX;
            return;
        }
        // Estimate the heap bytes of an entry from a sample of encoded entries.
        let mut sample = Vec::new();
        let (mut n, mut bytes) = (0usize, 0usize);
        for (k, slot) in self.map.iter().take(64) {
            sample.clear();
            if (s.keys.enc)(k, &mut sample).is_ok()
                && (s.values.enc)(&slot.value, &mut sample).is_ok()
            {
                n += 1;
                bytes += sample.len();
            }
        }
        if let Some(avg) = bytes.checked_div(n) {
            // An allocation costs its bytes and about a word of allocator bookkeeping.
            s.heap = avg + 8;
        }
        let slot = std::mem::size_of::<(K, Slot<V>)>() + 1;
        let share = usize::try_from(s.memory.share()).unwrap_or(usize::MAX);
        let fit = entries_within(share, slot, s.heap);
        let len = self.map.len();
        if len < fit {
            // Check again when the table has doubled (the estimate may change as it grows).
            self.limit = fit.min(len.saturating_mul(2).max(FIRST_CHECK));
            return;
        }
        // Evict down to 7/8 of what fits, so an eviction pass writes a sizeable run. A copy
        // under way finishes first: it reads the runs, and evicted values leave memory.
        self.settle_freeze();
        let keep = fit - fit / 8;
        self.evict(len - keep);
        self.limit = fit;
    }

    /// Moves `count` of the coldest entries to a new run.
    fn evict(&mut self, count: usize) {
        let with_ttl = self.ttl.is_some();
        let now = self.now();
        let ttl_ticks = self.ttl.as_ref().map(|t| t.ticks);
        let Some(s) = self.spill.as_mut() else { return };
        let dir = match &s.dir {
            Some(d) => Arc::clone(d),
            None => match s.memory.spill_dir() {
                Ok(d) => {
                    s.dir = Some(Arc::clone(&d));
                    d
                }
                Err(e) => {
                    s.failure.get_or_insert(e.to_string());
                    self.limit = usize::MAX;
                    return;
                }
            },
        };
        // CLOCK: entries used since the last pass get a second chance.
        let mut taken = 0;
        let mut out: Vec<(K, Slot<V>)> = self
            .map
            .extract_if(|_, slot| {
                if taken >= count {
                    return false;
                }
                if slot.hot {
                    slot.hot = false;
                    false
                } else {
                    taken += 1;
                    true
                }
            })
            .collect();
        if out.len() < count {
            let more = count - out.len();
            let mut n = 0;
            out.extend(self.map.extract_if(|_, _| {
                n += 1;
                n <= more
            }));
        }
        // Encode into one buffer: (hash, key start, key end, value end or none).
        let hasher = self.map.hasher();
        let mut buf = Vec::new();
        let mut recs: Vec<(u64, usize, usize, Option<usize>)> =
            Vec::with_capacity(out.len() + s.tombstones.len());
        let mut failed = None;
        for (k, slot) in &out {
            let start = buf.len();
            let r = (s.keys.enc)(k, &mut buf).and_then(|_| {
                let kend = buf.len();
                if with_ttl {
                    buf.extend_from_slice(&slot.stamp.to_le_bytes());
                }
                (s.values.enc)(&slot.value, &mut buf).map(|_| kend)
            });
            match r {
                Ok(kend) => recs.push((hasher.hash_one(k), start, kend, Some(buf.len()))),
                Err(e) => {
                    failed = Some(e.to_string());
                    break;
                }
            }
        }
        for k in &s.tombstones {
            let start = buf.len();
            if let Err(e) = (s.keys.enc)(k, &mut buf) {
                failed = Some(e.to_string());
                break;
            }
            recs.push((hasher.hash_one(k), start, buf.len(), None));
        }
        let written = match failed {
            Some(e) => Err(e),
            None => {
                recs.sort_unstable_by(|a, b| {
                    a.0.cmp(&b.0)
                        .then_with(|| buf[a.1..a.2].cmp(&buf[b.1..b.2]))
                });
                dir.write_run(
                    recs.iter()
                        .map(|&(h, ks, ke, ve)| (h, &buf[ks..ke], ve.map(|ve| &buf[ke..ve]))),
                )
                .map_err(|e| e.to_string())
            }
        };
        match written {
            Ok(run) => {
                let before: u64 = s.runs.iter().map(Run::file_bytes).sum();
                s.tombstones.clear();
                s.stats.evictions += 1;
                s.stats.evicted += out.len() as u64;
                s.runs.push(run);
                self.cold = true;
                let below = s.base.is_some();
                if let Err(e) = compact(&dir, &mut s.runs, now, ttl_ticks, below) {
                    s.failure.get_or_insert(e.to_string());
                }
                let after = s.runs.iter().map(Run::file_bytes).sum();
                s.memory.note_runs(out.len() as u64, before, after);
            }
            Err(e) => {
                // Nothing is lost: the entries go back into memory, and the job fails.
                s.failure.get_or_insert(e);
                self.map.extend(out);
                self.limit = usize::MAX;
            }
        }
    }
}

/// A spilled entry found: its decoded key and its encoded value (`None`: a tombstone).
type Found<'r, K> = Option<(K, Option<&'r [u8]>)>;

/// Finds the newest spilled entry of `key` (hash `hash`) in `s`'s runs: the decoded key and
/// the encoded value (`None`: a tombstone).
fn find<'r, K, V, Q>(s: &'r Spill<K, V>, hash: u64, key: &Q) -> Result<Found<'r, K>>
where
    K: Borrow<Q>,
    Q: Eq + ?Sized,
{
    for run in s.runs.iter().rev() {
        let mut found = None;
        let hit = run.get(hash, |kb| match s.keys.decode_all(kb, &|| String::new()) {
            Ok(k) if k.borrow() == key => {
                found = Some(k);
                true
            }
            _ => false,
        })?;
        if let (Some(v), Some(k)) = (hit, found) {
            return Ok(Some((k, v)));
        }
    }
    Ok(None)
}

/// Merges the newest runs while the one before is at most twice as large (size-tiered: an
/// entry is rewritten a logarithmic number of times), and all of them beyond eight runs.
///
/// With a TTL (`ttl` ticks at `now`), expired entries are dropped on the way: an older
/// version of the key in an older run is older still, so expired too.
///
/// `below`: a restored checkpoint's state lies below the runs, so a merge of all of them
/// keeps its deletions too.
fn compact(
    dir: &Arc<SpillDir>,
    runs: &mut Vec<Run>,
    now: u32,
    ttl: Option<u32>,
    below: bool,
) -> Result<()> {
    loop {
        let n = runs.len();
        let merge_from = if n > 8 {
            0
        } else if n >= 2 && runs[n - 2].file_bytes() <= 2 * runs[n - 1].file_bytes() {
            n - 2
        } else {
            return Ok(());
        };
        let merged = {
            let inputs: Vec<&Run> = runs[merge_from..].iter().collect();
            // Deletions only matter while an older run may hold the key.
            spill::merge_filtered(dir, &inputs, merge_from > 0 || below, |e| {
                match (ttl, e.value) {
                    (Some(ticks), Some(v)) => now.wrapping_sub(split_stamp(true, v).0) <= ticks,
                    _ => true,
                }
            })?
        };
        runs.truncate(merge_from);
        merged.release_pages()?;
        runs.push(merged);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn owned(t: &mut KeyedTable<u32, u32>) -> Vec<(u32, Option<u32>)> {
        let mut c = t.take_changes_owned().unwrap();
        c.sort();
        c.dedup();
        c
    }

    #[test]
    fn a_restored_batch_holds_every_entry_and_is_no_change() {
        let mut t: KeyedTable<u64, u64> = KeyedTable::tracking();
        t.reserve_for_restore(30_000);
        // Two batches, the second growing the table past what was reserved.
        for range in [0..20_000u64, 20_000..50_000] {
            let mut batch: Vec<_> = range.map(|k| (k * 7919, k, None)).collect();
            t.restore_batch(&mut batch);
            assert!(batch.is_empty());
        }
        assert_eq!(t.len(), 50_000);
        for k in 0..50_000u64 {
            assert_eq!(t.get(&(k * 7919)), Some(&k));
        }
        assert!(t.take_changes_owned().unwrap().is_empty());
    }

    #[test]
    fn changes_are_each_key_once_with_its_current_value_or_a_deletion() {
        let mut t: KeyedTable<u32, u32> = KeyedTable::tracking();
        t.insert(1, 10);
        let mut add = FoldWith(|x| x, |v: &mut u32, x| *v += x);
        t.upsert(2, 5, &mut add);
        t.upsert(2, 5, &mut add);
        *t.get_or_insert_with(3, || 0) += 1;
        assert_eq!(
            owned(&mut t),
            vec![(1, Some(10)), (2, Some(10)), (3, Some(1))]
        );
        assert_eq!(t.get(&2), Some(&10), "reading is no change");
        assert_eq!(t.take_changes().unwrap().len(), 0);
        t.remove(&1);
        if let Some(v) = t.get_mut(&3) {
            *v = 7;
        }
        assert_eq!(owned(&mut t), vec![(1, None), (3, Some(7))]);
        t.restore(9, 9);
        assert_eq!(
            t.take_changes().unwrap().len(),
            0,
            "restored entries are not changes"
        );
        let mut drained = Vec::new();
        t.drain_into(|k, v| drained.push((k, v))).unwrap();
        assert_eq!(drained.len(), 3);
        assert!(
            owned(&mut t).iter().all(|(_, v)| v.is_none()),
            "drained keys are deletions"
        );
    }

    #[test]
    fn without_tracking_nothing_is_recorded() {
        let mut t: KeyedTable<u32, u32> = KeyedTable::new();
        t.insert(1, 1);
        t.remove(&1);
        assert_eq!(t.take_changes().unwrap().len(), 0);
    }

    fn spilling(budget: u64) -> KeyedTable<u32, u32> {
        let mut t = KeyedTable::tracking();
        let memory = StateMemory::new(budget, None);
        t.spill_within(memory, Codec::serde(), Codec::serde());
        t
    }

    #[test]
    fn a_table_beyond_its_budget_spills_and_reads_back_every_key() {
        // 1 MiB (the smallest budget) holds far fewer than 200,000 entries.
        const N: u32 = 60_000;
        let mut t = spilling(256 << 10);
        let mut add = FoldWith(|x| x, |v: &mut u32, x| *v += x);
        for round in 0..3u32 {
            for k in 0..N {
                t.upsert(k, k % 7 + round, &mut add);
            }
        }
        t.check().unwrap();
        let stats = t.spill_stats();
        assert!(stats.evicted > 0 && stats.runs > 0, "{stats:?}");
        assert!(t.len() < N as usize / 2, "{} entries in memory", t.len());
        for k in (0..N).step_by(997) {
            assert_eq!(t.get(&k), Some(&(3 * (k % 7) + 3)), "key {k}");
        }
        for k in 0..1000u32 {
            t.remove(&k);
        }
        let mut all = BTreeMap::new();
        t.for_each(|k, v| {
            assert!(all.insert(*k, *v).is_none(), "key {k} given twice");
        })
        .unwrap();
        assert_eq!(all.len(), N as usize - 1000);
        assert!(all.iter().all(|(k, v)| *v == 3 * (k % 7) + 3));
        let changes = owned(&mut t);
        assert_eq!(
            changes.len(),
            N as usize,
            "every key changed once since tracking began"
        );
        assert_eq!(changes.iter().filter(|c| c.1.is_none()).count(), 1000);
        let mut n = 0;
        t.drain_into(|_, _| n += 1).unwrap();
        assert_eq!(n, N - 1000);
        assert!(t.is_empty());
    }

    #[test]
    fn entries_not_written_within_the_ttl_expire_in_memory_and_on_disk() {
        let mut t = spilling(1);
        t.set_ttl(Some(std::time::Duration::from_millis(1500)));
        let mut add = FoldWith(|x| x, |v: &mut u32, x| *v += x);
        // The keys rewritten below go last, so however long the rest takes (a debug build
        // on a busy machine) they are 1 s old when rewritten.
        for k in (10..2000u32).chain(0..10) {
            t.upsert(k, 1, &mut add);
        }
        assert!(t.spill_stats().evicted > 0, "{:?}", t.spill_stats());
        assert_eq!(t.take_changes().unwrap().len(), 2000);
        std::thread::sleep(std::time::Duration::from_millis(1000));
        // Written again: fresh for another TTL.
        for k in 0..10u32 {
            t.upsert(k, 1, &mut add);
        }
        std::thread::sleep(std::time::Duration::from_millis(700));
        assert_eq!(t.get(&1), Some(&2), "rewritten within the TTL");
        assert_eq!(t.get(&1500), None, "expired (in memory or spilled)");
        assert_eq!(
            *t.upsert(1500, 5, &mut add),
            5,
            "an expired value starts afresh"
        );
        t.expire();
        let mut live = BTreeMap::new();
        t.for_each(|k, v| {
            live.insert(*k, *v);
        })
        .unwrap();
        assert_eq!(live.len(), 11, "{live:?}");
        // The checkpoint deletes the expired keys the sweep removed from memory, and writes
        // no expired value.
        let changes = owned(&mut t);
        let deleted = changes.iter().filter(|c| c.1.is_none()).count();
        assert!(deleted >= 1, "{deleted} deletions");
        assert!(changes
            .iter()
            .filter(|c| c.1.is_some())
            .all(|c| c.0 < 10 || c.0 == 1500));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Add(u16, u32),
        Remove(u16),
        Get(u16),
        Checkpoint,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..3000u16, 0..100u32).prop_map(|(k, v)| Op::Add(k, v)),
            1 => (0..3000u16).prop_map(Op::Remove),
            2 => (0..3000u16).prop_map(Op::Get),
            1 => Just(Op::Checkpoint),
        ]
    }

    #[derive(Debug, Clone)]
    enum LazyOp {
        Add(u16, u32),
        Remove(u16),
        Get(u16),
        /// Load this many restored entries.
        Step(u16),
        /// A barrier: start copying the changes (after finishing the last copy).
        Barrier,
        /// A step of the copy under way.
        Copy(u16),
    }

    fn lazy_op() -> impl Strategy<Value = LazyOp> {
        prop_oneof![
            6 => (0..3000u16, 0..100u32).prop_map(|(k, v)| LazyOp::Add(k, v)),
            1 => (0..3000u16).prop_map(LazyOp::Remove),
            3 => (0..3000u16).prop_map(LazyOp::Get),
            1 => (1..300u16).prop_map(LazyOp::Step),
            1 => Just(LazyOp::Barrier),
            1 => (1..200u16).prop_map(LazyOp::Copy),
        ]
    }

    #[derive(Debug, Clone)]
    enum FreezeOp {
        Add(u16, u32),
        Remove(u16),
        /// A barrier: start copying the changes.
        Barrier,
        /// Copy this many more keys.
        Step(u16),
    }

    fn freeze_op() -> impl Strategy<Value = FreezeOp> {
        prop_oneof![
            8 => (0..800u16, 0..100u32).prop_map(|(k, v)| FreezeOp::Add(k, v)),
            2 => (0..800u16).prop_map(FreezeOp::Remove),
            1 => Just(FreezeOp::Barrier),
            2 => (1..300u16).prop_map(FreezeOp::Step),
        ]
    }

    /// How a test's checkpoints copy the table: typed values, or encoded entries with
    /// values saved before a write cloned or encoded.
    #[derive(Debug, Clone, Copy)]
    enum CopyMode {
        Values,
        Entries,
        EntriesSavedEncoded,
    }

    fn copy_mode() -> impl Strategy<Value = CopyMode> {
        prop_oneof![
            Just(CopyMode::Values),
            Just(CopyMode::Entries),
            Just(CopyMode::EntriesSavedEncoded),
        ]
    }

    const TEST_MAX_PARALLELISM: u32 = 128;

    /// The finished copy, if there is one, as typed changes (decoded from its entries, whose
    /// key groups are checked, for an encoded copy).
    #[allow(clippy::type_complexity)]
    fn take_frozen_as_values(
        t: &mut KeyedTable<u32, u32>,
        mode: CopyMode,
    ) -> Option<Vec<(u32, Option<u32>)>> {
        match mode {
            CopyMode::Values => t.take_frozen().map(|(changes, _)| {
                changes
                    .unwrap()
                    .into_iter()
                    .map(|(k, v, _)| (k, v))
                    .collect()
            }),
            CopyMode::Entries | CopyMode::EntriesSavedEncoded => {
                t.take_frozen_entries().map(|(entries, _)| {
                    let entries = entries.unwrap();
                    let what = || "a test entry".to_string();
                    let mut seen = std::collections::HashSet::new();
                    entries
                        .iter()
                        .map(|(kg, k, v)| {
                            let k: u32 = crate::runtime::snapshot::decode(k, &what).unwrap();
                            assert!(seen.insert(k), "key {k} copied twice");
                            assert_eq!(
                                kg,
                                flow_state::key_group_of(stable_hash(&k), TEST_MAX_PARALLELISM)
                            );
                            let v = v.map(|v| crate::runtime::snapshot::decode(v, &what).unwrap());
                            (k, v)
                        })
                        .collect()
                })
            }
        }
    }

    /// Applies a finished copy, if there is one, to `checkpoint` and checks it against the
    /// model as it was at the copy's barrier.
    fn apply_frozen(
        t: &mut KeyedTable<u32, u32>,
        mode: CopyMode,
        checkpoint: &mut BTreeMap<u32, u32>,
        at_barrier: &mut Option<BTreeMap<u32, u32>>,
    ) -> Result<(), TestCaseError> {
        if let Some(changes) = take_frozen_as_values(t, mode) {
            for (k, v) in changes {
                match v {
                    Some(v) => checkpoint.insert(k, v),
                    None => checkpoint.remove(&k),
                };
            }
            let want = at_barrier.take();
            prop_assert_eq!(Some(&*checkpoint), want.as_ref());
        }
        Ok(())
    }

    /// Begins a checkpoint's copy in `mode`.
    fn begin(t: &mut KeyedTable<u32, u32>, mode: CopyMode) {
        let to = EncodeTo {
            keys: Codec::serde(),
            values: Codec::serde(),
            time: |_, _| Ok(()),
            max_parallelism: TEST_MAX_PARALLELISM,
        };
        match mode {
            CopyMode::Values => t.begin_freeze(),
            CopyMode::Entries => t.begin_freeze_encoded(Copier::Clone(u32::clone), to),
            CopyMode::EntriesSavedEncoded => {
                t.begin_freeze_encoded(Copier::Encode(Codec::serde()), to)
            }
        }
    }

    /// A barrier: the previous copy finishes first (as an operator flushes it), then a copy
    /// of the table, which must come out as `model` is now, begins.
    fn barrier(
        t: &mut KeyedTable<u32, u32>,
        mode: CopyMode,
        checkpoint: &mut BTreeMap<u32, u32>,
        at_barrier: &mut Option<BTreeMap<u32, u32>>,
        model: &BTreeMap<u32, u32>,
    ) -> Result<(), TestCaseError> {
        t.freeze_step(usize::MAX);
        apply_frozen(t, mode, checkpoint, at_barrier)?;
        begin(t, mode);
        *at_barrier = Some(model.clone());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Checkpoints copied a step at a time while writes go on (copy on write) hold the
        /// table as it was at their barrier, in memory and spilling.
        #[test]
        fn a_copy_in_steps_is_the_table_at_its_barrier(
            ops in proptest::collection::vec(freeze_op(), 1..4000),
            spill in any::<bool>(),
            mode in copy_mode(),
        ) {
            let mut t = if spill { spilling(1) } else { KeyedTable::tracking() };
            let mut add = FoldWith(|x| x, |v: &mut u32, x| *v += x);
            let mut model: BTreeMap<u32, u32> = BTreeMap::new();
            let mut checkpoint: BTreeMap<u32, u32> = BTreeMap::new();
            let mut at_barrier = None;
            for op in ops {
                match op {
                    FreezeOp::Add(k, v) => {
                        let got = *t.upsert(u32::from(k), v, &mut add);
                        let m = model.entry(u32::from(k)).or_insert(0);
                        *m += v;
                        prop_assert_eq!(got, *m);
                    }
                    FreezeOp::Remove(k) => {
                        prop_assert_eq!(t.remove(&u32::from(k)), model.remove(&u32::from(k)));
                    }
                    FreezeOp::Barrier => {
                        barrier(&mut t, mode, &mut checkpoint, &mut at_barrier, &model)?;
                    }
                    FreezeOp::Step(n) => t.freeze_step(usize::from(n)),
                }
                apply_frozen(&mut t, mode, &mut checkpoint, &mut at_barrier)?;
            }
            barrier(&mut t, mode, &mut checkpoint, &mut at_barrier, &model)?;
            t.freeze_step(usize::MAX);
            apply_frozen(&mut t, mode, &mut checkpoint, &mut at_barrier)?;
            prop_assert!(at_barrier.is_none(), "the last copy finished");
            t.check().unwrap();
        }


        /// A table restored lazily from a checkpoint of two increments (the second with
        /// deletions), loaded a step at a time while reads, writes, deletions and
        /// checkpoint copies (in steps) go on, spilling or not, with key groups skipped,
        /// behaves as a `BTreeMap` that held the checkpoint; each copy, applied to the
        /// restored checkpoint, gives the map at its barrier.
        #[test]
        fn a_lazily_restored_table_matches_a_map(
            first in proptest::collection::btree_map(0..3000u32, 0..100u32, 0..1500),
            second in proptest::collection::btree_map(0..3000u32, proptest::option::of(0..100u32), 0..300),
            ops in proptest::collection::vec(lazy_op(), 1..3000),
            spill in any::<bool>(),
            skip in proptest::option::of((0..128u32, 0..40u32)),
            mode in copy_mode(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut store = flow_state::CheckpointStore::open(
                dir.path(),
                Arc::new(flow_state::FsStorage),
            ).unwrap();
            let kg = |k: &u32| flow_state::key_group_of(
                rustc_hash::FxBuildHasher.hash_one(k),
                128,
            );
            let codec = Codec::<u32>::serde();
            let enc = |k: &u32| { let mut b = Vec::new(); (codec.enc)(k, &mut b).unwrap(); b };
            for (id, entries) in [
                (1u64, first.iter().map(|(k, v)| (*k, Some(*v))).collect::<Vec<_>>()),
                (2, second.iter().map(|(k, v)| (*k, *v)).collect()),
            ] {
                let mut rows: Vec<(u32, Vec<u8>, Option<Vec<u8>>)> = entries
                    .iter()
                    .map(|(k, v)| (kg(k), enc(k), v.as_ref().map(enc)))
                    .collect();
                rows.sort();
                let mut cp = store.begin(id).unwrap();
                let mut w = cp.state("op", "acc");
                for (g, k, v) in &rows {
                    w.put(*g, k, v.as_deref()).unwrap();
                }
                w.finish().unwrap();
                cp.commit().unwrap();
            }
            let skip: Vec<(u32, u32)> = skip.map(|(s, n)| (s, s + n)).into_iter().collect();
            let skipped = |k: &u32| skip.iter().any(|&(s, e)| (s..e).contains(&kg(k)));
            let mut model: BTreeMap<u32, u32> = first.clone();
            for (k, v) in &second {
                match v {
                    Some(v) => model.insert(*k, *v),
                    None => model.remove(k),
                };
            }
            model.retain(|k, _| !skipped(k));
            let view = store.restore_view(2).unwrap();
            let lazy = view.lazy("op", "acc", flow_state::KeyGroupRange { start: 0, end: 128 }).unwrap();
            let mut t = spilling(if spill { 1 } else { 64 << 20 });
            let decode: RestoredDecode<u32, u32> = Box::new(|k, v| {
                let c = Codec::<u32>::serde();
                Ok((c.decode_all(k, &String::new)?, c.decode_all(v, &String::new)?, None))
            });
            prop_assert!(t.restore_lazily(lazy, 128, skip.clone(), decode));
            let mut add = FoldWith(|x| x, |v: &mut u32, x| *v += x);
            let mut checkpoint = model.clone();
            let mut at_barrier = None;
            for op in ops {
                match op {
                    LazyOp::Add(k, v) => {
                        let got = *t.upsert(u32::from(k), v, &mut add);
                        let m = model.entry(u32::from(k)).or_insert(0);
                        *m += v;
                        prop_assert_eq!(got, *m);
                    }
                    LazyOp::Remove(k) => {
                        prop_assert_eq!(t.remove(&u32::from(k)), model.remove(&u32::from(k)));
                    }
                    LazyOp::Get(k) => {
                        prop_assert_eq!(t.get(&u32::from(k)).copied(), model.get(&u32::from(k)).copied());
                    }
                    LazyOp::Step(n) => {
                        t.restore_step(usize::from(n)).unwrap();
                    }
                    LazyOp::Barrier => {
                        barrier(&mut t, mode, &mut checkpoint, &mut at_barrier, &model)?;
                    }
                    LazyOp::Copy(n) => t.freeze_step(usize::from(n)),
                }
                apply_frozen(&mut t, mode, &mut checkpoint, &mut at_barrier)?;
            }
            barrier(&mut t, mode, &mut checkpoint, &mut at_barrier, &model)?;
            t.freeze_step(usize::MAX);
            apply_frozen(&mut t, mode, &mut checkpoint, &mut at_barrier)?;
            t.check().unwrap();
            let mut all = BTreeMap::new();
            t.for_each(|k, v| { all.insert(*k, *v); }).unwrap();
            prop_assert_eq!(all, model);
            prop_assert!(!t.is_restoring());
        }

        /// A spilling table (budget far below its size) behaves as a `BTreeMap`, and its
        /// changes, applied to a model of the last checkpoint, give the model.
        #[test]
        fn a_spilling_table_matches_a_map(ops in proptest::collection::vec(op(), 1..6000)) {
            let mut t = spilling(1);
            let mut add = FoldWith(|x| x, |v: &mut u32, x| *v += x);
            let mut model: BTreeMap<u32, u32> = BTreeMap::new();
            let mut checkpoint: BTreeMap<u32, u32> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Add(k, v) => {
                        let got = *t.upsert(u32::from(k), v, &mut add);
                        let m = model.entry(u32::from(k)).or_insert(0);
                        *m += v;
                        prop_assert_eq!(got, *m);
                    }
                    Op::Remove(k) => {
                        prop_assert_eq!(t.remove(&u32::from(k)), model.remove(&u32::from(k)));
                    }
                    Op::Get(k) => {
                        prop_assert_eq!(t.get(&u32::from(k)).copied(), model.get(&u32::from(k)).copied());
                    }
                    Op::Checkpoint => {
                        for (k, v) in t.take_changes_owned().unwrap() {
                            match v {
                                Some(v) => checkpoint.insert(k, v),
                                None => checkpoint.remove(&k),
                            };
                        }
                        prop_assert_eq!(&checkpoint, &model);
                    }
                }
            }
            t.check().unwrap();
            prop_assert!(model.len() < 200 || t.spill_stats().evicted > 0, "{:?}", t.spill_stats());
            let mut all = BTreeMap::new();
            t.for_each(|k, v| { all.insert(*k, *v); }).unwrap();
            prop_assert_eq!(all, model);
        }
    }
}
#[cfg(test)]
mod ttl_tests {
    use super::*;

    #[test]
    fn a_key_written_again_after_its_ttl_starts_afresh_and_a_stale_one_is_not_drained() {
        let mut t: KeyedTable<char, u64> = KeyedTable::new();
        t.set_ttl(Some(std::time::Duration::from_millis(700)));
        let mut add = FoldWith(|x| x, |v: &mut u64, x| *v += x);
        for _ in 0..5 {
            t.upsert('a', 1, &mut add);
        }
        std::thread::sleep(std::time::Duration::from_millis(1500));
        for _ in 0..3 {
            t.upsert('a', 1, &mut add);
        }
        for _ in 0..2 {
            t.upsert('b', 1, &mut add);
        }
        t.expire();
        let mut out = vec![];
        t.drain_into(|k, v| out.push((k, v))).unwrap();
        out.sort();
        assert_eq!(out, vec![('a', 3), ('b', 2)]);
    }
}
