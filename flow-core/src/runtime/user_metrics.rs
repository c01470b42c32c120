//! User metrics: counters, gauges and histograms that user functions update (created on
//! `Env`, see `api::metrics`).
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// A count that only goes up.
#[derive(Clone, Debug, Default)]
pub struct Counter(Arc<AtomicU64>);

impl Counter {
    /// Adds one.
    #[inline]
    pub fn inc(&self) {
        self.add(1)
    }
    /// Adds `n`.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    /// The current count.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that is set, or moved up and down.
#[derive(Clone, Debug, Default)]
pub struct Gauge(Arc<AtomicI64>);

impl Gauge {
    /// Sets the value.
    #[inline]
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed)
    }
    /// Adds `d` (which may be negative).
    #[inline]
    pub fn add(&self, d: i64) {
        self.0.fetch_add(d, Ordering::Relaxed);
    }
    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The distribution of recorded values, in power-of-two buckets (bucket `i` holds values
/// below `2^i`), with exact count, sum, minimum and maximum.
#[derive(Clone, Debug)]
pub struct Histogram(Arc<HistogramCells>);

#[derive(Debug)]
struct HistogramCells {
    buckets: [AtomicU64; 65],
    count: AtomicU64,
    sum: AtomicU64,
    min: AtomicU64,
    max: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram(Arc::new(HistogramCells {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            sum: AtomicU64::new(0),
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }))
    }
}

impl Histogram {
    /// Records one value.
    #[inline]
    pub fn record(&self, v: u64) {
        let c = &self.0;
        let bucket = (u64::BITS - v.leading_zeros()) as usize;
        c.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        c.count.fetch_add(1, Ordering::Relaxed);
        c.sum.fetch_add(v, Ordering::Relaxed);
        c.min.fetch_min(v, Ordering::Relaxed);
        c.max.fetch_max(v, Ordering::Relaxed);
    }

    /// What was recorded so far.
    pub fn snapshot(&self) -> HistogramSnapshot {
        let c = &self.0;
        let count = c.count.load(Ordering::Relaxed);
        HistogramSnapshot {
            count,
            sum: c.sum.load(Ordering::Relaxed),
            min: if count == 0 {
                0
            } else {
                c.min.load(Ordering::Relaxed)
            },
            max: c.max.load(Ordering::Relaxed),
            buckets: c
                .buckets
                .iter()
                .map(|b| b.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A histogram's values at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Values recorded.
    pub count: u64,
    /// Their sum.
    pub sum: u64,
    /// The smallest (0 when none).
    pub min: u64,
    /// The largest (0 when none).
    pub max: u64,
    /// Per power-of-two bucket `i`, the values in `[2^(i-1), 2^i)` (bucket 0: zeros).
    pub buckets: Vec<u64>,
}

impl HistogramSnapshot {
    /// An upper bound of the `q`-quantile (`0.0..=1.0`), at the resolution of the buckets
    /// (within a factor of two), never above the maximum.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper = if i == 0 { 0 } else { (1u128 << i) - 1 };
                return (upper.min(u64::MAX as u128) as u64).min(self.max);
            }
        }
        self.max
    }
}

/// A user metric's value when the job ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetricValue {
    /// A [`Counter`].
    Counter(u64),
    /// A [`Gauge`].
    Gauge(i64),
    /// A [`Histogram`].
    Histogram(HistogramSnapshot),
}

/// A registered user metric.
#[derive(Clone, Debug)]
#[allow(unreachable_pub)] // reached through `api::metrics`
pub(crate) enum UserMetric {
    Counter(Counter),
    Gauge(Gauge),
    Histogram(Histogram),
}

impl UserMetric {
    pub(crate) fn value(&self) -> MetricValue {
        match self {
            UserMetric::Counter(c) => MetricValue::Counter(c.get()),
            UserMetric::Gauge(g) => MetricValue::Gauge(g.get()),
            UserMetric::Histogram(h) => MetricValue::Histogram(h.snapshot()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_quantiles_bound_the_values_within_a_factor_of_two() {
        let h = Histogram::default();
        for v in 1..=1000u64 {
            h.record(v);
        }
        let s = h.snapshot();
        assert_eq!((s.count, s.min, s.max, s.sum), (1000, 1, 1000, 500_500));
        let p50 = s.quantile(0.5);
        assert!((500..1024).contains(&p50), "{p50}");
        assert_eq!(s.quantile(1.0), 1000);
        assert_eq!(Histogram::default().snapshot().quantile(0.9), 0);
    }
}
