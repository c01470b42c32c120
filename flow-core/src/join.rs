//! Two keyed inputs: `connect` with a co-process function sharing keyed state, interval
//! joins and window joins.
//!
//! Both inputs are exchanged by key into the same stage, so a key's records of both sides
//! meet in one subtask, and its watermark is the minimum over the two inputs.
//!
//! ```
//! use flow_core::prelude::*;
//! use std::time::Duration;
//!
//! let mut env = Env::new(Config::default().parallelism(2));
//! let orders = env
//!     .from_iter([(1u32, 1_000i64, "book"), (2, 1_500, "pen")])
//!     .assign_timestamps(|o| o.1, WatermarkStrategy::monotonous())
//!     .key_by(|o| o.0);
//! let payments = env
//!     .from_iter([(1u32, 1_200i64, 20.0), (2, 9_000, 2.0)])
//!     .assign_timestamps(|p| p.1, WatermarkStrategy::monotonous())
//!     .key_by(|p| p.0);
//! // payments within 5 s after the order
//! let paid = orders
//!     .interval_join(payments, Duration::ZERO, Duration::from_secs(5), |id, o, p| (*id, o.2, p.2))
//!     .collect();
//! env.execute()?;
//! assert_eq!(paid.take(), vec![(1, "book", 20.0)]);
//! # Ok::<(), flow_core::Error>(())
//! ```
use crate::chain::{Chain, Downstream, Identity, OpName, PanicGuard};
use crate::env::InputSpec;
use crate::error::Result;
use crate::keyed::Named;
use crate::process::{Context, KeyedProcessFunction, ProcessOp, ProcessState};
use crate::record::{Event, Timestamp};
use crate::runtime::exchange::{channels, ExchangeWriter, KeyGroups};
use crate::runtime::stage::Terminal;
use crate::runtime::task::TaskCx;
use crate::stream::{KeyedStream, Stream};
use crate::window::{WindowInfo, WindowSpec};
use crate::windowed::WindowedStream;
use std::collections::BTreeMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::panic::Location;
use std::time::Duration;

/// A record of one of two connected inputs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Either<L, R> {
    /// From the first (left) input.
    Left(L),
    /// From the second (right) input.
    Right(R),
}

/// A function over two connected keyed inputs that share per-key state and timers (Flink's
/// `KeyedCoProcessFunction`).
pub trait KeyedCoProcessFunction<K, A, B>: Clone + Send + 'static {
    /// The state of one key, shared by both inputs.
    type State: Default + Send + 'static;
    /// Output records.
    type Out: Send + 'static;
    /// Called for each record of the first input.
    fn process_left(
        &mut self,
        key: &K,
        item: A,
        state: &mut Self::State,
        ctx: &mut Context<'_, Self::Out>,
    );
    /// Called for each record of the second input.
    fn process_right(
        &mut self,
        key: &K,
        item: B,
        state: &mut Self::State,
        ctx: &mut Context<'_, Self::Out>,
    );
    /// Called when an event-time timer of `key` fires.
    fn on_timer(
        &mut self,
        _key: &K,
        _timestamp: Timestamp,
        _state: &mut Self::State,
        _ctx: &mut Context<'_, Self::Out>,
    ) {
    }
}

/// Runs a co-process function as a process function over `Either` records.
pub struct CoProcess<P, A, B>(P, PhantomData<fn(A, B)>);

impl<P: Clone, A, B> Clone for CoProcess<P, A, B> {
    fn clone(&self) -> Self {
        CoProcess(self.0.clone(), PhantomData)
    }
}

impl<K, A, B, P> KeyedProcessFunction<K, Either<A, B>> for CoProcess<P, A, B>
where
    A: 'static,
    B: 'static,
    P: KeyedCoProcessFunction<K, A, B>,
{
    type State = P::State;
    type Out = P::Out;
    fn process_element(
        &mut self,
        key: &K,
        item: Either<A, B>,
        state: &mut P::State,
        ctx: &mut Context<'_, P::Out>,
    ) {
        match item {
            Either::Left(a) => self.0.process_left(key, a, state, ctx),
            Either::Right(b) => self.0.process_right(key, b, state, ctx),
        }
    }
    fn on_timer(
        &mut self,
        key: &K,
        ts: Timestamp,
        state: &mut P::State,
        ctx: &mut Context<'_, P::Out>,
    ) {
        self.0.on_timer(key, ts, state, ctx)
    }
}

/// Two keyed streams exchanged by key into one stage.
#[must_use = "connected streams do nothing until processed"]
pub struct ConnectedStreams<K: Send + 'static, A: Send + 'static, B: Send + 'static> {
    ex: Stream<Identity<(K, Either<A, B>)>>,
}

/// Computes the key of each record of one side and passes `(key, Left/Right(record))` on.
struct SideWriter<T, KF, WF, W> {
    key: Named<KF>,
    wrap: WF,
    writer: W,
    _p: PhantomData<fn(T)>,
}

impl<T, K, V, KF: FnMut(&T) -> K, WF: FnMut(T) -> V, W: Downstream<(K, V)>> Downstream<T>
    for SideWriter<T, KF, WF, W>
{
    #[inline]
    fn emit(&mut self, item: T, ts: Timestamp) {
        let guard = PanicGuard(&self.key.name);
        let k = (self.key.f)(&item);
        std::mem::forget(guard);
        self.writer.emit((k, (self.wrap)(item)), ts)
    }
    fn event(&mut self, event: Event) {
        self.writer.event(event)
    }
}

impl<T: Send, K, V, KF, WF, W> Terminal<T> for SideWriter<T, KF, WF, W>
where
    KF: FnMut(&T) -> K + Send,
    WF: FnMut(T) -> V + Send,
    W: Terminal<(K, V)>,
{
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        self.writer.drain(cx)
    }
}

impl<C, K, KF> KeyedStream<C, KF>
where
    C: Chain,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    /// Connects this keyed stream with another keyed by the same key type: records of both
    /// with equal keys meet in the same subtask and share its state.
    #[track_caller]
    pub fn connect<C2, KF2>(
        self,
        other: KeyedStream<C2, KF2>,
    ) -> ConnectedStreams<K, C::Out, C2::Out>
    where
        C2: Chain,
        KF2: FnMut(&C2::Out) -> K + Clone + Send + 'static,
    {
        let loc = Location::caller();
        let (a, ka) = (self.stream, self.key);
        let (b, kb) = (other.stream, other.key);
        let g = a.g.clone();
        let (p_down, batch, max_p) = {
            let g = g.borrow();
            (
                g.config.parallelism,
                g.config.batch_size,
                g.config.max_parallelism,
            )
        };
        let (pa, pb) = (a.input.slot.ids.len(), b.input.slot.ids.len());
        let how = format!("hash by key, {max_p} key groups");
        let inputs = vec![(a.input.slot.stage, how.clone()), (b.input.slot.stage, how)];
        let bounded = a.bounded() && b.bounded();
        let slot = g.borrow_mut().reserve(
            p_down,
            format!(
                "connect stage {} + stage {}",
                a.input.slot.stage, b.input.slot.stage
            ),
            inputs,
            loc,
        );
        let ids: Vec<usize> = slot.ids.clone().collect();
        let (outs, ins) = channels::<(K, Either<C::Out, C2::Out>)>(pa + pb, &ids);
        let outs_b = outs.clone();
        a.finish("exchange (left)".into(), move |i, _| SideWriter {
            key: ka.clone(),
            wrap: Either::Left,
            writer: ExchangeWriter::new(
                i,
                outs.clone(),
                KeyGroups {
                    max_parallelism: max_p,
                },
                batch,
            ),
            _p: PhantomData,
        });
        b.finish("exchange (right)".into(), move |i, _| SideWriter {
            key: kb.clone(),
            wrap: Either::Right,
            writer: ExchangeWriter::new(
                pa + i,
                outs_b.clone(),
                KeyGroups {
                    max_parallelism: max_p,
                },
                batch,
            ),
            _p: PhantomData,
        });
        let make = crate::runtime::exchange::input_maker(ins);
        ConnectedStreams {
            ex: Stream::new(
                g,
                InputSpec {
                    slot,
                    make,
                    bounded,
                },
            ),
        }
    }

    /// Joins each record `a` of this stream with every record `b` of `other` with the same
    /// key and `a.ts + lower <= b.ts <= a.ts + upper` (bounds inclusive, as Flink's interval
    /// join); `f` makes the joined record. Records older than the watermark are dropped, and
    /// buffered records are released once no later record can match them.
    #[track_caller]
    pub fn interval_join<C2, KF2, F, R>(
        self,
        other: KeyedStream<C2, KF2>,
        lower: Duration,
        upper: Duration,
        f: F,
    ) -> Stream<impl Chain<Out = R>>
    where
        C::Out: Clone,
        C2: Chain,
        C2::Out: Clone,
        KF2: FnMut(&C2::Out) -> K + Clone + Send + 'static,
        F: FnMut(&K, &C::Out, &C2::Out) -> R + Clone + Send + 'static,
        R: Send + 'static,
    {
        self.interval_join_signed(other, ms(lower), ms(upper), f)
    }

    /// [`KeyedStream::interval_join`] with signed bounds in milliseconds (e.g. `-2000, 1000`:
    /// `b` from two seconds before to one second after `a`).
    #[track_caller]
    pub fn interval_join_signed<C2, KF2, F, R>(
        self,
        other: KeyedStream<C2, KF2>,
        lower: i64,
        upper: i64,
        f: F,
    ) -> Stream<impl Chain<Out = R>>
    where
        C::Out: Clone,
        C2: Chain,
        C2::Out: Clone,
        KF2: FnMut(&C2::Out) -> K + Clone + Send + 'static,
        F: FnMut(&K, &C::Out, &C2::Out) -> R + Clone + Send + 'static,
        R: Send + 'static,
    {
        let name = OpName::new("interval_join", Location::caller());
        self.connect(other).process_named(
            format!("interval_join [{lower} ms, {upper} ms]"),
            IntervalJoin {
                lower,
                upper: upper.max(lower),
                f: Named { f, name },
                _p: PhantomData,
            },
        )
    }

    /// Joins the records of both streams with equal keys that fall into the same window
    /// (Flink's window join): `f` runs for every pair of the window's left and right records.
    #[track_caller]
    pub fn window_join<C2, KF2, F, R>(
        self,
        other: KeyedStream<C2, KF2>,
        spec: impl Into<WindowSpec>,
        f: F,
    ) -> Stream<impl Chain<Out = R>>
    where
        C::Out: Clone,
        C2: Chain,
        C2::Out: Clone,
        KF2: FnMut(&C2::Out) -> K + Clone + Send + 'static,
        F: FnMut(&K, &C::Out, &C2::Out) -> R + Clone + Send + 'static,
        R: Send + 'static,
    {
        let connected = self.connect(other);
        let windowed =
            WindowedStream::from_exchange(connected.ex, "window_join".into(), spec.into());
        let mut f = f;
        windowed.process(
            move |k: &K, _info: &WindowInfo, items: Vec<Either<C::Out, C2::Out>>| {
                let (mut lefts, mut rights) = (Vec::new(), Vec::new());
                for x in items {
                    match x {
                        Either::Left(a) => lefts.push(a),
                        Either::Right(b) => rights.push(b),
                    }
                }
                let mut out = Vec::with_capacity(lefts.len() * rights.len());
                for a in &lefts {
                    for b in &rights {
                        out.push(f(k, a, b));
                    }
                }
                out
            },
        )
    }
}

fn ms(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

impl<K, A, B> ConnectedStreams<K, A, B>
where
    K: Hash + Eq + Clone + Send + 'static,
    A: Send + 'static,
    B: Send + 'static,
{
    /// Runs a co-process function over both inputs.
    #[track_caller]
    pub fn process<P: KeyedCoProcessFunction<K, A, B>>(
        self,
        f: P,
    ) -> Stream<impl Chain<Out = P::Out>> {
        self.process_named("co_process".into(), f)
    }

    #[track_caller]
    fn process_named<P: KeyedCoProcessFunction<K, A, B>>(
        self,
        what: String,
        f: P,
    ) -> Stream<impl Chain<Out = P::Out>> {
        let name = OpName::new(&what, Location::caller());
        let f = CoProcess(f, PhantomData);
        self.ex
            .then(name.as_str().to_string(), move |inner| ProcessOp {
                inner,
                f,
                name,
                st: ProcessState::new(),
            })
    }
}

/// The state of an interval join for one key: the records of each side that may still match.
pub struct IntervalState<A, B> {
    left: BTreeMap<Timestamp, Vec<A>>,
    right: BTreeMap<Timestamp, Vec<B>>,
}

impl<A, B> Default for IntervalState<A, B> {
    fn default() -> Self {
        IntervalState {
            left: BTreeMap::new(),
            right: BTreeMap::new(),
        }
    }
}

/// The interval join as a co-process function.
pub struct IntervalJoin<F, A, B> {
    lower: i64,
    upper: i64,
    f: Named<F>,
    _p: PhantomData<fn(A, B)>,
}

impl<F: Clone, A, B> Clone for IntervalJoin<F, A, B> {
    fn clone(&self) -> Self {
        IntervalJoin {
            lower: self.lower,
            upper: self.upper,
            f: self.f.clone(),
            _p: PhantomData,
        }
    }
}

impl<K, A, B, F, R> KeyedCoProcessFunction<K, A, B> for IntervalJoin<F, A, B>
where
    A: Clone + Send + 'static,
    B: Clone + Send + 'static,
    F: FnMut(&K, &A, &B) -> R + Clone + Send + 'static,
    R: Send + 'static,
{
    type State = IntervalState<A, B>;
    type Out = R;

    fn process_left(&mut self, key: &K, a: A, st: &mut Self::State, ctx: &mut Context<'_, R>) {
        let ts = ctx.timestamp();
        if ts <= ctx.current_watermark() {
            return; // late: Flink's interval join drops it
        }
        for (_, bs) in st
            .right
            .range(ts.saturating_add(self.lower)..=ts.saturating_add(self.upper))
        {
            for b in bs {
                let r = crate::chain::guarded!(self.f.name, (self.f.f)(key, &a, b));
                ctx.emit(r);
            }
        }
        st.left.entry(ts).or_default().push(a);
        // Once the watermark passes ts + upper, no later right record can match.
        ctx.register_event_time_timer(ts.saturating_add(self.upper));
    }

    fn process_right(&mut self, key: &K, b: B, st: &mut Self::State, ctx: &mut Context<'_, R>) {
        let ts = ctx.timestamp();
        if ts <= ctx.current_watermark() {
            return;
        }
        for (_, as_) in st
            .left
            .range(ts.saturating_sub(self.upper)..=ts.saturating_sub(self.lower))
        {
            for a in as_ {
                let r = crate::chain::guarded!(self.f.name, (self.f.f)(key, a, &b));
                ctx.emit(r);
            }
        }
        st.right.entry(ts).or_default().push(b);
        // Once the watermark passes ts - lower, no later left record can match.
        ctx.register_event_time_timer(ts.saturating_sub(self.lower));
    }

    fn on_timer(
        &mut self,
        _key: &K,
        now: Timestamp,
        st: &mut Self::State,
        ctx: &mut Context<'_, R>,
    ) {
        let (lower, upper) = (self.lower, self.upper);
        st.left.retain(|&t, _| t.saturating_add(upper) > now);
        st.right.retain(|&t, _| t.saturating_sub(lower) > now);
        if st.left.is_empty() && st.right.is_empty() {
            ctx.clear_state();
        }
    }
}
