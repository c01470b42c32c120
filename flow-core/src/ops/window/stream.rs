//! The windowing API: `window` on keyed streams, `window_all` on non-keyed ones, and the
//! window functions that finish a [`WindowedStream`].
//!
//! ```
//! use flow_core::prelude::*;
//! use std::time::Duration;
//!
//! let mut env = Env::new(Config::default().parallelism(2));
//! let sums = env
//!     .from_iter([('a', 1_000, 1), ('a', 1_500, 2), ('b', 1_200, 5), ('a', 2_100, 7)])
//!     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
//!     .key_by(|e| e.0)
//!     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
//!     .sum(|e| e.2)
//!     .map(|w| (w.key, w.window.start, w.value))
//!     .collect();
//! env.execute()?;
//! let mut got = sums.take();
//! got.sort();
//! assert_eq!(got, [('a', 1_000, 3), ('a', 2_000, 7), ('b', 1_000, 5)]);
//! # Ok::<(), flow_core::Error>(())
//! ```
use super::assigners::{WindowInfo, WindowSpec};
use super::functions::{
    AggregateProcessWindow, AggregateWindow, ProcessWindow, ProcessWindowWithContext,
    WindowContext, WindowFn,
};
use super::operator::WindowCodec;
use super::operator::{WindowChain, WindowOp};
use crate::api::exchange::{exchange_by_key, exchange_to_one, side_stream};
use crate::api::stream::{KeyedStream, Stream};
use crate::graph::OpInfo;
use crate::ops::aggregate::{Aggregate, Count, Extreme, ExtremeBy, Reduce, Sum};
use crate::ops::side_output::{SideOutput, TaggedOutputs};
use crate::ops::{StateKey, StateValue};
use crate::runtime::operator::{Chain, Identity};
use crate::runtime::panic::{Named, OpName};
use crate::runtime::snapshot::Codec;
use std::hash::Hash;
use std::panic::Location;
use std::time::Duration;

impl<C: Chain> Stream<C> {
    /// Windows over the whole (non-keyed) stream: all records go to one subtask, as in Flink.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let sums = env
    ///     .from_iter([(100, 1), (600, 2), (1_100, 3)])
    ///     .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
    ///     .window_all(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .sum(|e| e.1)
    ///     .map(|w| (w.window.start, w.value))
    ///     .collect();
    /// env.execute()?;
    /// let mut got = sums.take();
    /// got.sort();
    /// assert_eq!(got, vec![(0, 3), (1_000, 3)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn window_all(self, spec: impl Into<WindowSpec>) -> WindowedStream<(), C::Out>
    where
        C::Out: Clone,
    {
        let loc = Location::caller();
        let key = Named {
            f: |_: &C::Out| (),
            name: OpName::new("window_all", loc),
        };
        WindowedStream::from_exchange(exchange_to_one(self, loc, key), spec.into())
    }
}

/// A keyed stream cut into windows; finish it with a window function.
///
/// The key-group exchange has already been set up; the window operator and its function
/// are the next operators of the stage after it.
#[must_use = "a windowed stream does nothing until a window function is applied"]
pub struct WindowedStream<K: Send + 'static, T: Send + 'static> {
    pub(super) ex: Stream<Identity<(K, T)>>,
    pub(super) spec: WindowSpec,
    pub(super) lateness: i64,
    pub(super) late: SideOutput<T>,
}

impl<C, K, KF> KeyedStream<C, KF>
where
    C: Chain,
    C::Out: Clone,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    /// Groups each key's records into windows (tumbling, sliding, session or count).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let sums = env
    ///     .from_iter([('a', 1), ('b', 2), ('a', 3), ('a', 5)])
    ///     .key_by(|e| e.0)
    ///     .window(CountWindows::of(2)) // every 2 records of a key: no timestamps needed
    ///     .sum(|e| e.1)
    ///     .map(|w| (w.key, w.value))
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(sums.take(), vec![('a', 4)]); // partial count windows never fire
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn window(self, spec: impl Into<WindowSpec>) -> WindowedStream<K, C::Out> {
        let loc = Location::caller();
        let KeyedStream { stream, key } = self;
        let ex = exchange_by_key(stream, loc, key);
        WindowedStream::from_exchange(ex, spec.into())
    }
}

impl<K, T> WindowedStream<K, T>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
{
    /// Windows over the `(key, record)` pairs of a key-group exchange.
    pub(crate) fn from_exchange(ex: Stream<Identity<(K, T)>>, spec: WindowSpec) -> Self {
        WindowedStream {
            ex,
            spec,
            lateness: 0,
            late: SideOutput::none(),
        }
    }

    /// Keeps each window's state for `d` after it fired; records arriving in that time
    /// re-fire the window (Flink's `allowedLateness`).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// // One record per batch: a watermark follows every record.
    /// let mut env = Env::new(Config::default().parallelism(1).batch_size(1));
    /// let counts = env
    ///     .from_iter([(1_000, "a"), (3_000, "b"), (1_500, "late")])
    ///     .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
    ///     .key_by(|_| 0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .allowed_lateness(Duration::from_secs(5))
    ///     .count()
    ///     .map(|w| (w.window.start, w.value))
    ///     .collect();
    /// env.execute()?;
    /// // [1000, 2000) fired when the watermark passed it, and again for the late record
    /// assert_eq!(counts.take(), vec![(1_000, 1), (1_000, 2), (3_000, 1)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn allowed_lateness(mut self, d: Duration) -> Self {
        self.lateness = d.as_millis().min(i64::MAX as u128) as i64;
        self
    }

    /// The records that arrive after their windows closed, as a stream of their own (Flink's
    /// `sideOutputLateData`). Without it, late records are only counted in the job summary.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// // One record per batch: a watermark follows every record.
    /// let mut env = Env::new(Config::default().parallelism(1).batch_size(1));
    /// let mut windowed = env
    ///     .from_iter([(1_000, "a"), (3_000, "b"), (1_500, "late")])
    ///     .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
    ///     .key_by(|_| 0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)));
    /// let late = windowed.late_records().collect();
    /// let counts = windowed.count().collect();
    /// env.execute()?;
    /// assert_eq!(late.take(), vec![(1_500, "late")]);
    /// assert_eq!(counts.take().len(), 2);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn late_records(&mut self) -> Stream<Identity<T>> {
        let (outlets, stream) = side_stream(&self.ex, Location::caller(), "late records");
        self.late = SideOutput::new(outlets);
        stream
    }

    /// Aggregates each window with an [`Aggregate`]: `Windowed { key, window, value }`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// use flow_core::ops::aggregate::Count;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let counts = env
    ///     .from_iter([('a', 100), ('a', 700), ('b', 800), ('a', 1_300)])
    ///     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///     .key_by(|e| e.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .aggregate(Count)
    ///     .map(|w| (w.key, w.window.start, w.value))
    ///     .collect();
    /// env.execute()?;
    /// let mut got = counts.take();
    /// got.sort();
    /// assert_eq!(got, vec![('a', 0, 2), ('a', 1_000, 1), ('b', 0, 1)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn aggregate<A>(self, agg: A) -> Stream<WindowChain<K, T, AggregateWindow<A>>>
    where
        K: StateKey,
        A: Aggregate<T>,
        A::Acc: StateValue,
    {
        self.apply_persisted("aggregate", AggregateWindow(agg))
    }

    /// Counts each window's records.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let sessions = env
    ///     .from_iter([('u', 0), ('u', 500), ('u', 3_000)])
    ///     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///     .key_by(|e| e.0)
    ///     .window(EventTimeSessionWindows::with_gap(Duration::from_secs(1)))
    ///     .count()
    ///     .map(|w| (w.window.start, w.window.end, w.value))
    ///     .collect();
    /// env.execute()?;
    /// let mut got = sessions.take();
    /// got.sort();
    /// assert_eq!(got, vec![(0, 1_500, 2), (3_000, 4_000, 1)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn count(self) -> Stream<WindowChain<K, T, AggregateWindow<Count>>>
    where
        K: StateKey,
    {
        self.apply_persisted("count", AggregateWindow(Count))
    }

    /// Sums `f(record)` over each window.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let sums = env
    ///     .from_iter([(500, 1), (1_500, 10)])
    ///     .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
    ///     .key_by(|_| 0)
    ///     .window(SlidingEventTimeWindows::of(Duration::from_secs(2), Duration::from_secs(1)))
    ///     .sum(|e| e.1)
    ///     .map(|w| (w.window.start, w.value))
    ///     .collect();
    /// env.execute()?;
    /// let mut got = sums.take();
    /// got.sort();
    /// assert_eq!(got, vec![(-1_000, 1), (0, 11), (1_000, 10)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn sum<S, F>(self, f: F) -> Stream<WindowChain<K, T, AggregateWindow<Sum<F>>>>
    where
        F: FnMut(&T) -> S + Clone + Send + 'static,
        S: std::ops::AddAssign + StateValue,
        K: StateKey,
    {
        let name = OpName::new("sum", Location::caller());
        self.apply_persisted("sum", AggregateWindow(Sum(Named { f, name })))
    }

    /// The largest `f(record)` of each window.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let maxima = env
    ///     .from_iter([3, 9, 4, 1, 7])
    ///     .key_by(|_| 0)
    ///     .window(CountWindows::of(2))
    ///     .max(|x| *x)
    ///     .map(|w| w.value)
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(maxima.take(), vec![9, 4]); // the lone 7 never fills a window
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn max<V, F>(self, f: F) -> Stream<WindowChain<K, T, AggregateWindow<Extreme<F, true>>>>
    where
        F: FnMut(&T) -> V + Clone + Send + 'static,
        V: PartialOrd + StateValue,
        K: StateKey,
    {
        let name = OpName::new("max", Location::caller());
        self.apply_persisted(
            "max",
            AggregateWindow(Extreme::<F, true>(Named { f, name })),
        )
    }

    /// The smallest `f(record)` of each window (the earlier value on ties).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let minima = env
    ///     .from_iter([3, 9, 4, 1, 7])
    ///     .key_by(|_| 0)
    ///     .window(CountWindows::of(2))
    ///     .min(|x| *x)
    ///     .map(|w| w.value)
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(minima.take(), vec![3, 1]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn min<V, F>(self, f: F) -> Stream<WindowChain<K, T, AggregateWindow<Extreme<F, false>>>>
    where
        F: FnMut(&T) -> V + Clone + Send + 'static,
        V: PartialOrd + StateValue,
        K: StateKey,
    {
        let name = OpName::new("min", Location::caller());
        self.apply_persisted(
            "min",
            AggregateWindow(Extreme::<F, false>(Named { f, name })),
        )
    }

    /// The record of each window with the smallest `f(record)` (the first such record on
    /// ties).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let cheapest = env
    ///     .from_iter([('a', 3), ('b', 1), ('c', 1), ('d', 5)])
    ///     .key_by(|_| 0)
    ///     .window(CountWindows::of(2))
    ///     .min_by(|r| r.1)
    ///     .map(|w| w.value.0)
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(cheapest.take(), vec!['b', 'c']);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn min_by<V, F>(
        self,
        f: F,
    ) -> Stream<WindowChain<K, T, AggregateWindow<ExtremeBy<F, false>>>>
    where
        F: FnMut(&T) -> V + Clone + Send + 'static,
        V: PartialOrd,
        T: StateValue,
        K: StateKey,
    {
        let name = OpName::new("min_by", Location::caller());
        self.apply_persisted_records(
            "min_by",
            AggregateWindow(ExtremeBy::<F, false>(Named { f, name })),
        )
    }

    /// The record of each window with the largest `f(record)` (the first such record on
    /// ties).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let top = env
    ///     .from_iter([('a', 3), ('b', 3), ('c', 1), ('d', 5)])
    ///     .key_by(|_| 0)
    ///     .window(CountWindows::of(2))
    ///     .max_by(|r| r.1)
    ///     .map(|w| w.value.0)
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(top.take(), vec!['a', 'd']);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn max_by<V, F>(
        self,
        f: F,
    ) -> Stream<WindowChain<K, T, AggregateWindow<ExtremeBy<F, true>>>>
    where
        F: FnMut(&T) -> V + Clone + Send + 'static,
        V: PartialOrd,
        T: StateValue,
        K: StateKey,
    {
        let name = OpName::new("max_by", Location::caller());
        self.apply_persisted_records(
            "max_by",
            AggregateWindow(ExtremeBy::<F, true>(Named { f, name })),
        )
    }

    /// Combines each window's records with an associative function.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let products = env
    ///     .from_iter([('x', 2), ('y', 4), ('x', 3), ('y', 5)])
    ///     .key_by(|e| e.0)
    ///     .window(CountWindows::of(2))
    ///     .reduce(|a, b| (a.0, a.1 * b.1))
    ///     .map(|w| w.value)
    ///     .collect();
    /// env.execute()?;
    /// let mut got = products.take();
    /// got.sort();
    /// assert_eq!(got, vec![('x', 6), ('y', 20)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn reduce<F>(self, f: F) -> Stream<WindowChain<K, T, AggregateWindow<Reduce<F>>>>
    where
        F: FnMut(T, T) -> T + Clone + Send + 'static,
        T: StateValue,
        K: StateKey,
    {
        let name = OpName::new("reduce", Location::caller());
        self.apply_persisted_records("reduce", AggregateWindow(Reduce(Named { f, name })))
    }

    /// Hands all records of a firing window, with its bounds and the watermark, to `f`
    /// (Flink's `ProcessWindowFunction`); `f` returns any number of results.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let letters = env
    ///     .from_iter([('a', 100, 'x'), ('a', 300, 'y'), ('b', 200, 'z'), ('a', 1_100, 'w')])
    ///     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///     .key_by(|e| e.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .process(|key, info, items| {
    ///         let letters: String = items.iter().map(|e| e.2).collect();
    ///         [(*key, info.window.start, letters)]
    ///     })
    ///     .collect();
    /// env.execute()?;
    /// let mut got = letters.take();
    /// got.sort();
    /// let got: Vec<_> = got.iter().map(|(k, t, s)| (*k, *t, s.as_str())).collect();
    /// assert_eq!(got, [('a', 0, "xy"), ('a', 1_000, "w"), ('b', 0, "z")]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn process<F, I>(self, f: F) -> Stream<WindowChain<K, T, ProcessWindow<F>>>
    where
        F: FnMut(&K, &WindowInfo, Vec<T>) -> I + Clone + Send + 'static,
        I: IntoIterator,
        I::Item: Send + 'static,
        T: StateValue,
        K: StateKey,
    {
        let name = OpName::new("process", Location::caller());
        self.apply_persisted_records("process", ProcessWindow { f, name })
    }

    /// All records of a window handed to `f` with a [`WindowContext`], through which it emits
    /// results and sends records to side outputs
    /// ([`OutputTag`](crate::ops::side_output::OutputTag)s, taken from the result stream
    /// with [`Stream::side_output`]). Results and side records carry the window's timestamp.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let sparse = OutputTag::<(char, i64)>::new("sparse");
    /// let tag = sparse.clone();
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let busy = env
    ///     .from_iter([('a', 100), ('a', 300), ('b', 200), ('a', 1_100)])
    ///     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///     .key_by(|e| e.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .process_with_context(
    ///         move |key: &char, info: &WindowInfo, items: Vec<(char, i64)>,
    ///               ctx: &mut WindowContext<'_, (char, i64, usize)>| {
    ///             if items.len() > 1 {
    ///                 ctx.emit((*key, info.window.start, items.len()));
    ///             } else {
    ///                 ctx.output(&tag, (*key, info.window.start));
    ///             }
    ///         },
    ///     );
    /// let sparse = busy.side_output(&sparse).collect();
    /// let busy = busy.collect();
    /// env.execute()?;
    /// let mut s = sparse.take();
    /// s.sort();
    /// assert_eq!(busy.take(), [('a', 0, 2)]);
    /// assert_eq!(s, [('a', 1_000), ('b', 0)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn process_with_context<F, O>(
        self,
        f: F,
    ) -> Stream<WindowChain<K, T, ProcessWindowWithContext<F, O>>>
    where
        F: for<'x> FnMut(&K, &WindowInfo, Vec<T>, &mut WindowContext<'x, O>)
            + Clone
            + Send
            + 'static,
        O: Send + 'static,
        T: StateValue,
        K: StateKey,
    {
        let name = OpName::new("process", Location::caller());
        self.apply_persisted_records(
            "process",
            ProcessWindowWithContext {
                f,
                name,
                _out: std::marker::PhantomData,
            },
        )
    }

    /// An incremental aggregate whose result `f` turns into the output, with the window's
    /// context (Flink's `aggregate(AggregateFunction, ProcessWindowFunction)`).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// use flow_core::ops::aggregate::Count;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let lines = env
    ///     .from_iter([('a', 100), ('a', 900), ('b', 1_500)])
    ///     .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    ///     .key_by(|e| e.0)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    ///     .aggregate_process(Count, |key, info, n| format!("{key}@{}: {n}", info.window.start))
    ///     .collect();
    /// env.execute()?;
    /// let mut got = lines.take();
    /// got.sort();
    /// assert_eq!(got, vec!["a@0: 2", "b@1000: 1"]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn aggregate_process<A, F, R>(
        self,
        agg: A,
        f: F,
    ) -> Stream<WindowChain<K, T, AggregateProcessWindow<A, F>>>
    where
        A: Aggregate<T>,
        A::Acc: StateValue,
        K: StateKey,
        F: FnMut(&K, &WindowInfo, A::Out) -> R + Clone + Send + 'static,
        R: Send + 'static,
    {
        let name = OpName::new("process", Location::caller());
        self.apply_persisted("aggregate_process", AggregateProcessWindow { agg, f, name })
    }

    /// [`Self::apply`] with the serde codecs of the key and the window state.
    #[track_caller]
    fn apply_persisted<F>(self, kind: &str, func: F) -> Stream<WindowChain<K, T, F>>
    where
        K: StateKey,
        F: WindowFn<K, T>,
        F::State: StateValue,
    {
        self.apply(kind, func, Some((Codec::serde(), Codec::serde())), None)
    }

    /// [`Self::apply_persisted`] for window functions whose records have serde's traits too,
    /// so that the records sliding count windows keep are checkpointed.
    #[track_caller]
    fn apply_persisted_records<F>(self, kind: &str, func: F) -> Stream<WindowChain<K, T, F>>
    where
        K: StateKey,
        T: StateValue,
        F: WindowFn<K, T>,
        F::State: StateValue,
    {
        self.apply(
            kind,
            func,
            Some((Codec::serde(), Codec::serde())),
            Some(Codec::serde()),
        )
    }

    /// Applies window function `func`; `codec` encodes keys and window state for checkpoints
    /// (without it, a job with checkpoints refuses to start), `records` the records that
    /// sliding count windows keep.
    #[track_caller]
    pub(crate) fn apply<F: WindowFn<K, T>>(
        self,
        kind: &str,
        func: F,
        codec: Option<WindowCodec<K, F::State>>,
        records: Option<Codec<T>>,
    ) -> Stream<WindowChain<K, T, F>> {
        let name = OpName::new(kind, Location::caller());
        let WindowedStream {
            ex,
            spec,
            lateness,
            late,
        } = self;
        let detail = format!(
            "{}{}",
            spec.describe(),
            if lateness > 0 {
                format!(", lateness {lateness} ms")
            } else {
                String::new()
            }
        );
        let metrics = ex.input.slot.metrics.clone();
        let side = TaggedOutputs::for_next_operator(&ex);
        ex.then(
            OpInfo::with_detail(&name, detail),
            WindowOp::new(spec, func, lateness, metrics, late, side)
                .with_codec(codec)
                .with_records(records),
        )
    }
}
