//! Fan-out: one stream feeding several consumers (Flink lets any `DataStream` be used more
//! than once). The stage ends in a terminal that clones each record into one forward exchange
//! per consumer; each consumer is a stage of its own with the producer's parallelism.
use super::exchange::{Exchange, Outlets};
use super::stream::Stream;
use crate::graph::plan::Partitioning;
use crate::graph::Ending;
use crate::runtime::exchange::partition::Forward;
use crate::runtime::exchange::FanOutWriter;
use crate::runtime::operator::{Chain, Identity};
use std::panic::Location;

impl<C: Chain> Stream<C>
where
    C::Out: Clone,
{
    /// Splits the stream into `N` streams that each get every record (Flink's using one
    /// `DataStream` as the input of several operators). Destructure the array:
    /// `let [a, b] = stream.fan_out();` — `N` is taken from the pattern.
    ///
    /// Each returned stream is a new stage with this stage's parallelism; subtask `i` of this
    /// stage feeds subtask `i` of each, a clone per consumer (the last one gets the record
    /// itself). Watermarks, checkpoint barriers and the end of input reach every consumer.
    /// A slow consumer slows the whole fan-out down (backpressure), never loses records.
    ///
    /// The number of consumers is fixed when `fan_out` is called; every returned stream
    /// must be consumed (ended in a sink or an exchange), as any stream must. `N` must be at
    /// least 1 (checked at compile time).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let [all, big, counts] = env.from_iter(1..=6).fan_out();
    /// let all = all.collect();
    /// let big = big.filter(|x| *x > 4).collect();
    /// let counts = counts.key_by(|x| x % 2).count().collect();
    /// env.execute()?;
    ///
    /// let (mut all, mut big, mut counts) = (all.take(), big.take(), counts.take());
    /// all.sort();
    /// big.sort();
    /// counts.sort();
    /// assert_eq!(all, [1, 2, 3, 4, 5, 6]);
    /// assert_eq!(big, [5, 6]);
    /// assert_eq!(counts, [(0, 3), (1, 3)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    ///
    /// A fan-out to no consumer does not compile:
    ///
    /// ```compile_fail
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default());
    /// let [] = env.from_iter([1]).fan_out();
    /// ```
    #[track_caller]
    pub fn fan_out<const N: usize>(self) -> [Stream<Identity<C::Out>>; N] {
        const { assert!(N > 0, "fan_out needs at least one consumer") };
        let loc = Location::caller();
        let feed = self.feed();
        let mut outlets: Vec<Outlets<C::Out>> = Vec::with_capacity(N);
        let streams: [Stream<Identity<C::Out>>; N] = std::array::from_fn(|k| {
            let ex = Exchange::new(
                &self.g,
                &[feed],
                Partitioning::Forward {
                    what: format!("fan-out {} of {N}", k + 1),
                },
                format!("fan-out {} of {N} of stage {}", k + 1, feed.stage),
                feed.parallelism,
                loc,
            );
            outlets.push(ex.outlets.clone());
            ex.into_stream()
        });
        let to: Vec<String> = streams
            .iter()
            .map(|s| s.input.slot.stage.to_string())
            .collect();
        let ending = Ending::Exchange(format!("fan-out to stages {}", to.join(", ")));
        self.finish(ending, move |i, _| {
            FanOutWriter(outlets.iter().map(|o| o.writer(i, Forward(i))).collect())
        });
        streams
    }
}
