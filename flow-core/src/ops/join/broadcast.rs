//! Broadcast state: a low-rate stream (rules, configuration) broadcast to every subtask of a
//! keyed stream, where each subtask keeps it in a state of its own that the keyed side reads
//! (Flink's `connect(broadcastStream)` + `KeyedBroadcastProcessFunction`).
//!
//! ```
//! use flow_core::prelude::*;
//!
//! /// Flags amounts above the latest threshold.
//! #[derive(Clone)]
//! struct Above;
//! impl KeyedBroadcastProcessFunction<char, (char, u32), u32> for Above {
//!     type State = ();
//!     type Broadcast = Option<u32>;
//!     type Out = (char, u32);
//!     fn process_element(&mut self, key: &char, e: (char, u32), _: &mut (),
//!                        threshold: &Option<u32>, ctx: &mut ProcessContext<'_, Self::Out>) {
//!         if threshold.is_some_and(|t| e.1 > t) {
//!             ctx.emit((*key, e.1));
//!         }
//!     }
//!     fn process_broadcast(&mut self, t: u32, threshold: &mut Option<u32>,
//!                          _ctx: &mut ProcessContext<'_, Self::Out>) {
//!         *threshold = Some(t);
//!     }
//! }
//!
//! let mut env = Env::new(Config::default().parallelism(2));
//! // Rules and records interleave: a record is judged by the rules that arrived before it.
//! let rules = env.from_iter([10u32]);
//! let flagged = env
//!     .from_iter([('a', 5), ('b', 50), ('a', 70)])
//!     .key_by(|e| e.0)
//!     .connect_broadcast(rules)
//!     .process(Above)
//!     .collect();
//! env.execute()?;
//! assert!(flagged.take().iter().all(|(_, amount)| *amount > 10));
//! # Ok::<(), flow_core::Error>(())
//! ```
use super::connect::Either;
use crate::api::exchange::Exchange;
use crate::api::stream::{KeyedStream, Stream};
use crate::error::Result;
use crate::graph::plan::Partitioning;
use crate::graph::{Ending, OpInfo};
use crate::ops::process::non_keyed::ProcessContext;
use crate::ops::side_output::TaggedOutputs;
use crate::ops::{StateKey, Table};
use crate::record::{Event, Timestamp};
use crate::runtime::exchange::partition::{subtask_of_key, Forward, Partitioner, RoundRobin};
use crate::runtime::exchange::{BroadcastWriter, ExchangeWriter};
use crate::runtime::operator::{
    Chain, Downstream, DrainCx, Identity, OpenCx, Operator, Sealed, Then,
};
use crate::runtime::panic::{Named, OpName, PanicGuard};
use crate::runtime::snapshot::{Codec, RestoreCx, SnapshotCx, StateDecl, StateSupport};
use crate::runtime::stage::Terminal;
use crate::runtime::task::TaskCx;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::hash::Hash;
use std::marker::PhantomData;
use std::panic::Location;

/// A function of a keyed stream connected with a broadcast stream: per-key state on the
/// keyed side, and a broadcast state per subtask that only the broadcast side changes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a keyed broadcast process function of keys `{K}`, records `{T}` and broadcast records `{B}`",
    label = "expected a `KeyedBroadcastProcessFunction<{K}, {T}, {B}>`"
)]
pub trait KeyedBroadcastProcessFunction<K, T, B>: Clone + Send + 'static {
    /// The state of one key.
    type State: Default + Send + 'static;
    /// The broadcast state of a subtask (every subtask sees the same broadcast records, so
    /// with a deterministic `process_broadcast` every subtask holds the same one).
    type Broadcast: Default + Send + 'static;
    /// Output records.
    type Out: Send + 'static;
    /// Called for each record of the keyed side; the broadcast state is read-only here.
    fn process_element(
        &mut self,
        key: &K,
        item: T,
        state: &mut Self::State,
        broadcast: &Self::Broadcast,
        ctx: &mut ProcessContext<'_, Self::Out>,
    );
    /// Called for each record of the broadcast side, in every subtask.
    fn process_broadcast(
        &mut self,
        item: B,
        broadcast: &mut Self::Broadcast,
        ctx: &mut ProcessContext<'_, Self::Out>,
    );
}

/// A keyed stream connected with a broadcast stream; finish it with
/// [`BroadcastConnectedStreams::process`].
#[must_use = "connected streams do nothing until processed"]
pub struct BroadcastConnectedStreams<K: Send + 'static, T: Send + 'static, B: Send + 'static> {
    ex: Stream<Identity<Either<(K, T), B>>>,
}

/// Routes keyed-side records by the key group of their key.
struct LeftByKey(u32);

impl<K: Hash, T, B> Partitioner<Either<(K, T), B>> for LeftByKey {
    #[inline]
    fn route(&mut self, item: &Either<(K, T), B>, consumers: usize) -> usize {
        match item {
            Either::Left((k, _)) => subtask_of_key(k, self.0, consumers),
            Either::Right(_) => 0,
        }
    }
}

/// The keyed side's terminal: computes the key and wraps the record.
struct KeyedSide<T, B, KF, W> {
    key: Named<KF>,
    writer: W,
    _p: PhantomData<fn(T, B)>,
}

impl<T, K, B, KF, W> Downstream<T> for KeyedSide<T, B, KF, W>
where
    KF: FnMut(&T) -> K,
    W: Downstream<Either<(K, T), B>>,
{
    #[inline]
    fn emit(&mut self, item: T, ts: Timestamp) {
        let guard = PanicGuard(&self.key.name);
        let k = (self.key.f)(&item);
        std::mem::forget(guard);
        self.writer.emit(Either::Left((k, item)), ts)
    }
    fn event(&mut self, event: Event) {
        self.writer.event(event)
    }
}

impl<T: Send, K, B, KF, W> Terminal<T> for KeyedSide<T, B, KF, W>
where
    KF: FnMut(&T) -> K + Send,
    W: Terminal<Either<(K, T), B>>,
{
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        self.writer.drain(cx)
    }
}

/// The broadcast side's terminal: wraps each record and sends it to every subtask.
struct BroadcastSide<L, B>(BroadcastWriter<Either<L, B>>);

impl<L: Clone + Send, B: Clone + Send> Downstream<B> for BroadcastSide<L, B> {
    #[inline]
    fn emit(&mut self, item: B, ts: Timestamp) {
        self.0.emit(Either::Right(item), ts)
    }
    fn event(&mut self, event: Event) {
        self.0.event(event)
    }
}

impl<L: Clone + Send, B: Clone + Send> Terminal<B> for BroadcastSide<L, B> {
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        self.0.drain(cx)
    }
}

impl<C, K, KF> KeyedStream<C, KF>
where
    C: Chain,
    C::Out: Clone,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    /// Connects this keyed stream with `broadcast`, whose every record reaches every subtask
    /// (Flink's broadcast state pattern); see the [module documentation](self).
    #[track_caller]
    pub fn connect_broadcast<C2>(
        self,
        broadcast: Stream<C2>,
    ) -> BroadcastConnectedStreams<K, C::Out, C2::Out>
    where
        C2: Chain,
        C2::Out: Clone,
    {
        let loc = Location::caller();
        let KeyedStream { stream, key } = self;
        let (fa, fb) = (stream.feed(), broadcast.feed());
        let (p, key_groups) = {
            let g = stream.g.borrow();
            (
                fa.next_parallelism.unwrap_or(g.config.parallelism),
                g.config.max_parallelism,
            )
        };
        let ex = Exchange::<Either<(K, C::Out), C2::Out>>::new(
            &stream.g,
            &[fa, fb],
            Partitioning::Hash { key_groups },
            format!("stage {} by key + stage {} broadcast", fa.stage, fb.stage),
            p,
            loc,
        );
        let (oa, ob) = (ex.outlets.clone(), ex.outlets.clone());
        let by = Ending::Exchange(key.name.as_str().to_string());
        stream.finish(by, move |i, _| KeyedSide {
            key: key.clone(),
            writer: oa.writer(i, LeftByKey(key_groups)),
            _p: PhantomData,
        });
        let first = fa.parallelism;
        broadcast.finish(Ending::Exchange("broadcast".into()), move |i, _| {
            let w: ExchangeWriter<_, Forward> = ob.writer(first + i, Forward(0));
            BroadcastSide(BroadcastWriter(w))
        });
        BroadcastConnectedStreams {
            ex: ex.into_stream(),
        }
    }
}

impl<K, T, B> BroadcastConnectedStreams<K, T, B>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    B: Send + 'static,
{
    /// Runs a [`KeyedBroadcastProcessFunction`] over both inputs.
    ///
    /// With checkpoints, the per-key state is checkpointed by key group and the broadcast
    /// state as every subtask's copy (a restore at any parallelism gives each new subtask
    /// one): keys and both states need serde's traits.
    #[track_caller]
    pub fn process<P>(self, f: P) -> Stream<BroadcastChain<K, T, B, P>>
    where
        K: StateKey,
        P: KeyedBroadcastProcessFunction<K, T, B>,
        P::State: Serialize + DeserializeOwned,
        P::Broadcast: Serialize + DeserializeOwned,
    {
        let name = OpName::new("broadcast_process", Location::caller());
        let side = TaggedOutputs::for_next_operator(&self.ex);
        self.ex.then(
            OpInfo::new(&name),
            BroadcastProcess {
                f,
                name,
                states: Table::default(),
                broadcast: P::Broadcast::default(),
                watermark: Timestamp::MIN,
                out: Vec::new(),
                side,
                codec: Some((Codec::serde(), Codec::serde(), Codec::serde())),
                _p: PhantomData,
            },
        )
    }
}

/// The chain of a stage running a [`KeyedBroadcastProcessFunction`].
pub type BroadcastChain<K, T, B, P> =
    Then<Identity<Either<(K, T), B>>, BroadcastProcess<K, T, B, P>>;

/// The operator running a [`KeyedBroadcastProcessFunction`].
pub struct BroadcastProcess<K, T, B, P: KeyedBroadcastProcessFunction<K, T, B>> {
    f: P,
    name: OpName,
    states: Table<K, P::State>,
    broadcast: P::Broadcast,
    watermark: Timestamp,
    out: Vec<P::Out>,
    side: TaggedOutputs,
    /// Encodes keys, keyed states and the broadcast state; `None`: not checkpointable.
    codec: Option<BroadcastCodec<K, P::State, P::Broadcast>>,
    _p: PhantomData<fn(T, B)>,
}

impl<K, T, B, P: KeyedBroadcastProcessFunction<K, T, B>> Clone for BroadcastProcess<K, T, B, P> {
    fn clone(&self) -> Self {
        BroadcastProcess {
            f: self.f.clone(),
            name: self.name.clone(),
            states: Table::default(),
            broadcast: P::Broadcast::default(),
            watermark: Timestamp::MIN,
            out: Vec::new(),
            side: self.side.clone(),
            codec: self.codec,
            _p: PhantomData,
        }
    }
}

impl<K, T, B, P: KeyedBroadcastProcessFunction<K, T, B>> Sealed for BroadcastProcess<K, T, B, P> {}

impl<K, T, B, P> Operator<Either<(K, T), B>> for BroadcastProcess<K, T, B, P>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    B: Send + 'static,
    P: KeyedBroadcastProcessFunction<K, T, B>,
{
    type Out = P::Out;

    fn state(&self) -> StateSupport {
        if self.codec.is_none() {
            return StateSupport::Unsupported(
                "keyed and broadcast state of a broadcast process function without a codec",
            );
        }
        StateSupport::Persisted(vec![
            StateDecl::keyed::<K, P::State>(STATE),
            StateDecl::operator::<P::Broadcast>(BROADCAST),
            StateDecl::operator::<Timestamp>(WATERMARK),
        ])
    }

    /// The keyed states are written whole at each checkpoint; the broadcast state is written
    /// by every subtask (all hold the same copy).
    fn snapshot(&mut self, cx: &mut SnapshotCx<'_>) -> Result<()> {
        let Some((kc, sc, bc)) = self.codec else {
            return Ok(());
        };
        cx.operator_state(WATERMARK, &self.watermark)?;
        let mut b = Vec::new();
        (bc.enc)(&self.broadcast, &mut b)?;
        cx.operator_state(BROADCAST, &b)?;
        let mut w = cx.keyed(STATE, true);
        for (k, s) in &self.states {
            let mut key = Vec::new();
            (kc.enc)(k, &mut key)?;
            let mut v = Vec::new();
            (sc.enc)(s, &mut v)?;
            w.put_encoded(k, key, Some(v));
        }
        w.finish();
        Ok(())
    }

    fn restore(&mut self, cx: &RestoreCx<'_>) -> Result<()> {
        let Some((kc, sc, bc)) = self.codec else {
            return Ok(());
        };
        if let Some(w) = cx.operator_state::<Timestamp>(WATERMARK)?.into_iter().min() {
            self.watermark = self.watermark.max(w);
        }
        if let Some(b) = restore_broadcast(cx, bc)? {
            self.broadcast = b;
        }
        let states = &mut self.states;
        cx.keyed_raw(STATE, |key, value| {
            let k = kc.decode_all(key, &|| cx.describe(STATE))?;
            let s = sc.decode_all(value, &|| cx.describe(STATE))?;
            states.insert(k, s);
            Ok(())
        })
    }

    fn on_record<D: Downstream<P::Out>>(
        &mut self,
        item: Either<(K, T), B>,
        ts: Timestamp,
        down: &mut D,
    ) {
        let mut ctx = ProcessContext::new(ts, self.watermark, &mut self.out, &mut self.side);
        let guard = PanicGuard(&self.name);
        match item {
            Either::Left((k, x)) => {
                let state = self.states.entry(k.clone()).or_default();
                self.f
                    .process_element(&k, x, state, &self.broadcast, &mut ctx);
            }
            Either::Right(b) => self.f.process_broadcast(b, &mut self.broadcast, &mut ctx),
        }
        std::mem::forget(guard);
        for o in self.out.drain(..) {
            down.emit(o, ts);
        }
    }

    fn on_event<D: Downstream<P::Out>>(&mut self, event: Event, down: &mut D) {
        if let Event::Watermark(w) = event {
            self.watermark = self.watermark.max(w);
        }
        self.side.event(event);
        down.event(event)
    }

    fn open(&mut self, cx: OpenCx) {
        self.side.open(cx)
    }

    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> Result<bool> {
        self.side.drain(cx)
    }
}

/// A function of a non-keyed stream connected with a broadcast stream: a broadcast state per
/// subtask that only the broadcast side changes and the other side reads.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a broadcast process function of records `{T}` and broadcast records `{B}`",
    label = "expected a `BroadcastProcessFunction<{T}, {B}>`"
)]
pub trait BroadcastProcessFunction<T, B>: Clone + Send + 'static {
    /// The broadcast state of a subtask.
    type Broadcast: Default + Send + 'static;
    /// Output records.
    type Out: Send + 'static;
    /// Called for each record of the non-broadcast side; the broadcast state is read-only.
    fn process_element(
        &mut self,
        item: T,
        broadcast: &Self::Broadcast,
        ctx: &mut ProcessContext<'_, Self::Out>,
    );
    /// Called for each record of the broadcast side, in every subtask.
    fn process_broadcast(
        &mut self,
        item: B,
        broadcast: &mut Self::Broadcast,
        ctx: &mut ProcessContext<'_, Self::Out>,
    );
}

/// A non-keyed stream connected with a broadcast stream; finish it with
/// [`BroadcastCoStreams::process`].
#[must_use = "connected streams do nothing until processed"]
pub struct BroadcastCoStreams<T: Send + 'static, B: Send + 'static> {
    ex: Stream<Identity<Either<T, B>>>,
}

/// The non-broadcast side's terminal: wraps each record, round-robin over the subtasks.
struct PlainSide<T, B, W>(W, PhantomData<fn(T, B)>);

impl<T, B, W: Downstream<Either<T, B>>> Downstream<T> for PlainSide<T, B, W> {
    #[inline]
    fn emit(&mut self, item: T, ts: Timestamp) {
        self.0.emit(Either::Left(item), ts)
    }
    fn event(&mut self, event: Event) {
        self.0.event(event)
    }
}

impl<T: Send, B, W: Terminal<Either<T, B>>> Terminal<T> for PlainSide<T, B, W> {
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        self.0.drain(cx)
    }
}

impl<C> Stream<C>
where
    C: Chain,
    C::Out: Clone,
{
    /// Connects this (non-keyed) stream with `broadcast`, whose every record reaches every
    /// subtask, for a [`BroadcastProcessFunction`] (Flink's `connect(broadcastStream)` on a
    /// non-keyed stream). Records of this stream are spread round-robin.
    ///
    /// ```
    /// use flow_core::prelude::*;
    ///
    /// /// Drops the words on the latest stop list.
    /// #[derive(Clone)]
    /// struct StopWords;
    /// impl BroadcastProcessFunction<&'static str, Vec<String>> for StopWords {
    ///     type Broadcast = Vec<String>; // checkpointable: `String`, not `&'static str`
    ///     type Out = &'static str;
    ///     fn process_element(&mut self, w: &'static str, stop: &Vec<String>,
    ///                        ctx: &mut ProcessContext<'_, &'static str>) {
    ///         if !stop.iter().any(|s| s == w) {
    ///             ctx.emit(w);
    ///         }
    ///     }
    ///     fn process_broadcast(&mut self, list: Vec<String>, stop: &mut Vec<String>,
    ///                          _ctx: &mut ProcessContext<'_, &'static str>) {
    ///         *stop = list;
    ///     }
    /// }
    ///
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let lists = env.from_iter([vec!["the".to_string(), "a".to_string()]]);
    /// let kept = env
    ///     .from_iter(["the", "cat", "a", "mat"])
    ///     .connect_broadcast(lists)
    ///     .process(StopWords)
    ///     .collect();
    /// env.execute()?;
    /// // Words that arrived before the list in their subtask pass; the rest are filtered.
    /// let kept = kept.take();
    /// assert!(kept.contains(&"cat") && kept.contains(&"mat"));
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn connect_broadcast<C2>(self, broadcast: Stream<C2>) -> BroadcastCoStreams<C::Out, C2::Out>
    where
        C2: Chain,
        C2::Out: Clone,
    {
        let loc = Location::caller();
        let (fa, fb) = (self.feed(), broadcast.feed());
        let p = self.g.borrow().config.parallelism;
        let ex = Exchange::<Either<C::Out, C2::Out>>::new(
            &self.g,
            &[fa, fb],
            Partitioning::RoundRobin,
            format!("stage {} + stage {} broadcast", fa.stage, fb.stage),
            p,
            loc,
        );
        let (oa, ob) = (ex.outlets.clone(), ex.outlets.clone());
        self.finish(Ending::Exchange("connect (left)".into()), move |i, _| {
            PlainSide(oa.writer(i, RoundRobin(i)), PhantomData)
        });
        let first = fa.parallelism;
        broadcast.finish(Ending::Exchange("broadcast".into()), move |i, _| {
            let w: ExchangeWriter<_, Forward> = ob.writer(first + i, Forward(0));
            BroadcastSide(BroadcastWriter(w))
        });
        BroadcastCoStreams {
            ex: ex.into_stream(),
        }
    }
}

impl<T: Send + 'static, B: Send + 'static> BroadcastCoStreams<T, B> {
    /// Runs a [`BroadcastProcessFunction`] over both inputs.
    ///
    /// With checkpoints, the broadcast state is checkpointed as every subtask's copy (a
    /// restore at any parallelism gives each new subtask one): it needs serde's traits.
    #[track_caller]
    pub fn process<P>(self, f: P) -> Stream<NonKeyedBroadcastChain<T, B, P>>
    where
        P: BroadcastProcessFunction<T, B>,
        P::Broadcast: Serialize + DeserializeOwned,
    {
        let name = OpName::new("broadcast_process", Location::caller());
        let side = TaggedOutputs::for_next_operator(&self.ex);
        self.ex.then(
            OpInfo::new(&name),
            NonKeyedBroadcastProcess {
                f,
                name,
                broadcast: P::Broadcast::default(),
                watermark: Timestamp::MIN,
                out: Vec::new(),
                side,
                codec: Some(Codec::serde()),
                _p: PhantomData,
            },
        )
    }
}

/// The chain of a stage running a [`BroadcastProcessFunction`].
pub type NonKeyedBroadcastChain<T, B, P> =
    Then<Identity<Either<T, B>>, NonKeyedBroadcastProcess<T, B, P>>;

/// The operator running a [`BroadcastProcessFunction`].
pub struct NonKeyedBroadcastProcess<T, B, P: BroadcastProcessFunction<T, B>> {
    f: P,
    name: OpName,
    broadcast: P::Broadcast,
    watermark: Timestamp,
    out: Vec<P::Out>,
    side: TaggedOutputs,
    /// Encodes the broadcast state; `None`: not checkpointable.
    codec: Option<Codec<P::Broadcast>>,
    _p: PhantomData<fn(T, B)>,
}

impl<T, B, P: BroadcastProcessFunction<T, B>> Clone for NonKeyedBroadcastProcess<T, B, P> {
    fn clone(&self) -> Self {
        NonKeyedBroadcastProcess {
            f: self.f.clone(),
            name: self.name.clone(),
            broadcast: P::Broadcast::default(),
            watermark: Timestamp::MIN,
            out: Vec::new(),
            side: self.side.clone(),
            codec: self.codec,
            _p: PhantomData,
        }
    }
}

impl<T, B, P: BroadcastProcessFunction<T, B>> Sealed for NonKeyedBroadcastProcess<T, B, P> {}

impl<T, B, P> Operator<Either<T, B>> for NonKeyedBroadcastProcess<T, B, P>
where
    T: Send + 'static,
    B: Send + 'static,
    P: BroadcastProcessFunction<T, B>,
{
    type Out = P::Out;

    fn state(&self) -> StateSupport {
        if self.codec.is_none() {
            return StateSupport::Unsupported(
                "the broadcast state of a broadcast process function without a codec",
            );
        }
        StateSupport::Persisted(vec![
            StateDecl::operator::<P::Broadcast>(BROADCAST),
            StateDecl::operator::<Timestamp>(WATERMARK),
        ])
    }

    /// Every subtask writes its copy of the broadcast state.
    fn snapshot(&mut self, cx: &mut SnapshotCx<'_>) -> Result<()> {
        let Some(bc) = self.codec else {
            return Ok(());
        };
        cx.operator_state(WATERMARK, &self.watermark)?;
        let mut b = Vec::new();
        (bc.enc)(&self.broadcast, &mut b)?;
        cx.operator_state(BROADCAST, &b)
    }

    fn restore(&mut self, cx: &RestoreCx<'_>) -> Result<()> {
        let Some(bc) = self.codec else {
            return Ok(());
        };
        if let Some(w) = cx.operator_state::<Timestamp>(WATERMARK)?.into_iter().min() {
            self.watermark = self.watermark.max(w);
        }
        if let Some(b) = restore_broadcast(cx, bc)? {
            self.broadcast = b;
        }
        Ok(())
    }

    fn on_record<D: Downstream<P::Out>>(
        &mut self,
        item: Either<T, B>,
        ts: Timestamp,
        down: &mut D,
    ) {
        let mut ctx = ProcessContext::new(ts, self.watermark, &mut self.out, &mut self.side);
        let guard = PanicGuard(&self.name);
        match item {
            Either::Left(x) => self.f.process_element(x, &self.broadcast, &mut ctx),
            Either::Right(b) => self.f.process_broadcast(b, &mut self.broadcast, &mut ctx),
        }
        std::mem::forget(guard);
        for o in self.out.drain(..) {
            down.emit(o, ts);
        }
    }

    fn on_event<D: Downstream<P::Out>>(&mut self, event: Event, down: &mut D) {
        if let Event::Watermark(w) = event {
            self.watermark = self.watermark.max(w);
        }
        self.side.event(event);
        down.event(event)
    }

    fn open(&mut self, cx: OpenCx) {
        self.side.open(cx)
    }

    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> Result<bool> {
        self.side.drain(cx)
    }
}

/// The codecs of a keyed broadcast process function's keys, keyed states and broadcast state.
type BroadcastCodec<K, S, B> = (Codec<K>, Codec<S>, Codec<B>);

/// Names of the broadcast operators' states in checkpoints.
const STATE: &str = "state";
const BROADCAST: &str = "broadcast";
const WATERMARK: &str = "watermark";

/// The broadcast state of a checkpoint: every subtask of the checkpointed job wrote the same
/// copy (each saw every broadcast record before the barrier), so the first one is every new
/// subtask's copy, whatever the new parallelism. `None`: the checkpoint has none.
fn restore_broadcast<S>(cx: &RestoreCx<'_>, codec: Codec<S>) -> Result<Option<S>> {
    let copies = cx.operator_state::<Vec<u8>>(BROADCAST)?;
    match copies.first() {
        Some(b) => codec.decode_all(b, &|| cx.describe(BROADCAST)).map(Some),
        None => Ok(None),
    }
}
