//! `discard`: counts and drops records.
use crate::api::stream::Stream;
use crate::error::Result;
use crate::graph::Ending;
use crate::record::{Event, Timestamp};
use crate::runtime::metrics::StageMetrics;
use crate::runtime::operator::{Chain, Downstream};
use crate::runtime::stage::Terminal;
use crate::runtime::task::TaskCx;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Counts and drops records (for benchmarks).
pub(crate) struct DiscardSink {
    pub(crate) count: u64,
    pub(crate) metrics: Arc<StageMetrics>,
}

impl<T> Downstream<T> for DiscardSink {
    #[inline]
    fn emit(&mut self, item: T, _ts: Timestamp) {
        drop(item);
        self.count += 1;
    }
    fn event(&mut self, _event: Event) {
        self.metrics
            .records_out
            .fetch_add(std::mem::take(&mut self.count), Ordering::Relaxed);
    }
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
        self.finish(Ending::Sink("discard".into()), |_, m| DiscardSink {
            count: 0,
            metrics: m.clone(),
        })
    }
}
