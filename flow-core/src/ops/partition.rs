//! Repartitioning without a key: `rebalance`, `shuffle`, `rescale`, `forward`, `global`,
//! `broadcast`, `partition_custom`, and `union`.
use crate::api::exchange::Exchange;
use crate::api::stream::Stream;
use crate::graph::plan::Partitioning;
use crate::graph::Ending;
use crate::runtime::exchange::partition::{
    Custom, Forward, Partitioner, Rescale, RoundRobin, Shuffle,
};
use crate::runtime::exchange::BroadcastWriter;
use crate::runtime::operator::{Chain, Identity};
use crate::runtime::panic::{Named, OpName};
use std::panic::Location;

impl<C: Chain> Stream<C> {
    /// Ends the stream in an exchange into a new stage of `parallelism` subtasks whose
    /// producer `i` routes with `make(i, producers, consumers)`.
    fn repartition<P, MP>(
        self,
        how: Partitioning,
        by: &str,
        parallelism: usize,
        loc: &'static Location<'static>,
        mut make: MP,
    ) -> Stream<Identity<C::Out>>
    where
        P: Partitioner<C::Out> + 'static,
        MP: FnMut(usize, usize, usize) -> P + 'static,
    {
        let feed = self.feed();
        let ex = Exchange::new(
            &self.g,
            &[feed],
            how,
            format!("from stage {} by {by}", feed.stage),
            parallelism,
            loc,
        );
        let outlets = ex.outlets.clone();
        let producers = feed.parallelism;
        self.finish(Ending::Exchange(by.into()), move |i, _| {
            outlets.writer(i, make(i, producers, parallelism))
        });
        ex.into_stream()
    }

    /// A new stage of `n` subtasks, each producer feeding its own share of them round-robin.
    fn rescale_into(
        self,
        n: usize,
        by: &str,
        loc: &'static Location<'static>,
    ) -> Stream<Identity<C::Out>> {
        self.repartition(Partitioning::Rescale, by, n, loc, |i, up, down| {
            let (lo, hi) = if down >= up {
                (i * down / up, (i + 1) * down / up)
            } else {
                let t = i * down / up;
                (t, t + 1)
            };
            Rescale { lo, hi, next: 0 }
        })
    }

    fn job_parallelism(&self) -> usize {
        self.g.borrow().config.parallelism
    }

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
        let p = self.job_parallelism();
        self.repartition(
            Partitioning::RoundRobin,
            "rebalance",
            p,
            Location::caller(),
            |i, _, _| RoundRobin(i),
        )
    }

    /// Sends each record to a next-stage subtask chosen at random (Flink's `shuffle`); the
    /// choices are seeded, so a run is reproducible.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let out = env.from_iter(0..100).shuffle().collect();
    /// env.execute()?;
    /// let mut got = out.take();
    /// got.sort();
    /// assert_eq!(got, (0..100).collect::<Vec<_>>());
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn shuffle(self) -> Stream<Identity<C::Out>> {
        let p = self.job_parallelism();
        self.repartition(
            Partitioning::Shuffle,
            "shuffle",
            p,
            Location::caller(),
            |i, _, _| Shuffle(0x5EED_0000 + i as u64),
        )
    }

    /// Round-robin from each subtask to its share of the next stage's subtasks (Flink's
    /// `rescale`): with equal parallelism subtask `i` feeds subtask `i`; with more consumers
    /// than producers each producer feeds its own group of consumers; with fewer, groups of
    /// producers feed one consumer. Cheaper than `rebalance` when parallelism changes.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(3));
    /// // one source subtask feeds all three subtasks of the next stage
    /// let out = env.from_iter(0..9).rescale().map(|x| x + 1).collect();
    /// env.execute()?;
    /// assert_eq!(out.take().len(), 9);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn rescale(self) -> Stream<Identity<C::Out>> {
        let p = self.job_parallelism();
        self.rescale_into(p, "rescale", Location::caller())
    }

    /// Keeps each record in the subtask that produced it: the next stage has the same
    /// parallelism as this one and subtask `i` feeds subtask `i` (Flink's `forward`). Ends
    /// the fused chain without moving records between subtasks.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let stream = env.from_vec((0..10).collect()).forward();
    /// assert_eq!(env.plan().stages[1].parallelism, 2);
    /// let out = stream.collect();
    /// env.execute()?;
    /// assert_eq!(out.take().len(), 10);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn forward(self) -> Stream<Identity<C::Out>> {
        let p = self.feed().parallelism;
        let how = Partitioning::Forward {
            what: "forward".into(),
        };
        self.repartition(how, "forward", p, Location::caller(), |i, _, _| Forward(i))
    }

    /// Runs the operators after this point in `n` subtasks: flow fuses the operators of a
    /// stage, so a change of parallelism ends the stage here and a new one of `n` subtasks
    /// continues, fed with [`Stream::rescale`]'s routing. (For a keyed operator, set it on
    /// the keyed stream: [`crate::KeyedStream::parallelism`].)
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let out = env.from_vec((0..10).collect()).parallelism(1).map(|x| x * 2).collect();
    /// assert_eq!(env.plan().stages[1].parallelism, 1);
    /// env.execute()?;
    /// assert_eq!(out.take().len(), 10);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn parallelism(self, n: usize) -> Stream<Identity<C::Out>> {
        let n = n.max(1);
        self.rescale_into(n, "parallelism", Location::caller())
    }

    /// Sends every record to a single subtask (Flink's `global`): the next stage has one.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let stream = env.from_vec((0..10).collect()).global();
    /// assert_eq!(env.plan().stages[1].parallelism, 1);
    /// let out = stream.collect();
    /// env.execute()?;
    /// assert_eq!(out.take().len(), 10);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn global(self) -> Stream<Identity<C::Out>> {
        self.repartition(
            Partitioning::Single,
            "global",
            1,
            Location::caller(),
            |_, _, _| Forward(0),
        )
    }

    /// Routes each record to subtask `f(record, n) % n` of the next stage's `n` (Flink's
    /// `partitionCustom`).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let out = env
    ///     .from_iter(0u32..10)
    ///     .partition_custom(|x, n| *x as usize % n)
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(out.take().len(), 10);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn partition_custom<F>(self, f: F) -> Stream<Identity<C::Out>>
    where
        F: FnMut(&C::Out, usize) -> usize + Clone + Send + 'static,
    {
        let loc = Location::caller();
        let p = self.job_parallelism();
        let name = OpName::new("partition_custom", loc);
        self.repartition(
            Partitioning::Custom,
            "partition_custom",
            p,
            loc,
            move |_, _, _| {
                Custom(Named {
                    f: f.clone(),
                    name: name.clone(),
                })
            },
        )
    }

    /// Sends every record to every subtask of the next stage (Flink's `broadcast`).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(3));
    /// let out = env.from_iter(["rule"]).broadcast().collect();
    /// env.execute()?;
    /// assert_eq!(out.take(), vec!["rule"; 3]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn broadcast(self) -> Stream<Identity<C::Out>>
    where
        C::Out: Clone,
    {
        let feed = self.feed();
        let p = self.job_parallelism();
        let ex = Exchange::new(
            &self.g,
            &[feed],
            Partitioning::Broadcast,
            format!("from stage {} by broadcast", feed.stage),
            p,
            Location::caller(),
        );
        let outlets = ex.outlets.clone();
        self.finish(Ending::Exchange("broadcast".into()), move |i, _| {
            BroadcastWriter(outlets.writer(i, Forward(0)))
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
