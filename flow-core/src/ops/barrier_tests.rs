//! Checkpoint barriers end to end: injected at every source, aligned by every exchange, seen
//! by every operator after exactly the records of their checkpoint.
use crate::graph::OpInfo;
use crate::record::{Event, Timestamp};
use crate::runtime::operator::{Downstream, Operator, Sealed};
use crate::runtime::panic::OpName;
use crate::{Config, Env};
use parking_lot::Mutex;
use proptest::prelude::*;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

/// Tags each record with the number of barriers its subtask has seen (its checkpoint).
#[derive(Clone)]
struct Epoch(u64);
impl Sealed for Epoch {}
impl<T: Send + 'static> Operator<T> for Epoch {
    type Out = (u64, T);
    fn on_record<D: Downstream<(u64, T)>>(&mut self, item: T, ts: Timestamp, down: &mut D) {
        down.emit((self.0, item), ts)
    }
    fn on_event<D: Downstream<(u64, T)>>(&mut self, event: Event, down: &mut D) {
        if let Event::Barrier(n) = event {
            assert_eq!(n, self.0 + 1, "barriers arrive in order, none skipped");
            self.0 = n;
        }
        down.event(event)
    }
}

/// Checks that every record arrives after exactly as many barriers as it saw upstream.
#[derive(Clone)]
struct Check(u64, Arc<Mutex<Vec<String>>>);
impl Sealed for Check {}
impl<T: Send + 'static> Operator<(u64, T)> for Check {
    type Out = T;
    fn on_record<D: Downstream<T>>(
        &mut self,
        (epoch, item): (u64, T),
        ts: Timestamp,
        down: &mut D,
    ) {
        if epoch != self.0 {
            self.1.lock().push(format!(
                "a record of checkpoint {epoch} after barrier {}",
                self.0
            ));
        }
        down.emit(item, ts)
    }
    fn on_event<D: Downstream<T>>(&mut self, event: Event, down: &mut D) {
        if let Event::Barrier(n) = event {
            if n != self.0 + 1 {
                self.1
                    .lock()
                    .push(format!("barrier {n} after barrier {}", self.0));
            }
            self.0 = n;
        }
        down.event(event)
    }
}

fn info(kind: &str) -> OpInfo {
    OpInfo::new(&OpName::new(kind, Location::caller()))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Two sources of different lengths, a union (round-robin) and a keyed exchange: records
    /// reach each operator between the barriers of their own checkpoint, at any parallelism
    /// and batch size, also after a source ended; every checkpoint reaches every sink.
    #[test]
    fn barriers_are_aligned_across_producers_and_exchanges(
        parallelism in 1usize..=4,
        batch in 1usize..64,
        n_a in 1u64..40_000,
        n_b in 1u64..40_000,
    ) {
        let errors = Arc::new(Mutex::new(Vec::new()));
        let mut env = Env::new(
            Config::default()
                .parallelism(parallelism)
                .batch_size(batch)
                .barrier_interval(Duration::from_millis(1)),
        );
        let a = env.generate_n(n_a, |i| i).then(info("epoch"), Epoch(0));
        let b = env.generate_n(n_b, |i| i + 1_000_000).then(info("epoch"), Epoch(0));
        let count = a
            .union(b)
            .then(info("check"), Check(0, errors.clone()))
            .then(info("epoch"), Epoch(0))
            .key_by(|e| e.1 % 7)
            .count()
            .collect();
        let summary = env.execute().unwrap();
        let errors = errors.lock();
        prop_assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(5)]);
        let total: u64 = count.take().into_iter().map(|(_, n)| n).sum();
        prop_assert_eq!(total, n_a + n_b);
        let ids: Vec<u64> = summary.checkpoints.iter().map(|c| c.id).collect();
        let want: Vec<u64> = (1..=ids.len() as u64).collect();
        prop_assert_eq!(ids, want);
    }
}

#[test]
fn a_long_job_completes_checkpoints_while_it_runs() {
    let errors = Arc::new(Mutex::new(Vec::new()));
    let mut env = Env::new(
        Config::default()
            .parallelism(2)
            .batch_size(64)
            .barrier_interval(Duration::from_millis(2)),
    );
    env.generate_n(3_000_000, |i| i)
        .then(info("epoch"), Epoch(0))
        .rebalance()
        .then(info("check"), Check(0, errors.clone()))
        .discard();
    let summary = env.execute().unwrap();
    assert!(errors.lock().is_empty(), "{:?}", errors.lock());
    assert!(!summary.checkpoints.is_empty(), "no checkpoint completed");
}
