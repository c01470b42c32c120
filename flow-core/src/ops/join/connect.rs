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
//!     .from_iter([(1u32, 1_000i64, 'b'), (2, 1_500, 'p')])
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
//! assert_eq!(paid.take(), vec![(1, 'b', 20.0)]);
//! # Ok::<(), flow_core::Error>(())
//! ```
use crate::api::exchange::Exchange;
use crate::api::stream::{KeyedStream, Stream};
use crate::error::Result;
use crate::graph::plan::Partitioning;
use crate::graph::{Ending, OpInfo};
use crate::ops::process::keyed::{Context, KeyedProcess, KeyedProcessFunction};
use crate::ops::side_output::TaggedOutputs;
use crate::record::{Event, Timestamp};
use crate::runtime::exchange::partition::ByPairKey;
use crate::runtime::operator::{Chain, Downstream, Identity};
use crate::runtime::panic::{Named, OpName, PanicGuard};
use crate::runtime::stage::Terminal;
use crate::runtime::task::TaskCx;
pub use either::Either;
use std::hash::Hash;
use std::marker::PhantomData;
use std::panic::Location;

/// A function over two connected keyed inputs that share per-key state and timers (Flink's
/// `KeyedCoProcessFunction`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a keyed co-process function of keys `{K}` and inputs `{A}`, `{B}`",
    label = "expected a `KeyedCoProcessFunction<{K}, {A}, {B}>`",
    note = "implement `KeyedCoProcessFunction<{K}, {A}, {B}>` for a type (with `process_left`, `process_right` and optionally `on_timer`); closures are not co-process functions"
)]
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

// An internal adapter: never suggest it to a user whose type is not a process function.
#[diagnostic::do_not_recommend]
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
    pub(crate) ex: Stream<Identity<(K, Either<A, B>)>>,
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
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// // `Gate`: a co-process function that holds back a key's words (left) until the key is
    /// // enabled (right); see `ConnectedStreams::process`.
    /// # /// Holds back each key's words until the second input enables the key.
    /// # #[derive(Clone)]
    /// # struct Gate;
    /// # impl KeyedCoProcessFunction<u8, (u8, char), u8> for Gate {
    /// #     type State = (bool, Vec<char>); // (enabled, held back)
    /// #     type Out = char;
    /// #     fn process_left(&mut self, _: &u8, w: (u8, char), st: &mut Self::State,
    /// #                     ctx: &mut Context<'_, char>) {
    /// #         if st.0 { ctx.emit(w.1) } else { st.1.push(w.1) }
    /// #     }
    /// #     fn process_right(&mut self, _: &u8, _: u8, st: &mut Self::State,
    /// #                      ctx: &mut Context<'_, char>) {
    /// #         st.0 = true;
    /// #         st.1.drain(..).for_each(|w| ctx.emit(w));
    /// #     }
    /// # }
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let words = env.from_iter([(1, 'a'), (2, 'b'), (1, 'c')]).key_by(|w| w.0);
    /// let enable = env.from_iter([1u8]).key_by(|k| *k);
    /// let out = words.connect(enable).process(Gate).collect();
    /// env.execute()?;
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec!['a', 'c']); // key 2 was never enabled
    /// # Ok::<(), flow_core::Error>(())
    /// ```
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
        let (fa, fb) = (a.feed(), b.feed());
        let (p, key_groups) = {
            let g = a.g.borrow();
            (
                fa.next_parallelism.unwrap_or(g.config.parallelism),
                g.config.max_parallelism,
            )
        };
        let ex = Exchange::<(K, Either<C::Out, C2::Out>)>::new(
            &a.g,
            &[fa, fb],
            Partitioning::Hash { key_groups },
            format!("connect stage {} + stage {} by key", fa.stage, fb.stage),
            p,
            loc,
        );
        let (oa, ob) = (ex.outlets.clone(), ex.outlets.clone());
        let route = move || ByPairKey {
            max_parallelism: key_groups,
        };
        let left = Ending::Exchange(format!("{} (left)", ka.name.as_str()));
        let right = Ending::Exchange(format!("{} (right)", kb.name.as_str()));
        a.finish(left, move |i, _| SideWriter {
            key: ka.clone(),
            wrap: Either::Left,
            writer: oa.writer(i, route()),
            _p: PhantomData,
        });
        let first = fa.parallelism;
        b.finish(right, move |i, _| SideWriter {
            key: kb.clone(),
            wrap: Either::Right,
            writer: ob.writer(first + i, route()),
            _p: PhantomData,
        });
        ConnectedStreams {
            ex: ex.into_stream(),
        }
    }
}

impl<K, A, B> ConnectedStreams<K, A, B>
where
    K: Hash + Eq + Clone + Send + 'static,
    A: Send + 'static,
    B: Send + 'static,
{
    /// Runs a co-process function over both inputs.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// /// Holds back each key's words until the second input enables the key.
    /// #[derive(Clone)]
    /// struct Gate;
    /// impl KeyedCoProcessFunction<u8, (u8, char), u8> for Gate {
    ///     type State = (bool, Vec<char>); // (enabled, held back)
    ///     type Out = char;
    ///     fn process_left(&mut self, _: &u8, w: (u8, char), st: &mut Self::State,
    ///                     ctx: &mut Context<'_, char>) {
    ///         if st.0 { ctx.emit(w.1) } else { st.1.push(w.1) }
    ///     }
    ///     fn process_right(&mut self, _: &u8, _: u8, st: &mut Self::State,
    ///                      ctx: &mut Context<'_, char>) {
    ///         st.0 = true;
    ///         st.1.drain(..).for_each(|w| ctx.emit(w));
    ///     }
    /// }
    ///
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let words = env.from_iter([(1, 'a'), (2, 'b'), (1, 'c')]).key_by(|w| w.0);
    /// let enable = env.from_iter([1u8]).key_by(|k| *k);
    /// let out = words.connect(enable).process(Gate).collect();
    /// env.execute()?;
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec!['a', 'c']); // key 2 was never enabled
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    ///
    /// With checkpoints, the function's per-key state and timers are checkpointed like a
    /// keyed process function's: keys and state need serde's traits.
    #[track_caller]
    pub fn process<P>(self, f: P) -> Stream<impl Chain<Out = P::Out>>
    where
        K: crate::ops::StateKey,
        P: KeyedCoProcessFunction<K, A, B>,
        P::State: serde::Serialize + serde::de::DeserializeOwned,
    {
        self.process_named(
            "co_process",
            None,
            f,
            Some((
                crate::runtime::snapshot::Codec::serde(),
                crate::runtime::snapshot::Codec::serde(),
            )),
        )
    }

    /// Runs `f` as operator `kind`; `codec` makes its state checkpointable.
    #[track_caller]
    pub(crate) fn process_named<P: KeyedCoProcessFunction<K, A, B>>(
        self,
        kind: &str,
        detail: Option<String>,
        f: P,
        codec: Option<crate::ops::process::keyed::ProcessCodec<K, P::State>>,
    ) -> Stream<impl Chain<Out = P::Out>> {
        let name = OpName::new(kind, Location::caller());
        let info = match detail {
            Some(d) => OpInfo::with_detail(&name, d),
            None => OpInfo::new(&name),
        };
        let side = TaggedOutputs::for_next_operator(&self.ex);
        self.ex.then(
            info,
            KeyedProcess::with_side_outputs(CoProcess(f, PhantomData), name, side)
                .with_codec(codec),
        )
    }
}
