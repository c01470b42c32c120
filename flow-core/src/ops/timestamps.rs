//! `assign_timestamps`: stamps each record with its event time and emits the source split's
//! watermark after each batch, derived from the data (see [`crate::time`]).
use crate::api::stream::Stream;
use crate::graph::OpInfo;
use crate::record::{Event, Timestamp, NO_TIMESTAMP};
use crate::runtime::operator::{Chain, Downstream, DrainCx, Operator, Sealed, Then};
use crate::runtime::panic::{guarded, OpName};
use crate::time::WatermarkStrategy;
use std::panic::Location;
use std::time::Instant;

/// The timestamp assigner of one subtask. Watermarks from upstream are replaced by its own.
#[derive(Clone)]
pub struct AssignTimestamps<F> {
    f: F,
    name: OpName,
    strategy: WatermarkStrategy,
    max_ts: Timestamp,
    emitted: Timestamp,
    saw_records: bool,
    last_record: Option<Instant>,
    idle: bool,
}

impl<F> AssignTimestamps<F> {
    fn new(f: F, name: OpName, strategy: WatermarkStrategy) -> Self {
        AssignTimestamps {
            f,
            name,
            strategy,
            max_ts: NO_TIMESTAMP,
            emitted: NO_TIMESTAMP,
            saw_records: false,
            last_record: None,
            idle: false,
        }
    }
}

impl<F> Sealed for AssignTimestamps<F> {}

impl<T, F> Operator<T> for AssignTimestamps<F>
where
    T: Send + 'static,
    F: FnMut(&T) -> Timestamp + Clone + Send + 'static,
{
    type Out = T;

    #[inline(always)]
    fn on_record<D: Downstream<T>>(&mut self, item: T, _ts: Timestamp, down: &mut D) {
        let ts = guarded!(self.name, (self.f)(&item));
        if ts > self.max_ts {
            self.max_ts = ts;
        }
        self.saw_records = true;
        down.emit(item, ts)
    }

    fn on_event<D: Downstream<T>>(&mut self, event: Event, down: &mut D) {
        match event {
            // Upstream watermarks are superseded by the ones derived here.
            Event::Watermark(_) | Event::Idle => {}
            Event::BatchEnd => {
                if self.saw_records {
                    self.saw_records = false;
                    self.idle = false;
                    if self.strategy.idle_after.is_some() {
                        self.last_record = Some(Instant::now());
                    }
                }
                let w = self.strategy.watermark(self.max_ts);
                if w > self.emitted {
                    self.emitted = w;
                    down.event(Event::Watermark(w));
                }
                down.event(event)
            }
            Event::ProcessingTime(_) | Event::Flush => {
                if let (Some(timeout), false) = (self.strategy.idle_after, self.idle) {
                    if self.last_record.is_some_and(|t| t.elapsed() >= timeout) {
                        self.idle = true;
                        down.event(Event::Idle);
                    }
                }
                down.event(event)
            }
            other => down.event(other),
        }
    }

    fn drain(&mut self, cx: &DrainCx<'_, '_>) -> crate::Result<bool> {
        if let Some(timeout) = self.strategy.idle_after {
            if !self.idle {
                // A split that never had a record counts its idle time from now.
                let last = *self.last_record.get_or_insert_with(Instant::now);
                cx.wake_at(last + timeout);
            }
        }
        Ok(true)
    }
}

impl<C: Chain> Stream<C> {
    /// Stamps each record with its event time `f(record)` (milliseconds) and generates
    /// watermarks per source split with `strategy`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// let out = env
    ///     .from_iter([(1, 1_000), (2, 900)])
    ///     .assign_timestamps(|e| e.1, WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(200)))
    ///     .process(|e: (i32, i64), ctx: &mut ProcessContext<'_, (i32, i64)>| ctx.emit((e.0, ctx.timestamp())))
    ///     .collect();
    /// env.execute()?;
    /// assert_eq!(out.take(), vec![(1, 1_000), (2, 900)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn assign_timestamps<F>(
        self,
        f: F,
        strategy: WatermarkStrategy,
    ) -> Stream<Then<C, AssignTimestamps<F>>>
    where
        F: FnMut(&C::Out) -> i64 + Clone + Send + 'static,
    {
        let name = OpName::new("assign_timestamps", Location::caller());
        let info = OpInfo::with_detail(&name, format!("watermark bound {} ms", strategy.bound));
        self.then(info, AssignTimestamps::new(f, name, strategy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn watermarks_follow_the_max_timestamp_once_per_batch_and_never_regress() {
        let mut op = AssignTimestamps::new(
            |x: &i64| *x,
            OpName::new("assign", Location::caller()),
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(10)),
        );
        let mut out = crate::runtime::operator::Collect::new();
        for x in [100, 120, 90] {
            op.on_record(x, NO_TIMESTAMP, &mut out);
        }
        op.on_event(Event::BatchEnd, &mut out);
        op.on_record(50, NO_TIMESTAMP, &mut out);
        op.on_event(Event::Watermark(1000), &mut out);
        op.on_event(Event::BatchEnd, &mut out);
        assert_eq!(out.0, vec![(100, 100), (120, 120), (90, 90), (50, 50)]);
        assert_eq!(
            out.1,
            vec![Event::Watermark(109), Event::BatchEnd, Event::BatchEnd]
        );
        assert_eq!(WatermarkStrategy::monotonous().watermark(5), 4);
    }

    /// Records every watermark that reaches it, as the operator after an exchange sees them.
    #[derive(Clone)]
    struct WatermarkProbe(
        std::sync::Arc<parking_lot::Mutex<Vec<(usize, Timestamp)>>>,
        usize,
    );
    impl Sealed for WatermarkProbe {}
    impl<T: Send + 'static> Operator<T> for WatermarkProbe {
        type Out = T;
        fn on_record<D: Downstream<T>>(&mut self, item: T, ts: Timestamp, down: &mut D) {
            down.emit(item, ts)
        }
        fn on_event<D: Downstream<T>>(&mut self, event: Event, down: &mut D) {
            if let Event::Watermark(w) = event {
                self.0.lock().push((self.1, w));
            }
            down.event(event)
        }
        fn open(&mut self, cx: crate::runtime::operator::OpenCx) {
            self.1 = cx.subtask;
        }
    }

    proptest::proptest! {
        /// The watermarks that reach an operator after a keyed exchange rise strictly, per
        /// subtask, whatever the parallelism, batch size and disorder of the input. The probe
        /// sees the raw events, so a regressing watermark would fail this (unlike an operator
        /// that itself ignores watermarks that do not rise).
        #[test]
        fn watermarks_reaching_an_operator_rise(
            ts in proptest::collection::vec(0i64..2_000, 1..300),
            parallelism in 1usize..=4,
            batch in 1usize..10,
        ) {
            let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
            let mut env = crate::Env::new(crate::Config::default().parallelism(parallelism).batch_size(batch));
            let name = OpName::new("probe", Location::caller());
            env.from_vec(ts.into_iter().enumerate().collect::<Vec<_>>())
                .assign_timestamps(|e| e.1, WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(20)))
                .key_by(|e| e.0 % 7)
                .count()
                .then(OpInfo::new(&name), WatermarkProbe(seen.clone(), 0))
                .discard();
            env.execute().unwrap();
            let seen = seen.lock();
            for s in 0..parallelism {
                let mine: Vec<Timestamp> = seen.iter().filter(|(i, _)| *i == s).map(|(_, w)| *w).collect();
                proptest::prop_assert!(mine.windows(2).all(|w| w[0] < w[1]), "subtask {}: {:?}", s, mine);
            }
            // With one producer its rising watermark always passes the exchange; with several,
            // producers that end early may leave nothing to pass on before the end.
            proptest::prop_assert!(parallelism > 1 || !seen.is_empty(), "no watermark reached the probe");
        }
    }
}
