//! Non-keyed `connect`: two streams of different types into one stage, processed by a pair
//! of functions (Flink's `CoMapFunction` / `CoFlatMapFunction`).
use super::connect::Either;
use crate::api::exchange::Exchange;
use crate::api::stream::Stream;
use crate::error::Result;
use crate::graph::plan::Partitioning;
use crate::graph::Ending;
use crate::record::{Event, Timestamp};
use crate::runtime::exchange::partition::RoundRobin;
use crate::runtime::operator::{Chain, Downstream, Identity};
use crate::runtime::stage::Terminal;
use crate::runtime::task::TaskCx;
use std::marker::PhantomData;
use std::panic::Location;

/// Two streams connected into one stage; finish them with [`CoStreams::map`] or
/// [`CoStreams::flat_map`], or take the [`Either`] records with [`CoStreams::into_either`].
#[must_use = "connected streams do nothing until processed"]
pub struct CoStreams<A: Send + 'static, B: Send + 'static> {
    ex: Stream<Identity<Either<A, B>>>,
}

/// The terminal of one side: wraps each record and writes it into the exchange.
struct Wrap<T, WF, W> {
    wrap: WF,
    writer: W,
    _p: PhantomData<fn(T)>,
}

impl<T, V, WF: FnMut(T) -> V, W: Downstream<V>> Downstream<T> for Wrap<T, WF, W> {
    #[inline]
    fn emit(&mut self, item: T, ts: Timestamp) {
        self.writer.emit((self.wrap)(item), ts)
    }
    fn event(&mut self, event: Event) {
        self.writer.event(event)
    }
}

impl<T: Send, V, WF: FnMut(T) -> V + Send, W: Terminal<V>> Terminal<T> for Wrap<T, WF, W> {
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        self.writer.drain(cx)
    }
}

impl<C: Chain> Stream<C> {
    /// Connects this stream with another of any record type into one stage, records of both
    /// spread round-robin over its subtasks; its watermark is the minimum of both.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let numbers = env.from_iter([1, 2]);
    /// let words = env.from_iter(["three"]);
    /// let out = numbers.connect(words).map(|n| n.to_string(), |w| w.to_uppercase()).collect();
    /// env.execute()?;
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec!["1", "2", "THREE"]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn connect<C2: Chain>(self, other: Stream<C2>) -> CoStreams<C::Out, C2::Out> {
        let (fa, fb) = (self.feed(), other.feed());
        let p = self.g.borrow().config.parallelism;
        let ex = Exchange::<Either<C::Out, C2::Out>>::new(
            &self.g,
            &[fa, fb],
            Partitioning::RoundRobin,
            format!("connect stage {} + stage {}", fa.stage, fb.stage),
            p,
            Location::caller(),
        );
        let (oa, ob) = (ex.outlets.clone(), ex.outlets.clone());
        self.finish(Ending::Exchange("connect (left)".into()), move |i, _| {
            Wrap {
                wrap: Either::Left,
                writer: oa.writer(i, RoundRobin(i)),
                _p: PhantomData,
            }
        });
        let first = fa.parallelism;
        other.finish(Ending::Exchange("connect (right)".into()), move |i, _| {
            Wrap {
                wrap: Either::Right,
                writer: ob.writer(first + i, RoundRobin(first + i)),
                _p: PhantomData,
            }
        });
        CoStreams {
            ex: ex.into_stream(),
        }
    }
}

impl<A: Send + 'static, B: Send + 'static> CoStreams<A, B> {
    /// Maps the first stream's records with `fa` and the second's with `fb` into one stream.
    #[track_caller]
    pub fn map<O, FA, FB>(self, mut fa: FA, mut fb: FB) -> Stream<impl Chain<Out = O>>
    where
        O: Send + 'static,
        FA: FnMut(A) -> O + Clone + Send + 'static,
        FB: FnMut(B) -> O + Clone + Send + 'static,
    {
        self.ex.map(move |e| match e {
            Either::Left(a) => fa(a),
            Either::Right(b) => fb(b),
        })
    }

    /// Maps each record of either stream to any number of records.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let lines = env.from_iter(["a b"]);
    /// let counts = env.from_iter([2u32]);
    /// let out = lines
    ///     .connect(counts)
    ///     .flat_map(
    ///         |l| l.split(' ').map(str::to_string).collect::<Vec<_>>(),
    ///         |n| (0..n).map(|i| i.to_string()).collect(),
    ///     )
    ///     .collect();
    /// env.execute()?;
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec!["0", "1", "a", "b"]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn flat_map<I, FA, FB>(self, mut fa: FA, mut fb: FB) -> Stream<impl Chain<Out = I::Item>>
    where
        I: IntoIterator + 'static,
        I::Item: Send + 'static,
        FA: FnMut(A) -> I + Clone + Send + 'static,
        FB: FnMut(B) -> I + Clone + Send + 'static,
    {
        self.ex.flat_map(move |e| match e {
            Either::Left(a) => fa(a),
            Either::Right(b) => fb(b),
        })
    }

    /// The records of both streams as one stream of [`Either`], for any other operator.
    pub fn into_either(self) -> Stream<Identity<Either<A, B>>> {
        self.ex
    }
}
