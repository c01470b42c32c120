//! Fan-out: one stream feeding several consumers (`Stream::fan_out`). Every consumer gets
//! every record, with watermarks, checkpoint barriers, end of input and backpressure passing
//! through the fan-out as through any exchange.
#![allow(clippy::unwrap_used)]
use flow_core::prelude::*;
use std::collections::BTreeMap;
use std::time::Duration;

const N: u64 = 3_000;

#[test]
fn three_consumers_each_get_every_record_at_parallelism_one_to_three() {
    for p in 1..=3 {
        let mut env = Env::new(Config::default().parallelism(p).batch_size(16));
        let [all, keyed, windowed] = env
            .generate_n(N, |i| i)
            .assign_timestamps(|x| *x as i64, WatermarkStrategy::monotonous())
            .fan_out();
        let all = all.collect();
        let counts = keyed.key_by(|x| x % 10).count().collect();
        let windows = windowed
            .key_by(|x| x % 10)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
            .count()
            .collect();
        let summary = env.execute().unwrap();

        let mut all = all.take();
        all.sort();
        assert_eq!(all, (0..N).collect::<Vec<_>>(), "parallelism {p}");

        let mut counts = counts.take();
        counts.sort();
        let want: Vec<(u64, u64)> = (0..10).map(|k| (k, N / 10)).collect();
        assert_eq!(counts, want, "parallelism {p}");

        // Every key has 10 records in every 100 ms window; the windows fire on watermarks
        // that crossed the fan-out.
        let mut got: BTreeMap<(u64, i64), u64> = BTreeMap::new();
        for w in windows.take() {
            *got.entry((w.key, w.window.start)).or_default() += w.value;
        }
        let want: BTreeMap<(u64, i64), u64> = (0..10)
            .flat_map(|k| (0..N as i64 / 100).map(move |s| ((k, s * 100), 10)))
            .collect();
        assert_eq!(got, want, "parallelism {p}");

        assert_eq!(summary.records_read(), N);
        let fanned: Vec<_> = summary
            .stages
            .iter()
            .filter(|s| s.name.starts_with("fan-out"))
            .collect();
        assert_eq!(fanned.len(), 3, "{summary}");
        for s in fanned {
            assert_eq!(s.records_in, N, "{}", s.name);
            assert_eq!(s.parallelism, p, "{}", s.name);
        }
    }
}

#[test]
fn fanned_out_streams_can_be_joined_again_and_one_consumer_is_allowed() {
    let mut env = Env::new(Config::default().parallelism(2));
    let [evens, odds] = env.from_iter(0..100u32).fan_out();
    let [single] = evens.map(|x| 2 * x).fan_out();
    let out = single.union(odds.map(|x| 2 * x + 1)).collect();
    env.execute().unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(got, (0..200).collect::<Vec<_>>());
}

#[test]
fn an_unbounded_job_with_fan_out_stops_cleanly() {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut env = Env::new(Config::default().parallelism(2));
        tx.send(env.stop_handle()).unwrap();
        let [a, b] = env.generate(|i| i).fan_out();
        let counts = a.key_by(|x| x % 100).count().collect();
        let thousands = b.filter(|x| x % 1000 == 0).collect();
        env.execute().map(|s| (s, counts.take(), thousands.take()))
    });
    let stop = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stop.stop();
    let (summary, updates, thousands) = t.join().unwrap().unwrap();
    let read = summary.records_read();
    assert!(read > 0);
    let mut last = BTreeMap::new();
    for (k, n) in updates {
        let e = last.entry(k).or_insert(0);
        assert!(n > *e, "counts only grow");
        *e = n;
    }
    assert_eq!(last.values().sum::<u64>(), read, "{summary}");
    assert!(thousands.iter().all(|x| x % 1000 == 0));
    let fanned: Vec<_> = summary
        .stages
        .iter()
        .filter(|s| s.name.starts_with("fan-out"))
        .collect();
    assert_eq!(fanned.len(), 2, "{summary}");
    for s in fanned {
        assert_eq!(s.records_in, read, "{}", s.name);
    }
}

#[test]
fn a_slow_consumer_backpressures_the_fan_out_without_losing_records() {
    let mut env = Env::new(Config::default().parallelism(2).batch_size(4));
    let [slow, fast] = env.generate_n(20_000, |i| i).fan_out();
    let slow = slow
        .inspect(|x| {
            if x % 2000 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .collect();
    let fast = fast.collect();
    let summary = env.execute().unwrap();
    for out in [slow, fast] {
        let mut got = out.take();
        got.sort();
        assert_eq!(got, (0..20_000).collect::<Vec<u64>>());
    }
    assert!(
        summary.stages[0].backpressured > 0,
        "the source never waited: {summary}"
    );
}

#[test]
fn checkpoint_barriers_complete_through_a_fan_out() {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut env = Env::new(
            Config::default()
                .parallelism(2)
                .batch_size(64)
                .barrier_interval(Duration::from_millis(2)),
        );
        tx.send(env.stop_handle()).unwrap();
        let [a, b, c] = env.generate(|i| i).fan_out();
        a.discard();
        b.key_by(|x| x % 7).count().discard();
        c.rebalance().filter(|x| x % 2 == 0).discard();
        env.execute()
    });
    let stop = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.stop();
    let summary = t.join().unwrap().unwrap();
    assert!(!summary.checkpoints.is_empty(), "no checkpoint completed");
    let ids: Vec<u64> = summary.checkpoints.iter().map(|c| c.id).collect();
    let want: Vec<u64> = (1..=ids.len() as u64).collect();
    assert_eq!(ids, want);
}

#[test]
fn a_fan_out_joined_with_itself_does_not_deadlock_with_barriers_in_flight() {
    let n = 50_000u64;
    let mut env = Env::new(
        Config::default()
            .parallelism(2)
            .batch_size(8)
            .barrier_interval(Duration::from_millis(1)),
    );
    let [left, right] = env
        .generate_n(n, |i| i)
        .assign_timestamps(|x| *x as i64, WatermarkStrategy::monotonous())
        .fan_out();
    let joined = left
        .key_by(|x| *x)
        .interval_join(
            right.map(|x| x + 1).key_by(|x| x - 1),
            Duration::ZERO,
            Duration::from_millis(1),
            |_, a, b| (*a, *b),
        )
        .collect();
    let summary = env.execute().unwrap();
    let got = joined.take();
    assert_eq!(got.len() as u64, n);
    assert!(got.iter().all(|(a, b)| b == &(a + 1)));
    assert!(!summary.checkpoints.is_empty(), "no checkpoint completed");
}
