//! Repartitioning without a key: `rebalance` (round-robin) and `union`.
use crate::api::exchange::Exchange;
use crate::api::stream::Stream;
use crate::graph::plan::Partitioning;
use crate::graph::Ending;
use crate::runtime::exchange::partition::RoundRobin;
use crate::runtime::operator::{Chain, Identity};
use std::panic::Location;

impl<C: Chain> Stream<C> {
    /// Redistributes records round-robin over the next stage's subtasks (evens out skew).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let out = env.from_iter(0..100).rebalance().map(|x| x * 2).collect();
    /// env.execute()?;
    /// assert_eq!(out.take().len(), 100);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn rebalance(self) -> Stream<Identity<C::Out>> {
        let feed = self.feed();
        let p = self.g.borrow().config.parallelism;
        let ex = Exchange::new(
            &self.g,
            &[feed],
            Partitioning::RoundRobin,
            format!("from stage {} round-robin", feed.stage),
            p,
            Location::caller(),
        );
        let outlets = ex.outlets.clone();
        self.finish(Ending::Exchange("rebalance".into()), move |i, _| {
            outlets.writer(i, RoundRobin(i))
        });
        ex.into_stream()
    }

    /// Merges this stream with another stream of the same record type.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let a = env.from_iter(1..=3);
    /// let b = env.from_iter(10..=11).map(|x| x * 2);
    /// let out = a.union(b).collect();
    /// env.execute()?;
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, vec![1, 2, 3, 20, 22]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn union<C2: Chain<Out = C::Out>>(self, other: Stream<C2>) -> Stream<Identity<C::Out>> {
        let (a, b) = (self.feed(), other.feed());
        let p = self.g.borrow().config.parallelism;
        let ex = Exchange::new(
            &self.g,
            &[a, b],
            Partitioning::RoundRobin,
            format!("union of stage {} and stage {}", a.stage, b.stage),
            p,
            Location::caller(),
        );
        let (oa, ob) = (ex.outlets.clone(), ex.outlets.clone());
        self.finish(Ending::Exchange("union".into()), move |i, _| {
            oa.writer(i, RoundRobin(i))
        });
        let first = a.parallelism;
        other.finish(Ending::Exchange("union".into()), move |i, _| {
            ob.writer(first + i, RoundRobin(first + i))
        });
        ex.into_stream()
    }
}
