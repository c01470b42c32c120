//! Event time: the wall clock and watermark strategies (the timestamp-assigning operator is
//! `Stream::assign_timestamps`, in `ops/timestamps.rs`).
//!
//! A watermark `w` says that no record with a timestamp `<= w` is expected any more. flow
//! derives watermarks from the data, once per batch of a source split (not on a wall-clock
//! timer as Flink's `autoWatermarkInterval` does), so what a job computes does not depend on
//! how fast the machine runs. Watermarks travel through exchanges in order with the records;
//! an operator's watermark is the minimum over its inputs, and an input that has ended no
//! longer holds it back.
use crate::record::{Timestamp, NO_TIMESTAMP};
use std::time::Duration;

/// The wall clock in milliseconds since the Unix epoch (processing time).
pub fn now_ms() -> Timestamp {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis().min(i64::MAX as u128) as i64)
        .unwrap_or(0)
}

/// How watermarks follow the timestamps of the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatermarkStrategy {
    pub(crate) bound: Timestamp,
    pub(crate) idle_after: Option<Duration>,
}

impl WatermarkStrategy {
    /// Records may arrive up to `bound` late: watermark = max timestamp seen − bound − 1
    /// (Flink's `forBoundedOutOfOrderness`).
    pub fn bounded_out_of_orderness(bound: Duration) -> Self {
        WatermarkStrategy {
            bound: bound.as_millis().min(i64::MAX as u128) as i64,
            idle_after: None,
        }
    }

    /// Timestamps never decrease: watermark = max timestamp seen − 1 (Flink's
    /// `forMonotonousTimestamps`).
    pub fn monotonous() -> Self {
        WatermarkStrategy {
            bound: 0,
            idle_after: None,
        }
    }

    /// A split without records for `timeout` of wall time is idle: it stops holding back the
    /// watermark downstream until it has records again (Flink's `withIdleness`).
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idle_after = Some(timeout);
        self
    }

    /// The watermark after a batch whose largest timestamp so far is `max_ts`.
    pub fn watermark(&self, max_ts: Timestamp) -> Timestamp {
        if max_ts == NO_TIMESTAMP {
            NO_TIMESTAMP
        } else {
            max_ts.saturating_sub(self.bound).saturating_sub(1)
        }
    }
}
