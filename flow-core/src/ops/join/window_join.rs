//! Window joins: the records of two keyed streams with equal keys that fall into the same
//! window, paired (Flink's window join).
use super::connect::Either;
use crate::api::stream::{KeyedStream, Stream};
use crate::ops::window::functions::ProcessWindow;
use crate::ops::window::{WindowInfo, WindowSpec, WindowedStream};
use crate::runtime::operator::Chain;
use crate::runtime::panic::OpName;
use std::hash::Hash;

impl<C, K, KF> KeyedStream<C, KF>
where
    C: Chain,
    KF: FnMut(&C::Out) -> K + Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
{
    /// Joins the records of both streams with equal keys that fall into the same window
    /// (Flink's window join): `f` runs for every pair of the window's left and right records.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let views = env
    ///     .from_iter([("ad1", 100), ("ad1", 1_200)])
    ///     .assign_timestamps(|v| v.1, WatermarkStrategy::monotonous())
    ///     .key_by(|v| v.0);
    /// let clicks = env
    ///     .from_iter([("ad1", 300)])
    ///     .assign_timestamps(|c| c.1, WatermarkStrategy::monotonous())
    ///     .key_by(|c| c.0);
    /// let second = TumblingEventTimeWindows::of(Duration::from_secs(1));
    /// let pairs = views.window_join(clicks, second, |ad, v, c| (*ad, v.1, c.1)).collect();
    /// env.execute()?;
    /// // the view at 1_200 falls into the next window, which has no click
    /// assert_eq!(pairs.take(), vec![("ad1", 100, 300)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
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
        let windowed = WindowedStream::from_exchange(connected.ex, spec.into());
        let mut f = f;
        let name = OpName::new("window_join", std::panic::Location::caller());
        let join = move |k: &K, _info: &WindowInfo, items: Vec<Either<C::Out, C2::Out>>| {
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
        };
        // Window-join buffers are not checkpointed yet (no codec).
        windowed.apply("window_join", ProcessWindow { f: join, name }, None)
    }
}
