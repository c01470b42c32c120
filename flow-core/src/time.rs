//! Event time: timestamps, watermark strategies and the timestamp-assigning operator.
//!
//! A watermark `w` says that no record with a timestamp `<= w` is expected any more. flow
//! derives watermarks from the data, once per batch of a source split (not on a wall-clock
//! timer as Flink's `autoWatermarkInterval` does), so what a job computes does not depend on
//! how fast the machine runs. Watermarks travel through exchanges in order with the records;
//! an operator's watermark is the minimum over its inputs, and an input that has ended no
//! longer holds it back.
use crate::chain::{Chain, Downstream, DrainCx, OpName, PanicGuard};
use crate::record::{Event, Timestamp, NO_TIMESTAMP};
use std::time::{Duration, Instant};

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

/// Per-subtask state of a timestamp assigner.
#[doc(hidden)]
#[derive(Clone, Debug)]
pub struct AssignState {
    max_ts: Timestamp,
    emitted: Timestamp,
    saw_records: bool,
    last_record: Option<Instant>,
    idle: bool,
}

impl AssignState {
    pub(crate) fn new() -> Self {
        AssignState {
            max_ts: NO_TIMESTAMP,
            emitted: NO_TIMESTAMP,
            saw_records: false,
            last_record: None,
            idle: false,
        }
    }
}

/// `assign_timestamps`: stamps each record with its event time and emits the split's
/// watermark after each batch. Watermarks from upstream are replaced by this operator's own.
pub struct AssignTimestamps<C, F> {
    pub(crate) inner: C,
    pub(crate) f: F,
    pub(crate) name: OpName,
    pub(crate) strategy: WatermarkStrategy,
    pub(crate) st: AssignState,
}

impl<C: Clone, F: Clone> Clone for AssignTimestamps<C, F> {
    fn clone(&self) -> Self {
        AssignTimestamps {
            inner: self.inner.clone(),
            f: self.f.clone(),
            name: self.name.clone(),
            strategy: self.strategy,
            st: AssignState::new(),
        }
    }
}

#[doc(hidden)]
pub struct AssignAdapter<'a, F, D> {
    f: &'a mut F,
    name: &'a OpName,
    strategy: WatermarkStrategy,
    st: &'a mut AssignState,
    down: &'a mut D,
}

impl<C, F> Chain for AssignTimestamps<C, F>
where
    C: Chain,
    F: FnMut(&C::Out) -> Timestamp + Clone + Send + 'static,
{
    type In = C::In;
    type Out = C::Out;
    #[inline(always)]
    fn push<D: Downstream<C::Out>>(&mut self, item: C::In, ts: Timestamp, down: &mut D) {
        let mut a = AssignAdapter {
            f: &mut self.f,
            name: &self.name,
            strategy: self.strategy,
            st: &mut self.st,
            down,
        };
        self.inner.push(item, ts, &mut a)
    }
    fn event<D: Downstream<C::Out>>(&mut self, event: Event, down: &mut D) {
        let mut a = AssignAdapter {
            f: &mut self.f,
            name: &self.name,
            strategy: self.strategy,
            st: &mut self.st,
            down,
        };
        self.inner.event(event, &mut a)
    }
    fn open(&mut self, subtask: usize, parallelism: usize) {
        self.inner.open(subtask, parallelism)
    }
    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
        if let Some(timeout) = self.strategy.idle_after {
            if !self.st.idle {
                // A split that never had a record counts its idle time from now.
                let last = *self.st.last_record.get_or_insert_with(Instant::now);
                cx.wake_at(last + timeout);
            }
        }
        self.inner.drain(cx)
    }
}

impl<T, F, D> Downstream<T> for AssignAdapter<'_, F, D>
where
    F: FnMut(&T) -> Timestamp,
    D: Downstream<T>,
{
    #[inline(always)]
    fn emit(&mut self, item: T, _ts: Timestamp) {
        let guard = PanicGuard(self.name);
        let ts = (self.f)(&item);
        std::mem::forget(guard);
        if ts > self.st.max_ts {
            self.st.max_ts = ts;
        }
        self.st.saw_records = true;
        self.down.emit(item, ts)
    }

    fn event(&mut self, event: Event) {
        match event {
            // Upstream watermarks are superseded by the ones derived here.
            Event::Watermark(_) | Event::Idle => {}
            Event::BatchEnd => {
                if self.st.saw_records {
                    self.st.saw_records = false;
                    self.st.idle = false;
                    if self.strategy.idle_after.is_some() {
                        self.st.last_record = Some(Instant::now());
                    }
                }
                let w = self.strategy.watermark(self.st.max_ts);
                if w > self.st.emitted {
                    self.st.emitted = w;
                    self.down.event(Event::Watermark(w));
                }
                self.down.event(event)
            }
            Event::ProcessingTime(_) | Event::Flush => {
                if let (Some(timeout), false) = (self.strategy.idle_after, self.st.idle) {
                    if self.st.last_record.is_some_and(|t| t.elapsed() >= timeout) {
                        self.st.idle = true;
                        self.down.event(Event::Idle);
                    }
                }
                self.down.event(event)
            }
            other => self.down.event(other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Identity;

    struct Out(Vec<(i64, Timestamp)>, Vec<Event>);
    impl Downstream<i64> for Out {
        fn emit(&mut self, item: i64, ts: Timestamp) {
            self.0.push((item, ts))
        }
        fn event(&mut self, e: Event) {
            self.1.push(e)
        }
    }

    #[test]
    fn watermarks_follow_the_max_timestamp_once_per_batch_and_never_regress() {
        let mut c = AssignTimestamps {
            inner: Identity::<i64>::new(),
            f: |x: &i64| *x,
            name: OpName("assign".into()),
            strategy: WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(10)),
            st: AssignState::new(),
        };
        let mut out = Out(vec![], vec![]);
        for x in [100, 120, 90] {
            c.push(x, NO_TIMESTAMP, &mut out);
        }
        c.event(Event::BatchEnd, &mut out);
        c.push(50, NO_TIMESTAMP, &mut out);
        c.event(Event::Watermark(1000), &mut out);
        c.event(Event::BatchEnd, &mut out);
        assert_eq!(out.0, vec![(100, 100), (120, 120), (90, 90), (50, 50)]);
        assert_eq!(
            out.1,
            vec![Event::Watermark(109), Event::BatchEnd, Event::BatchEnd]
        );
        assert_eq!(WatermarkStrategy::monotonous().watermark(5), 4);
    }
}
