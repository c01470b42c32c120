//! Keyed process functions: per-key state, event-time timers and free-form output
//! (Flink's `KeyedProcessFunction`).
//!
//! The state of a key is a value of the function's `State` type (any `Default` struct whose
//! fields are the key's values, lists and maps), created on the key's first record and kept
//! until the function calls [`Context::clear_state`]. Timers are per key and timestamp and
//! deduplicated; they fire in timestamp order once the watermark reaches them, and the end of
//! a bounded input fires all of them.
//!
//! ```
//! use flow_core::prelude::*;
//!
//! /// Emits each key's running total whenever a second passes without a record.
//! #[derive(Clone)]
//! struct QuietTotals;
//! impl KeyedProcessFunction<char, (char, i64, u32)> for QuietTotals {
//!     type State = (u32, i64); // (total, pending timer)
//!     type Out = (char, u32);
//!     fn process_element(&mut self, _k: &char, e: (char, i64, u32),
//!                        st: &mut (u32, i64), ctx: &mut Context<'_, Self::Out>) {
//!         st.0 += e.2;
//!         ctx.delete_event_time_timer(st.1);
//!         st.1 = e.1 + 1000;
//!         ctx.register_event_time_timer(st.1);
//!     }
//!     fn on_timer(&mut self, k: &char, _ts: i64, st: &mut (u32, i64),
//!                 ctx: &mut Context<'_, Self::Out>) {
//!         ctx.emit((*k, st.0));
//!     }
//! }
//!
//! // One record per batch, so a watermark follows every record.
//! let mut env = Env::new(Config::default().parallelism(2).batch_size(1));
//! let out = env
//!     .from_iter([('a', 0, 1), ('a', 500, 2), ('b', 3_000, 4), ('a', 3_100, 5)])
//!     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
//!     .key_by(|e| e.0)
//!     .process(QuietTotals)
//!     .collect();
//! env.execute()?;
//! let mut got = out.take();
//! got.sort();
//! // the watermark 2999 after b's record fires a's timer at 1500; the end fires the rest
//! assert_eq!(got, vec![('a', 3), ('a', 8), ('b', 4)]);
//! # Ok::<(), flow_core::Error>(())
//! ```
use super::timers::{Domain, Timers};
use crate::api::exchange::exchange_by_key;
use crate::api::stream::{KeyedStream, Stream};
use crate::graph::OpInfo;
use crate::ops::side_output::{OutputTag, TaggedOutputs};
use crate::ops::StateKey;
use crate::record::{Event, Timestamp};
use crate::runtime::entries::Entries;
use crate::runtime::keyed_table::{
    Change, Copier, EncodeTo, KeyedTable, RestoredDecode, FREEZE_STEP, RESTORE_TIME,
};
use crate::runtime::operator::{
    Chain, Downstream, DrainCx, Identity, OpenCx, Operator, Sealed, Then,
};
use crate::runtime::panic::{OpName, PanicGuard};
use crate::runtime::snapshot::{encode, Codec, RestoreCx, SnapshotCx, StateDecl, StateSupport};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hash::Hash;
use std::panic::Location;
use std::time::Duration;

/// A function of a keyed stream with per-key state and timers.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a keyed process function of keys `{K}` and records `{T}`",
    label = "expected a `KeyedProcessFunction<{K}, {T}>`",
    note = "implement `KeyedProcessFunction<{K}, {T}>` for a type, or mark a plain function `#[process_fn]` and pass the struct it generates; for a closure over (key, record, state, context), call `process_fn` instead of `process`",
    note = "a keyed process function must also be `Clone + Send + 'static`"
)]
pub trait KeyedProcessFunction<K, T>: Clone + Send + 'static {
    /// The state of one key.
    type State: Default + Send + 'static;
    /// Output records.
    type Out: Send + 'static;
    /// Called for each record of key `key`.
    fn process_element(
        &mut self,
        key: &K,
        item: T,
        state: &mut Self::State,
        ctx: &mut Context<'_, Self::Out>,
    );
    /// Whether a key's state holds nothing, so that the operator can drop it: after a call
    /// that emptied it, or after a timer fired for a key whose state was cleared (which would
    /// otherwise leave a default state behind for ever). The default answers `false`: state
    /// stays until [`Context::clear_state`]. `#[process_fn]` answers it for the state it
    /// generates (every value, list and map empty).
    fn state_is_empty(&self, _state: &Self::State) -> bool {
        false
    }
    /// Called when a timer of `key` fires, in event time or in processing time
    /// ([`Context::is_processing_time_timer`] tells which).
    fn on_timer(
        &mut self,
        _key: &K,
        _timestamp: Timestamp,
        _state: &mut Self::State,
        _ctx: &mut Context<'_, Self::Out>,
    ) {
    }
}

/// What a process function can do besides changing its state.
pub struct Context<'a, O> {
    timestamp: Timestamp,
    watermark: Timestamp,
    out: &'a mut Vec<O>,
    timers: &'a mut Vec<(Timestamp, bool, Domain)>,
    side: &'a mut TaggedOutputs,
    clear: bool,
    processing_time: bool,
}

impl<O> Context<'_, O> {
    /// The timestamp of the current record, or of the firing timer.
    pub fn timestamp(&self) -> Timestamp {
        self.timestamp
    }
    /// The operator's current watermark.
    pub fn current_watermark(&self) -> Timestamp {
        self.watermark
    }
    /// Emits a record (with the current timestamp).
    pub fn emit(&mut self, item: O) {
        self.out.push(item)
    }
    /// Sends a record (with the current timestamp) to the side output `tag`, whose stream
    /// is taken with [`Stream::side_output`] from the operator's stream. Without a consumer
    /// the record is dropped and counted in the job summary.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// /// Passes records on; records of an unknown account go to a side output.
    /// #[derive(Clone)]
    /// struct Check(OutputTag<String>);
    /// impl KeyedProcessFunction<u32, (u32, i64)> for Check {
    ///     type State = ();
    ///     type Out = (u32, i64);
    ///     fn process_element(&mut self, account: &u32, tx: (u32, i64), _: &mut (),
    ///                        ctx: &mut Context<'_, (u32, i64)>) {
    ///         if *account < 100 {
    ///             ctx.emit(tx);
    ///         } else {
    ///             ctx.output(&self.0, format!("unknown account {account}"));
    ///         }
    ///     }
    /// }
    /// let unknown = OutputTag::<String>::new("unknown");
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let txs = env.from_iter([(1, 5), (500, 7)]).key_by(|t| t.0).process(Check(unknown.clone()));
    /// let unknown = txs.side_output(&unknown).collect();
    /// let txs = txs.collect();
    /// env.execute()?;
    /// assert_eq!((txs.take(), unknown.take()), (vec![(1, 5)], vec!["unknown account 500".into()]));
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn output<X: Send + 'static>(&mut self, tag: &OutputTag<X>, item: X) {
        self.side.emit(tag, item, self.timestamp)
    }
    /// Asks for [`KeyedProcessFunction::on_timer`] once the watermark reaches `ts`. A timer
    /// registered twice for the same key and time fires once.
    pub fn register_event_time_timer(&mut self, ts: Timestamp) {
        self.timers.push((ts, true, Domain::EventTime))
    }
    /// Cancels this key's event-time timer at `ts`, if any.
    pub fn delete_event_time_timer(&mut self, ts: Timestamp) {
        self.timers.push((ts, false, Domain::EventTime))
    }
    /// Asks for [`KeyedProcessFunction::on_timer`] once the wall clock reaches `ts` (ms since
    /// the epoch; see [`crate::time::now_ms`]).
    pub fn register_processing_time_timer(&mut self, ts: Timestamp) {
        self.timers.push((ts, true, Domain::ProcessingTime))
    }
    /// Cancels this key's processing-time timer at `ts`, if any.
    pub fn delete_processing_time_timer(&mut self, ts: Timestamp) {
        self.timers.push((ts, false, Domain::ProcessingTime))
    }
    /// In `on_timer`: whether the firing timer is a processing-time timer.
    pub fn is_processing_time_timer(&self) -> bool {
        self.processing_time
    }
    /// The wall clock, in ms since the epoch.
    pub fn current_processing_time(&self) -> Timestamp {
        crate::time::now_ms()
    }
    /// Drops this key's state after the current call.
    pub fn clear_state(&mut self) {
        self.clear = true
    }
}

/// The operator running a [`KeyedProcessFunction`] after the key-group exchange: the
/// function, and per subtask the states and timers of its keys.
pub struct KeyedProcess<K, T, P: KeyedProcessFunction<K, T>> {
    f: P,
    name: OpName,
    states: KeyedTable<K, P::State>,
    timers: Timers<K>,
    watermark: Timestamp,
    out: Vec<P::Out>,
    new_timers: Vec<(Timestamp, bool, Domain)>,
    side: TaggedOutputs,
    /// Encodes keys and states for checkpoints; `None`: not checkpointable.
    codec: Option<ProcessCodec<K, P::State>>,
    /// The input ended: a checkpoint copies its changes at once.
    ended: bool,
    /// Where the changed states being copied out for a checkpoint go, once copied.
    frozen: Option<FrozenTx>,
}

/// Sends a checkpoint's changes, copied out after the barrier, to the checkpoint writer.
type FrozenTx = crossbeam_channel::Sender<(crate::Result<Entries>, Duration)>;

/// The codecs of a keyed process function's keys and states.
pub(crate) type ProcessCodec<K, S> = (Codec<K>, Codec<S>);

/// Names of a keyed process function's states in checkpoints.
const STATE: &str = "state";
const TIMERS: &str = "timers";
const WATERMARK: &str = "watermark";

impl<K, T, P: KeyedProcessFunction<K, T>> KeyedProcess<K, T, P> {
    /// The operator, without tagged side outputs (their records are dropped and counted).
    #[cfg(test)]
    pub(crate) fn new(f: P, name: OpName) -> Self {
        KeyedProcess::with_side_outputs(f, name, TaggedOutputs::none())
    }

    /// The operator, with its tagged side outputs.
    pub(crate) fn with_side_outputs(f: P, name: OpName, side: TaggedOutputs) -> Self {
        KeyedProcess {
            f,
            name,
            states: KeyedTable::default(),
            timers: Timers::default(),
            watermark: Timestamp::MIN,
            out: Vec::new(),
            new_timers: Vec::new(),
            side,
            codec: None,
            ended: false,
            frozen: None,
        }
    }

    /// Makes the operator's state checkpointable with `codec`.
    pub(crate) fn with_codec(mut self, codec: Option<ProcessCodec<K, P::State>>) -> Self {
        self.codec = codec;
        self
    }
}

impl<K, T, P: KeyedProcessFunction<K, T>> Clone for KeyedProcess<K, T, P> {
    fn clone(&self) -> Self {
        KeyedProcess::with_side_outputs(self.f.clone(), self.name.clone(), self.side.clone())
            .with_codec(self.codec)
    }
}

impl<K, T, P: KeyedProcessFunction<K, T>> Sealed for KeyedProcess<K, T, P> {}

impl<K, T, P> KeyedProcess<K, T, P>
where
    K: Hash + Eq + Clone,
    P: KeyedProcessFunction<K, T>,
{
    /// Finishes the checkpoint copy under way (if any) and hands it to the checkpoint writer.
    fn flush_frozen(&mut self) {
        if self.frozen.is_some() {
            self.states.freeze_step(usize::MAX);
            self.send_frozen();
        }
    }

    /// Hands a finished copy to the checkpoint writer.
    fn send_frozen(&mut self) {
        if let Some(done) = self.states.take_frozen_entries() {
            if let Some(tx) = self.frozen.take() {
                // A writer that is gone has failed the job already.
                let _ = tx.send(done);
            }
        }
    }

    /// Runs `call` on `key`'s state with a fresh context, then applies timer changes, state
    /// clearing and output.
    fn with_context<D: Downstream<P::Out>>(
        &mut self,
        key: &K,
        ts: Timestamp,
        processing_time: bool,
        down: &mut D,
        call: impl FnOnce(&mut P, &mut P::State, &mut Context<'_, P::Out>),
    ) {
        // A call may change the state: the key counts as changed (checkpoints on).
        let state = self
            .states
            .get_or_insert_with(key.clone(), Default::default);
        let mut ctx = Context {
            timestamp: ts,
            watermark: self.watermark,
            out: &mut self.out,
            timers: &mut self.new_timers,
            side: &mut self.side,
            clear: false,
            processing_time,
        };
        let guard = PanicGuard(&self.name);
        call(&mut self.f, state, &mut ctx);
        std::mem::forget(guard);
        if ctx.clear || self.f.state_is_empty(state) {
            self.states.remove(key);
        }
        for (t, add, domain) in self.new_timers.drain(..) {
            if add {
                self.timers.register(key, t, domain);
            } else {
                self.timers.delete(key, t, domain);
            }
        }
        for o in self.out.drain(..) {
            down.emit(o, ts);
        }
    }

    /// Writes the live timers whole, packed: per key group, every timer's key, time and
    /// domain.
    fn snapshot_timers(&self, cx: &mut SnapshotCx<'_>, kc: Codec<K>) -> crate::Result<()> {
        let mut w = cx.keyed(TIMERS, true);
        let mut p = w.packer();
        for (k, t, d) in self.timers.live() {
            p.push(&mut w, k, |v| {
                (kc.enc)(k, v)?;
                encode(&(t, d as u8), v)
            })?;
        }
        p.flush(&mut w);
        w.finish();
        Ok(())
    }

    /// Fires the timers of one time domain up to `now`, in time order (including timers that
    /// the firing ones register for times already passed).
    fn fire<D: Downstream<P::Out>>(&mut self, now: Timestamp, domain: Domain, down: &mut D) {
        if domain == Domain::EventTime {
            self.watermark = now;
        }
        let proc = domain == Domain::ProcessingTime;
        while let Some((t, keys)) = self.timers.pop_due(now, domain) {
            for key in keys {
                self.with_context(&key, t, proc, down, |f, s, ctx| f.on_timer(&key, t, s, ctx));
            }
        }
    }
}

impl<K, T, P> Operator<(K, T)> for KeyedProcess<K, T, P>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    P: KeyedProcessFunction<K, T>,
{
    type Out = P::Out;

    fn state(&self) -> StateSupport {
        if self.codec.is_none() {
            return StateSupport::Unsupported("keyed state and timers without a codec");
        }
        StateSupport::Persisted(vec![
            StateDecl::keyed::<K, P::State>(STATE),
            StateDecl::packed::<(), K, (Timestamp, u8)>(TIMERS),
            StateDecl::operator::<Timestamp>(WATERMARK),
        ])
    }

    /// Keyed state is incremental (the keys a call touched since the last checkpoint, a
    /// tombstone for a state that was cleared); timers are written whole, packed
    /// ([`crate::runtime::snapshot::Packer`]).
    ///
    /// The changed states are copied after the barrier, in steps between batches (a state
    /// written before its turn is copied first), and encoded by the checkpoint writer, as a
    /// rolling aggregate's are, except that the copy is the state's encoding (the states need
    /// not be `Clone`, and the writer needs no more). At the end of input the table itself
    /// goes to the writer, which encodes its changes.
    fn snapshot(&mut self, cx: &mut SnapshotCx<'_>) -> crate::Result<()> {
        let Some((kc, sc)) = self.codec else {
            return Ok(());
        };
        cx.operator_state(WATERMARK, &self.watermark)?;
        // The previous checkpoint's copy goes out first.
        self.flush_frozen();
        if !self.ended {
            let (tx, rx) = crossbeam_channel::bounded(1);
            // Each change encoded as the copy takes it (a state saved before a write is
            // saved encoded: states need not be `Clone`). With a TTL a state starts with
            // its write time (8 bytes, little-endian ms).
            self.states.begin_freeze_encoded(
                Copier::Encode(sc),
                EncodeTo {
                    keys: kc,
                    values: sc,
                    time: |t, b| {
                        b.extend_from_slice(&t.to_le_bytes());
                        Ok(())
                    },
                    max_parallelism: cx.max_parallelism(),
                },
            );
            self.frozen = Some(tx);
            cx.keyed_entries_later(STATE, rx);
            self.snapshot_timers(cx, kc)?;
            return Ok(());
        }
        // The input ended: nothing changes the states any more. The writer's thread encodes
        // their changes from the table itself (and skips them for the job's last checkpoint).
        let mut states = std::mem::take(&mut self.states);
        cx.keyed_on_writer(STATE, move |w, abandon| {
            for (i, (k, state, time)) in states.take_timed_changes()?.into_iter().enumerate() {
                abandon.check_at(i)?;
                let value = |v: &mut Vec<u8>| {
                    if matches!(state, Change::Deleted) {
                        return Ok(false);
                    }
                    // With a TTL the value starts with its write time (8 bytes, little-endian
                    // ms).
                    if let Some(t) = time {
                        v.extend_from_slice(&t.to_le_bytes());
                    }
                    match &state {
                        Change::Value(s) => (sc.enc)(s, v)?,
                        // Spilled with the same codec.
                        Change::Encoded(e) => v.extend_from_slice(e),
                        Change::Deleted => {}
                    }
                    Ok(true)
                };
                w.put_with(&k, |b| (kc.enc)(&k, b), value)?;
            }
            Ok(())
        });
        self.snapshot_timers(cx, kc)
    }

    fn restore(&mut self, cx: &RestoreCx<'_>) -> crate::Result<()> {
        let Some((kc, sc)) = self.codec else {
            return Ok(());
        };
        if let Some(w) = cx.operator_state::<Timestamp>(WATERMARK)?.into_iter().min() {
            self.watermark = self.watermark.max(w);
        }
        let states = &mut self.states;
        let timed = states.has_ttl();
        let what = cx.describe(STATE);
        let decode = move |key: &[u8], value: &[u8]| -> crate::Result<(K, P::State, Option<i64>)> {
            let k = kc.decode_all(key, &|| what.clone())?;
            if timed {
                let Some((t, value)) = value.split_first_chunk::<8>() else {
                    let e = format!("{what}: an entry without its write time");
                    return Err(crate::Error::Checkpoint(e));
                };
                let s = sc.decode_all(value, &|| what.clone())?;
                Ok((k, s, Some(i64::from_le_bytes(*t))))
            } else {
                Ok((k, sc.decode_all(value, &|| what.clone())?, None))
            }
        };
        let mut lazily = false;
        if states.can_restore_lazily() {
            // Processing resumes at once; `drain` loads the state while the job runs.
            if let Some(lazy) = cx.lazy(STATE)? {
                states.reserve_for_restore(lazy.remaining_bound() as usize);
                let decode: RestoredDecode<K, P::State> = Box::new(decode.clone());
                lazily = states.restore_lazily(lazy, cx.max_parallelism(), Vec::new(), decode);
            } else {
                lazily = true;
            }
        }
        if !lazily {
            cx.keyed_raw(STATE, |key, value| {
                match decode(key, value)? {
                    (k, s, Some(t)) => states.restore_written_at(k, s, t),
                    (k, s, None) => states.restore(k, s),
                }
                Ok(())
            })?;
        }
        let timers = &mut self.timers;
        cx.packed(TIMERS, |_, mut rest| {
            let bad = |e: String| crate::Error::Checkpoint(format!("{}: {e}", cx.describe(TIMERS)));
            while !rest.is_empty() {
                let (k, r) = (kc.dec)(rest).map_err(|e| bad(e.to_string()))?;
                let ((t, d), r): ((Timestamp, u8), _) =
                    postcard::take_from_bytes(r).map_err(|e| bad(e.to_string()))?;
                rest = r;
                let domain = if d == 0 {
                    Domain::EventTime
                } else {
                    Domain::ProcessingTime
                };
                timers.register(&k, t, domain);
            }
            Ok(())
        })
    }

    #[inline]
    fn on_record<D: Downstream<P::Out>>(
        &mut self,
        (key, item): (K, T),
        ts: Timestamp,
        down: &mut D,
    ) {
        self.with_context(&key, ts, false, down, |f, s, ctx| {
            f.process_element(&key, item, s, ctx)
        });
    }

    fn on_event<D: Downstream<P::Out>>(&mut self, event: Event, down: &mut D) {
        match event {
            Event::Watermark(w) if w > self.watermark => self.fire(w, Domain::EventTime, down),
            Event::ProcessingTime(t) => self.fire(t, Domain::ProcessingTime, down),
            // The end of input drains both domains: event time first, as Flink's final watermark.
            Event::End => {
                self.ended = true;
                self.flush_frozen();
                self.fire(Timestamp::MAX, Domain::EventTime, down);
                self.fire(Timestamp::MAX, Domain::ProcessingTime, down);
            }
            _ => {}
        }
        self.side.event(event);
        down.event(event)
    }

    fn open(&mut self, cx: OpenCx) {
        self.states
            .track_changes(cx.checkpoints && self.codec.is_some());
        self.states.set_ttl(cx.state_ttl());
        if let (Some(m), Some((kc, sc))) = (cx.memory.clone(), self.codec) {
            self.states.spill_within(m, kc, sc);
        }
        self.side.open(cx)
    }

    fn state_entries(&self) -> u64 {
        self.states.len() as u64
    }

    fn restoring(&self) -> bool {
        self.states.is_restoring()
    }

    fn ttl_state(&self) -> Option<&'static str> {
        Some(STATE)
    }

    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
        if let Some(at) = self.states.restore_for(RESTORE_TIME)? {
            // A step of the lazy restore between batches; again soon until done.
            cx.wake_at(at);
        }
        if self.frozen.is_some() {
            // A step of the checkpoint's copy between batches; again soon until done.
            self.states.freeze_for(FREEZE_STEP);
            self.send_frozen();
            if self.frozen.is_some() {
                cx.wake_at(std::time::Instant::now());
            }
        }
        self.states.expire();
        self.states.check()?;
        if let Some(t) = self.timers.next_processing_time() {
            let wait = t.saturating_sub(crate::time::now_ms()).max(0) as u64;
            cx.wake_at(std::time::Instant::now() + std::time::Duration::from_millis(wait));
        }
        self.side.drain(cx)
    }
}

/// The chain of a stage that runs a keyed process function after its exchange.
pub type KeyedProcessChain<K, T, P> = Then<Identity<(K, T)>, KeyedProcess<K, T, P>>;

impl<C, K, KF> KeyedStream<C, KF>
where
    C: Chain,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    /// Runs a keyed process function: per-key state, event- and processing-time timers, any
    /// output (see the [module documentation](self) for an example).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// /// Numbers each key's records: `(key, 1)`, `(key, 2)`, ...
    /// #[derive(Clone)]
    /// struct Numbered;
    /// impl KeyedProcessFunction<char, char> for Numbered {
    ///     type State = u32;
    ///     type Out = (char, u32);
    ///     fn process_element(&mut self, k: &char, _: char, n: &mut u32,
    ///                        ctx: &mut Context<'_, (char, u32)>) {
    ///         *n += 1;
    ///         ctx.emit((*k, *n));
    ///     }
    /// }
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let out = env.from_iter("abca".chars()).key_by(|c| *c).process(Numbered).collect();
    /// env.execute()?;
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![('a', 1), ('a', 2), ('b', 1), ('c', 1)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn process<P>(self, f: P) -> Stream<KeyedProcessChain<K, C::Out, P>>
    where
        K: StateKey,
        P: KeyedProcessFunction<K, C::Out>,
        P::State: Serialize + DeserializeOwned,
    {
        let loc = Location::caller();
        let name = OpName::new("process", loc);
        let KeyedStream { stream, key } = self;
        let ex = exchange_by_key(stream, loc, key);
        let side = TaggedOutputs::for_next_operator(&ex);
        ex.then(
            OpInfo::new(&name),
            KeyedProcess::with_side_outputs(f, name, side)
                .with_codec(Some((Codec::serde(), Codec::serde()))),
        )
    }

    /// A keyed process function written as a closure over the key, the record, the key's
    /// state (any `Default` type, created on the key's first record) and the context. For
    /// timers, use [`KeyedStream::process_fn_with_timer`], a [`KeyedProcessFunction`], or a
    /// function marked `#[process_fn]`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// // The first record of each key, dropping repeats (deduplication).
    /// let out = env
    ///     .from_iter(["a", "b", "a", "c", "b"])
    ///     .key_by(|w| w.to_string())
    ///     .process_fn(|_key, w, seen: &mut bool, ctx| {
    ///         if !*seen {
    ///             *seen = true;
    ///             ctx.emit(w);
    ///         }
    ///     })
    ///     .collect();
    /// env.execute()?;
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec!["a", "b", "c"]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn process_fn<S, O, F>(self, f: F) -> Stream<FnProcessChain<K, C::Out, F, NoTimer, S, O>>
    where
        K: StateKey,
        S: Default + Send + Serialize + DeserializeOwned + 'static,
        O: Send + 'static,
        F: for<'c> FnMut(&K, C::Out, &mut S, &mut Context<'c, O>) + Clone + Send + 'static,
    {
        self.process(FnProcess::new(f, NoTimer))
    }

    /// [`KeyedStream::process_fn`] with a closure called when a timer of the key fires.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1).batch_size(1));
    /// // Per key, the records counted until a timer a second after its first record fires.
    /// let out = env
    ///     .from_iter([('a', 0i64), ('a', 500), ('b', 700), ('a', 1_500), ('b', 3_000)])
    ///     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///     .key_by(|e| e.0)
    ///     .process_fn_with_timer(
    ///         |_k, e, n: &mut u32, ctx| {
    ///             if *n == 0 {
    ///                 ctx.register_event_time_timer(e.1 + 999);
    ///             }
    ///             *n += 1;
    ///         },
    ///         |k, _ts, n, ctx| {
    ///             ctx.emit((*k, *n));
    ///             ctx.clear_state();
    ///         },
    ///     )
    ///     .collect();
    /// env.execute()?;
    /// let mut got = out.take();
    /// got.sort();
    /// // a's timer (at 999) fires on the watermark after a@1500, which it already counted.
    /// assert_eq!(got, vec![('a', 3), ('b', 2)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn process_fn_with_timer<S, O, F, G>(
        self,
        f: F,
        on_timer: G,
    ) -> Stream<FnProcessChain<K, C::Out, F, G, S, O>>
    where
        K: StateKey,
        S: Default + Send + Serialize + DeserializeOwned + 'static,
        O: Send + 'static,
        F: for<'c> FnMut(&K, C::Out, &mut S, &mut Context<'c, O>) + Clone + Send + 'static,
        G: for<'c> FnMut(&K, Timestamp, &mut S, &mut Context<'c, O>) + Clone + Send + 'static,
    {
        self.process(FnProcess::new(f, on_timer))
    }
}

/// The chain of a stage that runs closures as a keyed process function.
pub type FnProcessChain<K, T, F, G, S, O> = KeyedProcessChain<K, T, FnProcess<F, G, S, O>>;

/// A keyed process function made of closures ([`KeyedStream::process_fn`]).
pub struct FnProcess<F, G, S, O> {
    f: F,
    on_timer: G,
    _p: std::marker::PhantomData<fn() -> (S, O)>,
}

impl<F, G, S, O> FnProcess<F, G, S, O> {
    fn new(f: F, on_timer: G) -> Self {
        FnProcess {
            f,
            on_timer,
            _p: std::marker::PhantomData,
        }
    }
}

impl<F: Clone, G: Clone, S, O> Clone for FnProcess<F, G, S, O> {
    fn clone(&self) -> Self {
        FnProcess::new(self.f.clone(), self.on_timer.clone())
    }
}

/// The timer closure of a [`KeyedStream::process_fn`]: none.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoTimer;

/// What a [`FnProcess`] does when a timer fires.
pub trait OnTimer<K, S, O>: Clone + Send + 'static {
    /// Called when a timer of `key` fires.
    fn call(&mut self, key: &K, ts: Timestamp, state: &mut S, ctx: &mut Context<'_, O>);
}

impl<K, S, O> OnTimer<K, S, O> for NoTimer {
    fn call(&mut self, _: &K, _: Timestamp, _: &mut S, _: &mut Context<'_, O>) {}
}

impl<K, S, O, G> OnTimer<K, S, O> for G
where
    G: for<'c> FnMut(&K, Timestamp, &mut S, &mut Context<'c, O>) + Clone + Send + 'static,
{
    fn call(&mut self, key: &K, ts: Timestamp, state: &mut S, ctx: &mut Context<'_, O>) {
        self(key, ts, state, ctx)
    }
}

// Reached through `process_fn`: never suggest it to a `process` call.
#[diagnostic::do_not_recommend]
impl<K, T, F, G, S, O> KeyedProcessFunction<K, T> for FnProcess<F, G, S, O>
where
    S: Default + Send + 'static,
    O: Send + 'static,
    F: for<'c> FnMut(&K, T, &mut S, &mut Context<'c, O>) + Clone + Send + 'static,
    G: OnTimer<K, S, O>,
{
    type State = S;
    type Out = O;
    fn process_element(&mut self, key: &K, item: T, state: &mut S, ctx: &mut Context<'_, O>) {
        (self.f)(key, item, state, ctx)
    }
    fn on_timer(&mut self, key: &K, ts: Timestamp, state: &mut S, ctx: &mut Context<'_, O>) {
        self.on_timer.call(key, ts, state, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::operator::Collect;

    /// A per-key count in a state that is not `Clone`: a checkpoint copies it through its
    /// codec.
    #[derive(Default, Serialize, serde::Deserialize)]
    struct Tally(u64);

    #[derive(Clone)]
    struct Tallies;
    impl KeyedProcessFunction<u32, u64> for Tallies {
        type State = Tally;
        type Out = ();
        fn process_element(&mut self, _: &u32, n: u64, t: &mut Tally, _: &mut Context<'_, ()>) {
            t.0 += n;
        }
    }

    /// Takes a checkpoint of `op`, running `between` after the barrier and before its copy
    /// finishes; returns the tally of each key it holds.
    fn checkpoint_tallies(
        op: &mut KeyedProcess<u32, u64, Tallies>,
        between: impl FnOnce(&mut KeyedProcess<u32, u64, Tallies>),
    ) -> std::collections::HashMap<u32, u64> {
        let mut part = crate::runtime::snapshot::Part::default();
        let uids = ["tally".to_string()];
        op.snapshot(&mut SnapshotCx::for_test(&uids, &mut part))
            .unwrap();
        between(op);
        op.flush_frozen();
        part.encode_deferred();
        let mut got = std::collections::HashMap::new();
        for d in part.keyed.iter().filter(|d| d.name == STATE) {
            for (_, k, v) in d.entries.iter() {
                let k: u32 = crate::runtime::snapshot::decode(k, &|| "key".into()).unwrap();
                let v: Tally =
                    crate::runtime::snapshot::decode(v.unwrap(), &|| "v".into()).unwrap();
                got.insert(k, v.0);
            }
        }
        got
    }

    #[test]
    fn a_checkpoint_copies_states_as_at_its_barrier_while_records_go_on() {
        let mut out = Collect::new();
        let mut op = KeyedProcess::new(Tallies, OpName::new("t", Location::caller()))
            .with_codec(Some((Codec::serde(), Codec::serde())));
        op.open(OpenCx {
            subtask: 0,
            parallelism: 1,
            checkpoints: true,
            memory: None,
            ttls: None,
            op: 0,
        });
        let keys = 0..5000u32;
        for k in keys.clone() {
            op.on_record((k, 1), 0, &mut out);
        }
        let first = checkpoint_tallies(&mut op, |op| {
            // A step copies some keys; then every key is written again, before the rest.
            op.states.freeze_step(100);
            for k in keys.clone() {
                op.on_record((k, 10), 0, &mut out);
            }
            op.states.freeze_step(1000);
        });
        assert_eq!(first.len(), 5000);
        assert!(
            first.values().all(|&n| n == 1),
            "each state as at the barrier"
        );
        // The writes during the copy are the next checkpoint's changes, and only they.
        op.on_record((7, 100), 0, &mut out);
        let second = checkpoint_tallies(&mut op, |_| {});
        assert_eq!(second.len(), 5000);
        assert_eq!(second[&7], 111);
        assert_eq!(second[&8], 11);
        op.on_record((9, 1), 0, &mut out);
        assert_eq!(
            checkpoint_tallies(&mut op, |_| {}),
            [(9, 12)].into_iter().collect()
        );
    }

    /// Counts a key's records and, one tick after each, emits the count from a timer.
    #[derive(Clone)]
    struct Echo;
    impl KeyedProcessFunction<u8, i64> for Echo {
        type State = u32;
        type Out = (u8, i64, u32);
        fn process_element(
            &mut self,
            _k: &u8,
            t: i64,
            n: &mut u32,
            ctx: &mut Context<'_, Self::Out>,
        ) {
            *n += 1;
            ctx.register_event_time_timer(t + 1);
        }
        fn on_timer(&mut self, k: &u8, ts: i64, n: &mut u32, ctx: &mut Context<'_, Self::Out>) {
            ctx.emit((*k, ts, *n));
            if *n >= 2 {
                ctx.clear_state();
            }
        }
    }

    #[test]
    fn timers_fire_in_time_order_when_the_watermark_passes_them() {
        let mut op = KeyedProcess::new(Echo, OpName::new("process", Location::caller()));
        let mut out = Collect::new();
        for (k, t) in [(1u8, 10i64), (2, 5), (1, 12), (1, 12)] {
            op.on_record((k, t), t, &mut out);
        }
        op.on_event(Event::Watermark(11), &mut out);
        assert_eq!(out.0, vec![((2, 6, 1), 6), ((1, 11, 3), 11)]);
        // Key 1's timer at 13, registered twice, fires once at the end.
        op.on_event(Event::End, &mut out);
        let last = out.0.last().map(|((k, t, _), ts)| (*k, *t, *ts));
        assert_eq!(last, Some((1, 13, 13)));
        assert_eq!(out.0.len(), 3);
        assert_eq!(out.1, vec![Event::Watermark(11), Event::End]);
    }

    /// Remembers a key's last value; a timer one tick later clears it, and a second timer
    /// (registered before the clear) then fires for a key without state.
    #[crate::process_fn(on_timer = forget)]
    fn remember(
        _key: &u8,
        t: i64,
        last: &mut crate::ops::process::state::ValueState<i64>,
        ctx: &mut Context<'_, i64>,
    ) {
        last.set(t);
        ctx.register_event_time_timer(t + 1);
        ctx.register_event_time_timer(t + 2);
    }

    fn forget(
        _key: &u8,
        ts: i64,
        last: &mut crate::ops::process::state::ValueState<i64>,
        ctx: &mut Context<'_, i64>,
    ) {
        if let Some(v) = last.take() {
            ctx.emit(v);
        }
        let _ = ts;
    }

    #[test]
    fn a_timer_after_the_state_was_emptied_leaves_no_state_behind() {
        // Issue 13, bug 5: the second timer used to re-create a default state that stayed.
        let mut op = KeyedProcess::new(Remember, OpName::new("process", Location::caller()));
        let mut out = Collect::new();
        op.on_record((1u8, 10i64), 10, &mut out);
        op.on_record((2u8, 20i64), 20, &mut out);
        assert_eq!(op.states.len(), 2);
        op.on_event(Event::Watermark(100), &mut out);
        let emitted: Vec<i64> = out.0.iter().map(|r| r.0).collect();
        assert_eq!(emitted, vec![10, 20]);
        assert_eq!(
            op.states.len(),
            0,
            "emptied state is dropped, also after later timers"
        );
    }
}
