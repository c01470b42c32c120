//! User metrics from user functions, reported with the job's own.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;

#[derive(Clone)]
struct Dedup(Counter, Gauge);
impl KeyedProcessFunction<u32, u32> for Dedup {
    type State = bool;
    type Out = u32;
    fn process_element(&mut self, k: &u32, _: u32, seen: &mut bool, ctx: &mut Context<'_, u32>) {
        if *seen {
            self.0.inc();
        } else {
            *seen = true;
            self.1.add(1);
            ctx.emit(*k);
        }
    }
}

#[test]
fn metrics_updated_by_every_subtask_add_up() {
    for p in 1..=3 {
        let mut env = Env::new(Config::default().parallelism(p));
        let dups = env.counter("duplicates");
        let keys = env.gauge("distinct_keys");
        let sizes = env.histogram("batch_values");
        let h = sizes.clone();
        let out = env
            .from_vec((0..3000u32).map(|i| i % 1000).collect())
            .inspect(move |v| h.record(u64::from(*v)))
            .key_by(|v| *v)
            .process(Dedup(dups.clone(), keys.clone()))
            .collect();
        let summary = env.execute().unwrap();
        assert_eq!(out.take().len(), 1000);
        assert_eq!(
            summary.metric("duplicates"),
            Some(&MetricValue::Counter(2000))
        );
        assert_eq!(
            summary.metric("distinct_keys"),
            Some(&MetricValue::Gauge(1000))
        );
        match summary.metric("batch_values") {
            Some(MetricValue::Histogram(s)) => {
                assert_eq!((s.count, s.min, s.max), (3000, 0, 999));
                assert_eq!(s.sum, 3 * (0..1000u64).sum::<u64>());
            }
            other => panic!("{other:?}"),
        }
        let text = summary.to_string();
        assert!(text.contains("  duplicates: 2000"), "{text}");
        assert!(
            text.contains("  batch_values: 3000 values, min 0"),
            "{text}"
        );
    }
}

#[test]
fn one_name_for_two_kinds_of_metric_fails_the_job() {
    let mut env = Env::new(Config::default().parallelism(1));
    let _c = env.counter("x");
    let _g = env.gauge("x");
    let _out = env.from_iter([1]).collect();
    let err = env.execute().unwrap_err().to_string();
    assert!(
        err.contains("the metric `x` is used as a gauge and as another kind"),
        "{err}"
    );
}
