//! `discard`: counts and drops records.
use crate::api::stream::Stream;
use crate::error::Result;
use crate::graph::Ending;
use crate::record::{Event, Timestamp};
use crate::runtime::operator::{Chain, Downstream};
use crate::runtime::stage::Terminal;
use crate::runtime::task::TaskCx;

/// Counts and drops records (for benchmarks).
pub(crate) struct DiscardSink;

impl<T> Downstream<T> for DiscardSink {
    #[inline]
    fn emit(&mut self, item: T, _ts: Timestamp) {
        drop(item);
    }
    fn event(&mut self, _event: Event) {}
}

impl<T> Terminal<T> for DiscardSink {
    fn drain(&mut self, _cx: &TaskCx<'_>) -> Result<bool> {
        Ok(true)
    }
}

impl<C: Chain> Stream<C> {
    /// Counts and drops every record (for benchmarks; Flink's blackhole sink).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// env.generate_n(1_000, |i| i).discard();
    /// let summary = env.execute()?;
    /// assert_eq!(summary.records_written(), 1_000);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn discard(self) {
        self.finish(Ending::Sink("discard".into()), |_, _| DiscardSink)
    }
}
