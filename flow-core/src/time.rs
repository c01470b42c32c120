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
use std::time::Duration;

/// How watermarks follow the timestamps of the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatermarkStrategy {
    pub(crate) bound: Timestamp,
}

impl WatermarkStrategy {
    /// Records may arrive up to `bound` late: watermark = max timestamp seen − bound − 1
    /// (Flink's `forBoundedOutOfOrderness`).
    pub fn bounded_out_of_orderness(bound: Duration) -> Self {
        WatermarkStrategy {
            bound: bound.as_millis().min(i64::MAX as u128) as i64,
        }
    }

    /// Timestamps never decrease: watermark = max timestamp seen − 1 (Flink's
    /// `forMonotonousTimestamps`).
    pub fn monotonous() -> Self {
        WatermarkStrategy { bound: 0 }
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

/// `assign_timestamps`: stamps each record with its event time and emits the split's
/// watermark after each batch. Watermarks from upstream are replaced by this operator's own.
pub struct AssignTimestamps<C, F> {
    pub(crate) inner: C,
    pub(crate) f: F,
    pub(crate) name: OpName,
    pub(crate) strategy: WatermarkStrategy,
    pub(crate) max_ts: Timestamp,
    pub(crate) emitted: Timestamp,
}

impl<C: Clone, F: Clone> Clone for AssignTimestamps<C, F> {
    fn clone(&self) -> Self {
        AssignTimestamps {
            inner: self.inner.clone(),
            f: self.f.clone(),
            name: self.name.clone(),
            strategy: self.strategy,
            max_ts: self.max_ts,
            emitted: self.emitted,
        }
    }
}

#[doc(hidden)]
pub struct AssignAdapter<'a, F, D> {
    f: &'a mut F,
    name: &'a OpName,
    strategy: WatermarkStrategy,
    max_ts: &'a mut Timestamp,
    emitted: &'a mut Timestamp,
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
            max_ts: &mut self.max_ts,
            emitted: &mut self.emitted,
            down,
        };
        self.inner.push(item, ts, &mut a)
    }
    fn event<D: Downstream<C::Out>>(&mut self, event: Event, down: &mut D) {
        let mut a = AssignAdapter {
            f: &mut self.f,
            name: &self.name,
            strategy: self.strategy,
            max_ts: &mut self.max_ts,
            emitted: &mut self.emitted,
            down,
        };
        self.inner.event(event, &mut a)
    }
    fn open(&mut self, subtask: usize, parallelism: usize) {
        self.inner.open(subtask, parallelism)
    }
    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
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
        if ts > *self.max_ts {
            *self.max_ts = ts;
        }
        self.down.emit(item, ts)
    }

    fn event(&mut self, event: Event) {
        match event {
            // Upstream watermarks are superseded by the ones derived here.
            Event::Watermark(_) => {}
            Event::BatchEnd => {
                let w = self.strategy.watermark(*self.max_ts);
                if w > *self.emitted {
                    *self.emitted = w;
                    self.down.event(Event::Watermark(w));
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
            max_ts: NO_TIMESTAMP,
            emitted: NO_TIMESTAMP,
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
