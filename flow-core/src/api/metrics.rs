//! User metrics: counters, gauges and histograms that user functions update and the job
//! reports beside its own metrics (Flink's `getMetricGroup().counter(..)`).
//!
//! Create them on the [`Env`] while building the job and move clones into the functions that
//! update them. A handle is a shared atomic: cheap, but shared by every subtask, so update it
//! once per batch or per event of interest rather than per record on a hot path.
//!
//! ```
//! use flow_core::prelude::*;
//!
//! let mut env = Env::new(Config::default().parallelism(2));
//! let invalid = env.counter("invalid_lines");
//! let lengths = env.histogram("line_length");
//! let seen = invalid.clone();
//! env.from_iter(["1", "x", "22", "y"])
//!     .inspect(move |l| lengths.record(l.len() as u64))
//!     .filter_map(move |l| match l.parse::<u32>() {
//!         Ok(n) => Some(n),
//!         Err(_) => { seen.inc(); None }
//!     })
//!     .discard();
//! let summary = env.execute()?;
//! assert_eq!(summary.metric("invalid_lines"), Some(&MetricValue::Counter(2)));
//! assert_eq!(invalid.get(), 2);
//! match summary.metric("line_length") {
//!     Some(MetricValue::Histogram(h)) => assert_eq!((h.count, h.min, h.max), (4, 1, 2)),
//!     other => panic!("{other:?}"),
//! }
//! # Ok::<(), flow_core::Error>(())
//! ```
use super::env::Env;
use crate::runtime::user_metrics::UserMetric;
pub use crate::runtime::user_metrics::{Counter, Gauge, Histogram, HistogramSnapshot, MetricValue};

impl Env {
    /// The job's counter `name` (created on first use; the same name gives the same counter).
    pub fn counter(&mut self, name: &str) -> Counter {
        match self.metric(name, || UserMetric::Counter(Counter::default())) {
            UserMetric::Counter(c) => c,
            _ => self.misused(name, "counter", Counter::default()),
        }
    }

    /// The job's gauge `name`.
    pub fn gauge(&mut self, name: &str) -> Gauge {
        match self.metric(name, || UserMetric::Gauge(Gauge::default())) {
            UserMetric::Gauge(g) => g,
            _ => self.misused(name, "gauge", Gauge::default()),
        }
    }

    /// The job's histogram `name`.
    pub fn histogram(&mut self, name: &str) -> Histogram {
        match self.metric(name, || UserMetric::Histogram(Histogram::default())) {
            UserMetric::Histogram(h) => h,
            _ => self.misused(name, "histogram", Histogram::default()),
        }
    }

    fn metric(&mut self, name: &str, make: impl FnOnce() -> UserMetric) -> UserMetric {
        let mut g = self.g.borrow_mut();
        if let Some((_, m)) = g.user_metrics.iter().find(|(n, _)| n == name) {
            return m.clone();
        }
        let m = make();
        g.user_metrics.push((name.to_string(), m.clone()));
        m
    }

    /// A name already used for another kind of metric: the job fails with an error naming
    /// it; the handle returned meanwhile is not reported.
    fn misused<M>(&mut self, name: &str, kind: &str, unreported: M) -> M {
        let e = crate::Error::Config(format!(
            "the metric `{name}` is used as a {kind} and as another kind of metric"
        ));
        self.g.borrow_mut().deferred_error.get_or_insert(e);
        unreported
    }
}
