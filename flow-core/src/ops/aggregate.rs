//! Keyed aggregation: rolling `count`, `sum`, `min`, `max`, `reduce`, `fold`, ...
//!
//! An associative aggregate runs in two phases. Before the exchange, each upstream subtask
//! folds its records into a per-key partial accumulator (local pre-aggregation, inside the
//! fused chain), so a hot key sends one partial per flush instead of one record per
//! occurrence. After the exchange, the subtask that owns the key merges the partials.
//! Partials are flushed when the local table is full, when the subtask has no more input for
//! the moment, and before every watermark or end of input, so results never wait on a timer.
use crate::api::exchange::{exchange_by_key, Exchange};
use crate::api::stream::{KeyedStream, Stream};
use crate::error::Result;
use crate::graph::{Ending, OpInfo};
use crate::ops::Table;
use crate::ops::{StateKey, StateValue};
use crate::record::{Event, Timestamp, NO_TIMESTAMP};
use crate::runtime::entries::Entries;
use crate::runtime::exchange::partition::ByPairKey;
use crate::runtime::keyed_table::{
    Copier, EncodeTo, Fold, KeyedTable, RestoredDecode, FREEZE_STEP, RESTORE_TIME,
};
use crate::runtime::operator::{
    Chain, Downstream, DrainCx, Identity, OpenCx, Operator, Sealed, Then,
};
use crate::runtime::panic::{guarded, Named, OpName};
use crate::runtime::snapshot::{
    decode, encode, Codec, RestoreCx, SnapshotCx, StateDecl, StateSupport,
};
use crate::runtime::stage::Terminal;
use crate::runtime::task::TaskCx;
use hashbrown::hash_map::Entry;
use std::hash::Hash;
use std::marker::PhantomData;
use std::panic::Location;
use std::time::Duration;

/// An aggregate function in the style of Flink's `AggregateFunction`: records are folded into
/// an accumulator, accumulators can be merged, and an accumulator yields a result.
///
/// `merge` must be associative and agree with `add` (adding `x` to the merge of `a` and `b` is
/// the same as merging `a` with `b` plus `x`),
/// because flow pre-aggregates before exchanges and merges partial accumulators after them.
///
/// ```
/// use flow_core::prelude::*;
///
/// /// Mean of the values, accumulated as (sum, count).
/// #[derive(Clone)]
/// struct Mean;
/// impl Aggregate<(&'static str, f64)> for Mean {
///     type Acc = (f64, u64);
///     type Out = f64;
///     fn create(&mut self, (_, x): (&str, f64)) -> (f64, u64) { (x, 1) }
///     fn add(&mut self, acc: &mut (f64, u64), (_, x): (&str, f64)) { acc.0 += x; acc.1 += 1 }
///     fn merge(&mut self, a: &mut (f64, u64), b: (f64, u64)) { a.0 += b.0; a.1 += b.1 }
///     fn result(&mut self, (s, n): (f64, u64)) -> f64 { s / n as f64 }
/// }
///
/// let mut env = Env::new(Config::default().parallelism(2));
/// let means = env
///     .from_iter([("a", 1.0), ("b", 4.0), ("a", 3.0)])
///     .key_by(|(k, _)| k.to_string())
///     .aggregate(Mean)
///     .collect();
/// env.execute()?;
/// let mut got = means.take();
/// got.sort_by(|a, b| a.0.cmp(&b.0));
/// assert_eq!(got, vec![("a".to_string(), 2.0), ("b".to_string(), 4.0)]);
/// # Ok::<(), flow_core::Error>(())
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an aggregate function of records `{T}`",
    label = "expected an `Aggregate<{T}>`",
    note = "implement `Aggregate<{T}>` (create, add, merge, result) for a `Clone` type; for a closure over two records use `reduce`, for a fold that cannot merge use `fold`"
)]
pub trait Aggregate<T>: Clone + Send + 'static {
    /// The accumulator.
    type Acc: Clone + Send + 'static;
    /// The result.
    type Out: Send + 'static;
    /// The accumulator of a single record.
    fn create(&mut self, item: T) -> Self::Acc;
    /// Adds a record to an accumulator.
    fn add(&mut self, acc: &mut Self::Acc, item: T);
    /// Merges accumulator `b` into `a` (of the same key; `a` holds the earlier records).
    fn merge(&mut self, a: &mut Self::Acc, b: Self::Acc);
    /// The result of an accumulator.
    fn result(&mut self, acc: Self::Acc) -> Self::Out;
}

/// Counts records.
#[derive(Clone, Copy, Debug, Default)]
pub struct Count;

impl<T> Aggregate<T> for Count {
    type Acc = u64;
    type Out = u64;
    #[inline]
    fn create(&mut self, _: T) -> u64 {
        1
    }
    #[inline]
    fn add(&mut self, acc: &mut u64, _: T) {
        *acc += 1
    }
    #[inline]
    fn merge(&mut self, a: &mut u64, b: u64) {
        *a += b
    }
    #[inline]
    fn result(&mut self, acc: u64) -> u64 {
        acc
    }
}

/// Sums a value taken from each record.
#[derive(Clone)]
pub struct Sum<F>(pub(crate) Named<F>);

impl<T, S, F> Aggregate<T> for Sum<F>
where
    F: FnMut(&T) -> S + Clone + Send + 'static,
    S: std::ops::AddAssign + Clone + Send + 'static,
{
    type Acc = S;
    type Out = S;
    #[inline]
    fn create(&mut self, x: T) -> S {
        guarded!(self.0.name, (self.0.f)(&x))
    }
    #[inline]
    fn add(&mut self, acc: &mut S, x: T) {
        *acc += guarded!(self.0.name, (self.0.f)(&x))
    }
    #[inline]
    fn merge(&mut self, a: &mut S, b: S) {
        *a += b
    }
    fn result(&mut self, acc: S) -> S {
        acc
    }
}

/// The smallest (`MAX == false`) or largest value taken from each record.
#[derive(Clone)]
pub struct Extreme<F, const MAX: bool>(pub(crate) Named<F>);

impl<T, V, F, const MAX: bool> Aggregate<T> for Extreme<F, MAX>
where
    F: FnMut(&T) -> V + Clone + Send + 'static,
    V: PartialOrd + Clone + Send + 'static,
{
    type Acc = V;
    type Out = V;
    #[inline]
    fn create(&mut self, x: T) -> V {
        guarded!(self.0.name, (self.0.f)(&x))
    }
    #[inline]
    fn add(&mut self, acc: &mut V, x: T) {
        let v = guarded!(self.0.name, (self.0.f)(&x));
        self.merge(acc, v)
    }
    #[inline]
    fn merge(&mut self, a: &mut V, b: V) {
        // Ties keep the earlier value, as Flink's min/max do.
        let take_b = if MAX { b > *a } else { b < *a };
        if take_b {
            *a = b;
        }
    }
    fn result(&mut self, acc: V) -> V {
        acc
    }
}

/// The record with the smallest (`MAX == false`) or largest value; ties keep the first.
#[derive(Clone)]
pub struct ExtremeBy<F, const MAX: bool>(pub(crate) Named<F>);

impl<T, V, F, const MAX: bool> Aggregate<T> for ExtremeBy<F, MAX>
where
    T: Clone + Send + 'static,
    F: FnMut(&T) -> V + Clone + Send + 'static,
    V: PartialOrd,
{
    type Acc = T;
    type Out = T;
    #[inline]
    fn create(&mut self, x: T) -> T {
        x
    }
    #[inline]
    fn add(&mut self, acc: &mut T, x: T) {
        self.merge(acc, x)
    }
    #[inline]
    fn merge(&mut self, a: &mut T, b: T) {
        let (va, vb) = guarded!(self.0.name, ((self.0.f)(a), (self.0.f)(&b)));
        let take_b = if MAX { vb > va } else { vb < va };
        if take_b {
            *a = b;
        }
    }
    fn result(&mut self, acc: T) -> T {
        acc
    }
}

/// Combines records with an associative function.
#[derive(Clone)]
pub struct Reduce<F>(pub(crate) Named<F>);

impl<T, F> Aggregate<T> for Reduce<F>
where
    T: Clone + Send + 'static,
    F: FnMut(T, T) -> T + Clone + Send + 'static,
{
    /// `Some` at all times except while `f` runs (the reduce function takes its inputs by
    /// value); a panic in `f` fails the job, so the `None` is never observed.
    type Acc = Option<T>;
    type Out = T;
    #[inline]
    fn create(&mut self, x: T) -> Option<T> {
        Some(x)
    }
    #[inline]
    fn add(&mut self, acc: &mut Option<T>, x: T) {
        self.merge(acc, Some(x))
    }
    #[inline]
    fn merge(&mut self, a: &mut Option<T>, b: Option<T>) {
        *a = match (a.take(), b) {
            (Some(x), Some(y)) => Some(guarded!(self.0.name, (self.0.f)(x, y))),
            (x, y) => x.or(y),
        }
    }
    fn result(&mut self, acc: Option<T>) -> T {
        match acc {
            Some(t) => t,
            None => {
                unreachable!("a reduce accumulator is only empty while the reduce function runs")
            }
        }
    }
}

/// The terminal of a stage that feeds a keyed aggregate: folds records into per-key partial
/// accumulators and hands them to the exchange writer `W` as `(key, partial)` pairs.
pub(crate) struct PreAggregate<T, K, KF, A: Aggregate<T>, W> {
    pub(crate) key: Named<KF>,
    pub(crate) agg: A,
    pub(crate) table: Table<K, A::Acc>,
    pub(crate) capacity: usize,
    pub(crate) writer: W,
    pub(crate) _t: PhantomData<fn(T)>,
}

impl<T, K, KF, A, W> PreAggregate<T, K, KF, A, W>
where
    K: Hash + Eq,
    A: Aggregate<T>,
    W: Downstream<(K, A::Acc)>,
{
    fn flush(&mut self) {
        for kv in self.table.drain() {
            self.writer.emit(kv, NO_TIMESTAMP);
        }
    }
}

impl<T, K, KF, A, W> Downstream<T> for PreAggregate<T, K, KF, A, W>
where
    K: Hash + Eq,
    KF: FnMut(&T) -> K,
    A: Aggregate<T>,
    W: Downstream<(K, A::Acc)>,
{
    #[inline]
    fn emit(&mut self, item: T, _ts: Timestamp) {
        let k = guarded!(self.key.name, (self.key.f)(&item));
        match self.table.entry(k) {
            Entry::Occupied(mut o) => self.agg.add(o.get_mut(), item),
            Entry::Vacant(v) => {
                v.insert(self.agg.create(item));
                if self.table.len() >= self.capacity {
                    self.flush();
                }
            }
        }
    }

    fn event(&mut self, event: Event) {
        // Partials are transient: they leave before a watermark, the end, or a checkpoint
        // barrier (so a checkpoint never needs them).
        if matches!(
            event,
            Event::Flush | Event::Watermark(_) | Event::End | Event::Barrier(_)
        ) {
            self.flush();
        }
        self.writer.event(event);
    }
}

impl<T, K, KF, A, W> Terminal<T> for PreAggregate<T, K, KF, A, W>
where
    T: Send,
    K: Hash + Eq + Send,
    KF: FnMut(&T) -> K + Send,
    A: Aggregate<T>,
    W: Terminal<(K, A::Acc)>,
{
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        self.writer.drain(cx)
    }
}

/// How the owner of a key folds what arrives through the exchange into its accumulator.
pub trait Combine<V>: Clone + Send + 'static {
    /// The accumulator.
    type Acc: Clone + Send + 'static;
    /// The result of an accumulator.
    type Out: Send + 'static;
    /// The accumulator of the first arrival.
    fn first(&mut self, v: V) -> Self::Acc;
    /// Folds a later arrival into the accumulator.
    fn next(&mut self, acc: &mut Self::Acc, v: V);
    /// The result.
    fn result(&mut self, acc: Self::Acc) -> Self::Out;
}

/// Arrivals are partial accumulators of an aggregate: merge them.
pub struct MergePartials<A, T>(pub(crate) A, pub(crate) PhantomData<fn(T)>);

impl<A: Clone, T> Clone for MergePartials<A, T> {
    fn clone(&self) -> Self {
        MergePartials(self.0.clone(), PhantomData)
    }
}

impl<T: 'static, A: Aggregate<T>> Combine<A::Acc> for MergePartials<A, T> {
    type Acc = A::Acc;
    type Out = A::Out;
    #[inline]
    fn first(&mut self, v: A::Acc) -> A::Acc {
        v
    }
    #[inline]
    fn next(&mut self, acc: &mut A::Acc, v: A::Acc) {
        self.0.merge(acc, v)
    }
    fn result(&mut self, acc: A::Acc) -> A::Out {
        self.0.result(acc)
    }
}

/// Arrivals are records folded in order with a function that cannot merge (`fold`).
#[derive(Clone)]
pub struct FoldRecords<Acc, F> {
    pub(crate) init: Acc,
    pub(crate) f: Named<F>,
}

impl<T, Acc, F> Combine<T> for FoldRecords<Acc, F>
where
    Acc: Clone + Send + 'static,
    F: FnMut(&mut Acc, T) + Clone + Send + 'static,
{
    type Acc = Acc;
    type Out = Acc;
    #[inline]
    fn first(&mut self, v: T) -> Acc {
        let mut acc = self.init.clone();
        guarded!(self.f.name, (self.f.f)(&mut acc, v));
        acc
    }
    #[inline]
    fn next(&mut self, acc: &mut Acc, v: T) {
        guarded!(self.f.name, (self.f.f)(acc, v))
    }
    fn result(&mut self, acc: Acc) -> Acc {
        acc
    }
}

/// The keyed side of a rolling aggregate: owns the accumulators of its key groups.
///
/// In a bounded job it emits each key's final result once, at the end of input (Flink's
/// batch execution mode). In an unbounded job it emits the key's updated result whenever an
/// arrival changes it (Flink's rolling aggregation), after pre-aggregation has compressed the
/// updates of each flush.
///
/// With checkpoints on, its [`KeyedTable`] remembers which keys changed since the last
/// checkpoint, so a checkpoint encodes only those: the incremental snapshot costs what
/// changed, not the size of the state.
pub struct KeyedAggregate<K, V, G: Combine<V>, OF> {
    combine: G,
    out: OF,
    bounded: bool,
    /// The accumulators, tracking changes when checkpoints are on.
    state: KeyedTable<K, G::Acc>,
    /// A bounded aggregate that has emitted its results at the end of input.
    finished: bool,
    /// The input ended: a checkpoint copies its changes at once.
    ended: bool,
    /// Where the changes being copied out for a checkpoint go, once copied.
    frozen: Option<FrozenTx>,
    _p: PhantomData<fn(V)>,
}

/// Sends a checkpoint's changes, copied out after the barrier, to the checkpoint writer.
type FrozenTx = crossbeam_channel::Sender<(crate::Result<Entries>, Duration)>;

/// Entries restored per batch: sorted by their places in the table before they are inserted.
const RESTORE_BATCH: usize = 1 << 20;

impl<K, V, G: Combine<V>, OF: Clone> Clone for KeyedAggregate<K, V, G, OF> {
    fn clone(&self) -> Self {
        KeyedAggregate {
            combine: self.combine.clone(),
            out: self.out.clone(),
            bounded: self.bounded,
            state: KeyedTable::default(),
            finished: false,
            ended: false,
            frozen: None,
            _p: PhantomData,
        }
    }
}

impl<K: Hash + Eq + Clone, V, G: Combine<V>, OF> KeyedAggregate<K, V, G, OF>
where
    G::Acc: Clone,
{
    /// Finishes the copy under way (if any) and hands it to the checkpoint writer.
    fn flush_frozen(&mut self) {
        if self.frozen.is_some() {
            self.state.freeze_step(usize::MAX);
            self.send_frozen();
        }
    }

    /// Hands a finished copy to the checkpoint writer.
    fn send_frozen(&mut self) {
        if let Some(done) = self.state.take_frozen_entries() {
            if let Some(tx) = self.frozen.take() {
                // A writer that is gone has failed the job already.
                let _ = tx.send(done);
            }
        }
    }
}

impl<K, V, G: Combine<V>, OF> Sealed for KeyedAggregate<K, V, G, OF> {}

/// A [`Combine`] as the fold of a [`KeyedTable`].
struct ByCombine<'a, G>(&'a mut G);

impl<V, G: Combine<V>> Fold<V, G::Acc> for ByCombine<'_, G> {
    #[inline(always)]
    fn insert(&mut self, v: V) -> G::Acc {
        self.0.first(v)
    }
    #[inline(always)]
    fn update(&mut self, acc: &mut G::Acc, v: V) {
        self.0.next(acc, v)
    }
}

/// The name of a keyed aggregate's state in checkpoints.
/// An accumulator with its write time (ms since the Unix epoch), checkpointed under a TTL.
type Timed<A> = (i64, A);

const ACC_STATE: &str = "accumulators";
/// Operator state: the key groups of a subtask that finished (bounded input), if it did.
const FINISHED: &str = "finished";

impl<K, V, G, R, OF> Operator<(K, V)> for KeyedAggregate<K, V, G, OF>
where
    K: StateKey,
    V: Send + 'static,
    G: Combine<V>,
    G::Acc: StateValue,
    R: Send + 'static,
    OF: FnMut(K, G::Out) -> R + Clone + Send + 'static,
{
    type Out = R;

    #[inline]
    fn on_record<D: Downstream<R>>(&mut self, (k, v): (K, V), _ts: Timestamp, down: &mut D) {
        let combine = &mut self.combine;
        if self.bounded {
            self.state.upsert(k, v, &mut ByCombine(combine));
        } else {
            let acc = self.state.upsert(k.clone(), v, &mut ByCombine(combine));
            let r = combine.result(acc.clone());
            down.emit((self.out)(k, r), NO_TIMESTAMP);
        }
    }

    fn on_event<D: Downstream<R>>(&mut self, event: Event, down: &mut D) {
        if event == Event::End {
            self.ended = true;
            self.flush_frozen();
        }
        if event == Event::End && self.bounded {
            // A finished aggregate has emitted everything. Its final checkpoint says so for
            // its key groups (`FINISHED`) instead of deleting every key, and a restore skips
            // their entries.
            self.finished = true;
            self.state.track_changes(false);
            let (combine, out) = (&mut self.combine, &mut self.out);
            if let Err(e) = self
                .state
                .drain_into(|k, acc| down.emit(out(k, combine.result(acc)), NO_TIMESTAMP))
            {
                // Spilled state could not be read back: the job fails at the next drain.
                self.state.record_failure(&e);
            }
        }
        down.event(event)
    }

    fn open(&mut self, cx: OpenCx) {
        self.state.track_changes(cx.checkpoints);
        self.state.set_ttl(cx.state_ttl());
        if let Some(m) = cx.memory {
            self.state.spill_within(m, Codec::serde(), Codec::serde());
        }
    }

    fn state_entries(&self) -> u64 {
        self.state.len() as u64
    }

    fn restoring(&self) -> bool {
        self.state.is_restoring()
    }

    fn ttl_state(&self) -> Option<&'static str> {
        Some(ACC_STATE)
    }

    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> Result<bool> {
        if let Some(at) = self.state.restore_for(RESTORE_TIME)? {
            // A step of the lazy restore between batches; again soon until done.
            cx.wake_at(at);
        }
        if self.frozen.is_some() {
            // A step of the checkpoint's copy between batches; again soon until done.
            self.state.freeze_for(FREEZE_STEP);
            self.send_frozen();
            if self.frozen.is_some() {
                cx.wake_at(std::time::Instant::now());
            }
        }
        self.state.expire();
        self.state.check()?;
        Ok(true)
    }

    fn state(&self) -> StateSupport {
        StateSupport::Persisted(vec![
            StateDecl::keyed::<K, G::Acc>(ACC_STATE),
            StateDecl::operator::<Option<(u32, u32)>>(FINISHED),
        ])
    }

    /// Starts copying the changed accumulators out: the copy is taken in steps between
    /// batches (values written before their turn are saved first), handed to the writer,
    /// which encodes it. After the end of input, the table itself goes to the writer.
    fn snapshot(&mut self, cx: &mut SnapshotCx<'_>) -> Result<()> {
        let done = self.finished.then(|| {
            let r = cx.key_groups();
            (r.start, r.end)
        });
        cx.operator_state(FINISHED, &done)?;
        // The previous checkpoint's copy goes out first.
        self.flush_frozen();
        if !self.ended && !self.finished {
            let (tx, rx) = crossbeam_channel::bounded(1);
            // Each change encoded as the copy takes it. Under a TTL an accumulator is
            // written as a `Timed` pair: its write time's encoding, then its own.
            self.state.begin_freeze_encoded(
                Copier::Clone(G::Acc::clone),
                EncodeTo {
                    keys: Codec::serde(),
                    values: Codec::serde(),
                    time: |t, b| encode(&t, b),
                    max_parallelism: cx.max_parallelism(),
                },
            );
            self.frozen = Some(tx);
            cx.keyed_entries_later(ACC_STATE, rx);
            return Ok(());
        }
        if self.ended {
            // Nothing changes the accumulators any more: the writer's thread takes their
            // changes from the table itself (and skips them for the job's last checkpoint).
            let mut state = std::mem::take(&mut self.state);
            cx.keyed_on_writer(ACC_STATE, move |w, abandon| {
                let ttl = state.has_ttl();
                let changes = state.take_timed_changes_owned()?;
                for (i, (k, v, t)) in changes.into_iter().enumerate() {
                    abandon.check_at(i)?;
                    if ttl {
                        // With their write times, so that their age survives a restore.
                        w.put(&k, &k, v.map(|v| (t.unwrap_or(0), v)).as_ref())?;
                    } else {
                        w.put(&k, &k, v.as_ref())?;
                    }
                }
                Ok(())
            });
            return Ok(());
        }
        if self.state.has_ttl() {
            // With their write times, so that their age survives a restore.
            let changes: Vec<(K, Option<Timed<G::Acc>>)> = self
                .state
                .take_timed_changes_owned()?
                .into_iter()
                .map(|(k, v, t)| (k, v.map(|v| (t.unwrap_or(0), v))))
                .collect();
            cx.keyed_values(ACC_STATE, false, changes);
        } else {
            let changes: Vec<(K, Option<G::Acc>)> = self.state.take_changes_owned()?;
            cx.keyed_values(ACC_STATE, false, changes);
        }
        Ok(())
    }

    fn restore(&mut self, cx: &RestoreCx<'_>) -> Result<()> {
        let finished: Vec<(u32, u32)> = cx
            .operator_state::<Option<(u32, u32)>>(FINISHED)?
            .into_iter()
            .flatten()
            .collect();
        let state = &mut self.state;
        if state.can_restore_lazily() {
            // Processing resumes at once; `drain` loads the state while the job runs.
            let Some(lazy) = cx.lazy(ACC_STATE)? else {
                return Ok(());
            };
            state.reserve_for_restore(lazy.remaining_bound() as usize);
            let what = cx.describe(ACC_STATE);
            let decode: RestoredDecode<K, G::Acc> = if state.has_ttl() {
                Box::new(move |k, v| {
                    let (t, acc): (i64, G::Acc) = decode(v, &|| what.clone())?;
                    Ok((decode(k, &|| what.clone())?, acc, Some(t)))
                })
            } else {
                Box::new(move |k, v| {
                    let what = || what.clone();
                    Ok((decode(k, &what)?, decode(v, &what)?, None))
                })
            };
            if state.restore_lazily(lazy, cx.max_parallelism(), finished.clone(), decode) {
                return Ok(());
            }
        }
        let live = |kg: u32| !finished.iter().any(|&(s, e)| (s..e).contains(&kg));
        state.reserve_for_restore(cx.keyed_count_bound(ACC_STATE) as usize);
        // In batches, each inserted in the table's order (`KeyedTable::restore_batch`).
        let mut batch = Vec::with_capacity(RESTORE_BATCH);
        if state.has_ttl() {
            cx.keyed_where(ACC_STATE, live, |k: K, (t, acc): (i64, G::Acc)| {
                batch.push((k, acc, Some(t)));
                if batch.len() == RESTORE_BATCH {
                    state.restore_batch(&mut batch);
                }
            })?;
        } else {
            cx.keyed_where(ACC_STATE, live, |k: K, acc: G::Acc| {
                batch.push((k, acc, None));
                if batch.len() == RESTORE_BATCH {
                    state.restore_batch(&mut batch);
                }
            })?;
        }
        state.restore_batch(&mut batch);
        Ok(())
    }
}

/// The chain of a keyed aggregate stage: the exchange's `(key, value)` pairs into the aggregate.
pub type KeyedAggregateChain<K, V, G, OF> = Then<Identity<(K, V)>, KeyedAggregate<K, V, G, OF>>;

/// The type of a rolling aggregate's result stream.
type Rolling<K, V, G, OF> = Stream<KeyedAggregateChain<K, V, G, OF>>;

/// The record type of a keyed stream's input.
type In<C> = <C as Chain>::Out;

fn keyed_op<K, V, G, R, OF>(
    s: Stream<Identity<(K, V)>>,
    name: &OpName,
    combine: G,
    bounded: bool,
    out: OF,
) -> Rolling<K, V, G, OF>
where
    K: StateKey,
    V: Send + 'static,
    G: Combine<V>,
    G::Acc: StateValue,
    R: Send + 'static,
    OF: FnMut(K, G::Out) -> R + Clone + Send + 'static,
{
    s.then(
        OpInfo::new(name),
        KeyedAggregate {
            combine,
            out,
            bounded,
            state: KeyedTable::default(),
            finished: false,
            ended: false,
            frozen: None,
            _p: PhantomData,
        },
    )
}
impl<C, K, KF> KeyedStream<C, KF>
where
    C: Chain,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
    K: StateKey,
{
    /// Aggregates each key's records with an [`Aggregate`], pre-aggregating before the
    /// exchange. Emits `(key, result)`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// /// The spread (largest minus smallest value) of a key's values.
    /// #[derive(Clone)]
    /// struct Spread;
    /// impl Aggregate<(char, i32)> for Spread {
    ///     type Acc = (i32, i32);
    ///     type Out = i32;
    ///     fn create(&mut self, r: (char, i32)) -> (i32, i32) { (r.1, r.1) }
    ///     fn add(&mut self, a: &mut (i32, i32), r: (char, i32)) {
    ///         *a = (a.0.min(r.1), a.1.max(r.1))
    ///     }
    ///     fn merge(&mut self, a: &mut (i32, i32), b: (i32, i32)) {
    ///         *a = (a.0.min(b.0), a.1.max(b.1))
    ///     }
    ///     fn result(&mut self, a: (i32, i32)) -> i32 { a.1 - a.0 }
    /// }
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let spreads = env
    ///     .from_iter([('a', 3), ('b', 1), ('a', 9), ('a', 5)])
    ///     .key_by(|r| r.0)
    ///     .aggregate(Spread)
    ///     .collect();
    /// env.execute()?;
    /// let mut got = spreads.take();
    /// got.sort();
    /// assert_eq!(got, vec![('a', 6), ('b', 0)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn aggregate<A>(self, agg: A) -> Stream<impl Chain<Out = (K, A::Out)>>
    where
        A: Aggregate<C::Out>,
        A::Acc: StateValue,
    {
        self.aggregate_as("aggregate", agg, |k, r| (k, r))
    }

    /// Counts each key's records: `(key, count)`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let counts = env.from_iter(["a", "b", "a"]).key_by(|w| w.to_string()).count().collect();
    /// env.execute()?;
    /// let mut got = counts.take();
    /// got.sort();
    /// assert_eq!(got, vec![("a".to_string(), 2), ("b".to_string(), 1)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn count(self) -> Stream<impl Chain<Out = (K, u64)>> {
        self.aggregate_as("count", Count, |k, n| (k, n))
    }

    /// Sums `f(record)` per key: `(key, sum)`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let totals = env
    ///     .from_iter([("ann", 3), ("bob", 5), ("ann", 4)])
    ///     .key_by(|e| e.0.to_string())
    ///     .sum(|e| e.1)
    ///     .collect();
    /// env.execute()?;
    /// let mut got = totals.take();
    /// got.sort();
    /// assert_eq!(got, vec![("ann".to_string(), 7), ("bob".to_string(), 5)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn sum<S, F>(self, f: F) -> Stream<impl Chain<Out = (K, S)>>
    where
        F: FnMut(&C::Out) -> S + Clone + Send + 'static,
        S: std::ops::AddAssign + StateValue,
    {
        let name = OpName::new("sum", Location::caller());
        self.aggregate_as("sum", Sum(Named { f, name }), |k, s| (k, s))
    }

    /// The smallest `f(record)` per key: `(key, min)`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let lows = env
    ///     .from_iter([("oslo", -3), ("rome", 12), ("oslo", -7)])
    ///     .key_by(|e| e.0.to_string())
    ///     .min(|e| e.1)
    ///     .collect();
    /// env.execute()?;
    /// let mut got = lows.take();
    /// got.sort();
    /// assert_eq!(got, vec![("oslo".to_string(), -7), ("rome".to_string(), 12)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn min<V, F>(self, f: F) -> Stream<impl Chain<Out = (K, V)>>
    where
        F: FnMut(&C::Out) -> V + Clone + Send + 'static,
        V: PartialOrd + StateValue,
    {
        let name = OpName::new("min", Location::caller());
        self.aggregate_as("min", Extreme::<F, false>(Named { f, name }), |k, v| (k, v))
    }

    /// The largest `f(record)` per key: `(key, max)`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let highs = env
    ///     .from_iter([("oslo", -3), ("rome", 12), ("oslo", -7)])
    ///     .key_by(|e| e.0.to_string())
    ///     .max(|e| e.1)
    ///     .collect();
    /// env.execute()?;
    /// let mut got = highs.take();
    /// got.sort();
    /// assert_eq!(got, vec![("oslo".to_string(), -3), ("rome".to_string(), 12)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn max<V, F>(self, f: F) -> Stream<impl Chain<Out = (K, V)>>
    where
        F: FnMut(&C::Out) -> V + Clone + Send + 'static,
        V: PartialOrd + StateValue,
    {
        let name = OpName::new("max", Location::caller());
        self.aggregate_as("max", Extreme::<F, true>(Named { f, name }), |k, v| (k, v))
    }

    /// The record with the smallest `f(record)` per key (the first such record on ties).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let cheapest = env
    ///     .from_iter([("pen", "s1", 3), ("pen", "s2", 2), ("ink", "s1", 5), ("pen", "s3", 2)])
    ///     .map(|(item, shop, price)| (item.to_string(), shop.to_string(), price))
    ///     .key_by(|e| e.0.clone())
    ///     .min_by(|e| e.2)
    ///     .collect();
    /// env.execute()?;
    /// let mut got = cheapest.take();
    /// got.sort();
    /// let got: Vec<_> = got.iter().map(|(i, s, p)| (i.as_str(), s.as_str(), *p)).collect();
    /// assert_eq!(got, vec![("ink", "s1", 5), ("pen", "s2", 2)]); // s2 came before s3
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn min_by<V, F>(self, f: F) -> Stream<impl Chain<Out = C::Out>>
    where
        C::Out: StateValue,
        F: FnMut(&C::Out) -> V + Clone + Send + 'static,
        V: PartialOrd,
    {
        let name = OpName::new("min_by", Location::caller());
        self.aggregate_as("min_by", ExtremeBy::<F, false>(Named { f, name }), |_, r| r)
    }

    /// The record with the largest `f(record)` per key (the first such record on ties).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let top_bids = env
    ///     .from_iter([("lamp", "al", 10), ("lamp", "bo", 12), ("cup", "al", 7), ("lamp", "cy", 12)])
    ///     .map(|(item, bidder, bid)| (item.to_string(), bidder.to_string(), bid))
    ///     .key_by(|e| e.0.clone())
    ///     .max_by(|e| e.2)
    ///     .collect();
    /// env.execute()?;
    /// let mut got = top_bids.take();
    /// got.sort();
    /// let got: Vec<_> = got.iter().map(|(i, b, n)| (i.as_str(), b.as_str(), *n)).collect();
    /// assert_eq!(got, vec![("cup", "al", 7), ("lamp", "bo", 12)]); // bo bid 12 before cy
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn max_by<V, F>(self, f: F) -> Stream<impl Chain<Out = C::Out>>
    where
        C::Out: StateValue,
        F: FnMut(&C::Out) -> V + Clone + Send + 'static,
        V: PartialOrd,
    {
        let name = OpName::new("max_by", Location::caller());
        self.aggregate_as("max_by", ExtremeBy::<F, true>(Named { f, name }), |_, r| r)
    }

    /// Combines each key's records with an associative function.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let products = env
    ///     .from_iter([('x', 2), ('y', 4), ('x', 3), ('x', 5)])
    ///     .key_by(|e| e.0)
    ///     .reduce(|a, b| (a.0, a.1 * b.1))
    ///     .collect();
    /// env.execute()?;
    /// let mut got = products.take();
    /// got.sort();
    /// assert_eq!(got, vec![('x', 30), ('y', 4)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn reduce<F>(self, f: F) -> Stream<impl Chain<Out = C::Out>>
    where
        C::Out: StateValue,
        F: FnMut(C::Out, C::Out) -> C::Out + Clone + Send + 'static,
    {
        let name = OpName::new("reduce", Location::caller());
        self.aggregate_as("reduce", Reduce(Named { f, name }), |_, r| r)
    }

    /// Folds each key's records, in arrival order, into an accumulator starting at `init`:
    /// `(key, acc)`. `f` need not be associative, so records are not pre-aggregated.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let words = env
    ///     .from_iter([('a', "x"), ('a', "y"), ('b', "z")])
    ///     .key_by(|e| e.0)
    ///     .fold(String::new(), |acc, e| acc.push_str(e.1))
    ///     .collect();
    /// env.execute()?;
    /// let mut got = words.take();
    /// got.sort();
    /// assert_eq!(got, vec![('a', "xy".to_string()), ('b', "z".to_string())]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn fold<A, F>(self, init: A, f: F) -> Stream<impl Chain<Out = (K, A)>>
    where
        A: StateValue,
        F: FnMut(&mut A, C::Out) + Clone + Send + 'static,
    {
        let loc = Location::caller();
        let name = OpName::new("fold", loc);
        let KeyedStream { stream, key } = self;
        let bounded = stream.bounded();
        let ex = exchange_by_key(stream, loc, key);
        let combine = FoldRecords {
            init,
            f: Named {
                f,
                name: name.clone(),
            },
        };
        keyed_op(ex, &name, combine, bounded, |k, a| (k, a))
    }

    #[track_caller]
    fn aggregate_as<A, R, OF>(self, kind: &str, agg: A, out: OF) -> Stream<impl Chain<Out = R>>
    where
        A: Aggregate<C::Out>,
        A::Acc: StateValue,
        R: Send + 'static,
        OF: FnMut(K, A::Out) -> R + Clone + Send + 'static,
    {
        let loc = Location::caller();
        let name = OpName::new(kind, loc);
        let KeyedStream { mut stream, key } = self;
        let bounded = stream.bounded();
        let (capacity, max_parallelism) = {
            let g = stream.g.borrow();
            (g.config.pre_aggregate_capacity, g.config.max_parallelism)
        };
        let pre = OpName::new(&format!("{kind} (pre-aggregate)"), loc);
        stream.ops.push(OpInfo::new(&pre));
        let ex = Exchange::<(K, A::Acc)>::keyed(&stream.g, stream.feed(), loc);
        let outlets = ex.outlets.clone();
        let a2 = agg.clone();
        let by = Ending::Exchange(key.name.as_str().to_string());
        stream.finish(by, move |i, _| PreAggregate {
            key: key.clone(),
            agg: a2.clone(),
            table: Table::default(),
            capacity,
            writer: outlets.writer(i, ByPairKey { max_parallelism }),
            _t: PhantomData,
        });
        keyed_op(
            ex.into_stream(),
            &name,
            MergePartials(agg, PhantomData::<fn(In<C>)>),
            bounded,
            out,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::operator::Collect;

    fn name() -> OpName {
        OpName::new("test", Location::caller())
    }

    type Counting =
        KeyedAggregate<char, u64, MergePartials<Count, u8>, fn(char, u64) -> (char, u64)>;

    fn rolling(bounded: bool) -> Counting {
        KeyedAggregate {
            combine: MergePartials(Count, PhantomData),
            out: |k, n| (k, n),
            bounded,
            state: KeyedTable::default(),
            finished: false,
            ended: false,
            frozen: None,
            _p: PhantomData,
        }
    }

    /// Opens `op` as a subtask of a job with checkpoints (and the state TTL `ttl`).
    fn open_checkpointing(op: &mut Counting, ttl: Option<std::time::Duration>) {
        op.open(OpenCx {
            subtask: 0,
            parallelism: 1,
            checkpoints: true,
            memory: None,
            ttls: ttl.map(|t| vec![Some(t)].into()),
            op: 0,
        });
    }

    fn snapshot(op: &mut Counting, n: u64) -> crate::runtime::snapshot::Part {
        snapshot_with(op, n, |_| {})
    }

    /// [`snapshot`], calling `between` after the barrier and before the copy finishes.
    fn snapshot_with(
        op: &mut Counting,
        _n: u64,
        between: impl FnOnce(&mut Counting),
    ) -> crate::runtime::snapshot::Part {
        let mut part = crate::runtime::snapshot::Part::default();
        let uids = ["count".to_string()];
        op.snapshot(&mut SnapshotCx::for_test(&uids, &mut part))
            .unwrap();
        // The processing thread goes on, then finishes the copy.
        between(op);
        op.flush_frozen();
        part.encode_deferred();
        part
    }

    /// Decodes the count of `key` in a part (`None`: deleted or absent).
    fn count_in(part: &crate::runtime::snapshot::Part, key: char) -> Option<u64> {
        let mut k = Vec::new();
        crate::runtime::snapshot::encode(&key, &mut k).unwrap();
        part.keyed
            .iter()
            .flat_map(|d| d.entries.iter())
            .find(|e| e.1 == k)
            .and_then(|e| e.2)
            .map(|b| crate::runtime::snapshot::decode(b, &|| "count".into()).unwrap())
    }

    #[test]
    fn a_checkpoint_holds_the_values_at_its_barrier_though_writes_go_on_during_its_copy() {
        let mut out = Collect::new();
        let mut op = rolling(false);
        open_checkpointing(&mut op, None);
        // Many keys, so that the copy takes several steps.
        let keys: Vec<char> = (0..6000u32).filter_map(char::from_u32).collect();
        for &k in &keys {
            op.on_record((k, 1), NO_TIMESTAMP, &mut out);
        }
        let first = snapshot_with(&mut op, 1, |op| {
            // One step copies part of the keys; then every key is written again.
            op.state.freeze_step(100);
            for &k in &keys {
                op.on_record((k, 1), NO_TIMESTAMP, &mut out);
            }
            op.state.freeze_step(1000);
        });
        for &k in &keys {
            assert_eq!(count_in(&first, k), Some(1), "{k:?} as at the barrier");
        }
        // The writes during the copy are the next checkpoint's changes.
        let second = snapshot(&mut op, 2);
        for &k in &keys {
            assert_eq!(count_in(&second, k), Some(2), "{k:?}");
        }
        assert!(snapshot(&mut op, 3).keyed.is_empty(), "nothing changed");
    }

    #[test]
    fn a_checkpoint_writes_only_the_keys_changed_since_the_last_one() {
        let mut out = Collect::new();
        let mut op = rolling(false);
        open_checkpointing(&mut op, None);
        for (k, n) in [('a', 2), ('b', 1), ('a', 3)] {
            op.on_record((k, n), NO_TIMESTAMP, &mut out);
        }
        let first = snapshot(&mut op, 1);
        assert_eq!(first.keyed.len(), 1);
        assert_eq!(first.keyed[0].entries.len(), 2, "a and b, once each");
        op.on_record(('b', 4), NO_TIMESTAMP, &mut out);
        let second = snapshot(&mut op, 2);
        assert_eq!(second.keyed[0].entries.len(), 1, "only b changed");
        let decoded: u64 = crate::runtime::snapshot::decode(
            second.keyed[0]
                .entries
                .iter()
                .next()
                .and_then(|e| e.2)
                .unwrap(),
            &|| "b".into(),
        )
        .unwrap();
        assert_eq!(decoded, 5);
        assert!(snapshot(&mut op, 3).keyed.is_empty(), "nothing changed");
    }

    #[test]
    fn a_finished_bounded_aggregate_says_so_in_its_final_part() {
        let mut out = Collect::new();
        let mut op = rolling(true);
        open_checkpointing(&mut op, None);
        for (k, n) in [('a', 2), ('b', 1)] {
            op.on_record((k, n), NO_TIMESTAMP, &mut out);
        }
        let _ = snapshot(&mut op, 1);
        op.on_event(Event::End, &mut out);
        let last = snapshot(&mut op, 0);
        assert!(
            last.keyed.is_empty(),
            "no tombstones: the finished range says it all"
        );
        assert!(
            last.meta
                .iter()
                .any(|(n, b)| n.ends_with("/finished/0") && b.len() > 1),
            "the finished key groups are recorded"
        );
    }

    #[test]
    fn an_unbounded_aggregate_emits_every_update_and_a_bounded_one_only_the_end() {
        let mut out = Collect::new();
        let mut op = rolling(false);
        for (k, n) in [('a', 2), ('b', 1), ('a', 3)] {
            op.on_record((k, n), NO_TIMESTAMP, &mut out);
        }
        op.on_event(Event::End, &mut out);
        let got: Vec<_> = out.0.iter().map(|r| r.0).collect();
        assert_eq!(got, vec![('a', 2), ('b', 1), ('a', 5)]);

        let mut out = Collect::new();
        let mut op = rolling(true);
        for (k, n) in [('a', 2), ('b', 1), ('a', 3)] {
            op.on_record((k, n), NO_TIMESTAMP, &mut out);
        }
        assert!(out.0.is_empty(), "nothing before the end");
        op.on_event(Event::End, &mut out);
        let mut got: Vec<_> = out.0.iter().map(|r| r.0).collect();
        got.sort();
        assert_eq!(got, vec![('a', 5), ('b', 1)]);
        assert_eq!(out.1, vec![Event::End]);
    }

    #[test]
    fn a_rolling_aggregate_with_a_ttl_restarts_expired_keys() {
        let mut out = Collect::new();
        let mut op = rolling(false);
        open_checkpointing(&mut op, Some(std::time::Duration::from_millis(300)));
        assert_eq!(Operator::<(char, u64)>::ttl_state(&op), Some(ACC_STATE));
        op.on_record(('a', 2), NO_TIMESTAMP, &mut out);
        op.on_record(('a', 3), NO_TIMESTAMP, &mut out);
        std::thread::sleep(std::time::Duration::from_millis(500));
        op.on_record(('a', 4), NO_TIMESTAMP, &mut out);
        let got: Vec<_> = out.0.iter().map(|r| r.0).collect();
        assert_eq!(
            got,
            vec![('a', 2), ('a', 5), ('a', 4)],
            "'a' expired, then restarted"
        );
        // The expired value was replaced in place: the checkpoint holds the new one, with
        // its write time (just now).
        let part = snapshot(&mut op, 1);
        let (t, v): (i64, u64) = crate::runtime::snapshot::decode(
            part.keyed[0]
                .entries
                .iter()
                .next()
                .and_then(|e| e.2)
                .unwrap(),
            &|| "a".into(),
        )
        .unwrap();
        assert_eq!(v, 4);
        assert!((crate::time::now_ms() - t).abs() < 400, "written at {t}");
    }

    /// A terminal that keeps the pairs it is given.
    struct Pairs(Vec<(u8, u64)>, Vec<Event>);
    impl Downstream<(u8, u64)> for Pairs {
        fn emit(&mut self, item: (u8, u64), _ts: Timestamp) {
            self.0.push(item)
        }
        fn event(&mut self, e: Event) {
            self.1.push(e)
        }
    }

    #[test]
    fn pre_aggregation_flushes_when_full_and_before_watermarks() {
        let mut pre = PreAggregate {
            key: Named {
                f: |x: &u8| *x,
                name: name(),
            },
            agg: Count,
            table: Table::default(),
            capacity: 2,
            writer: Pairs(vec![], vec![]),
            _t: PhantomData,
        };
        for x in [1u8, 1, 1, 2] {
            pre.emit(x, NO_TIMESTAMP);
        }
        // The second key filled the table: both partials went out.
        let mut flushed = pre.writer.0.clone();
        flushed.sort();
        assert_eq!(flushed, vec![(1, 3), (2, 1)]);
        pre.emit(3, NO_TIMESTAMP);
        pre.event(Event::Watermark(10));
        assert_eq!(
            pre.writer.0.last(),
            Some(&(3, 1)),
            "flushed before the watermark"
        );
        assert_eq!(pre.writer.1, vec![Event::Watermark(10)]);
    }

    #[test]
    fn min_and_max_keep_the_earlier_value_on_ties() {
        let mut max = ExtremeBy::<_, true>(Named {
            f: |x: &(u8, char)| x.0,
            name: name(),
        });
        let mut acc = max.create((5, 'a'));
        max.add(&mut acc, (5, 'b'));
        max.add(&mut acc, (3, 'c'));
        assert_eq!(acc, (5, 'a'));
        max.add(&mut acc, (6, 'd'));
        assert_eq!(acc, (6, 'd'));
    }
}
