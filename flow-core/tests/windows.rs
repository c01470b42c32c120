//! Event-time windows and process functions against simple reference models.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

type Ev = (u8, i64, u32); // key, timestamp, value

/// Records with timestamps rising by `step` on average, each up to `disorder` early.
fn events(max_len: usize, disorder: i64) -> impl Strategy<Value = Vec<Ev>> {
    proptest::collection::vec((0u8..5, 0i64..40, 0i64..=disorder, 0u32..100), 0..max_len).prop_map(
        move |v| {
            let mut t = 1_000i64;
            v.into_iter()
                .map(|(k, step, jitter, val)| {
                    t += step;
                    (k, t - jitter, val)
                })
                .collect()
        },
    )
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Tumbling(i64),
    Sliding(i64, i64),
    Session(i64),
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        (1i64..200).prop_map(Kind::Tumbling),
        (1i64..200, 1i64..100).prop_map(|(size, slide)| Kind::Sliding(size.max(slide), slide)),
        (1i64..100).prop_map(Kind::Session),
    ]
}

fn spec(k: Kind) -> flow_core::ops::window::WindowSpec {
    let ms = |x: i64| Duration::from_millis(x as u64);
    match k {
        Kind::Tumbling(s) => TumblingEventTimeWindows::of(ms(s)).into(),
        Kind::Sliding(s, l) => SlidingEventTimeWindows::of(ms(s), ms(l)).into(),
        Kind::Session(g) => EventTimeSessionWindows::with_gap(ms(g)).into(),
    }
}

/// Batch computation: (key, start, end) -> (sum, count) over all records.
fn batch_windows(records: &[Ev], k: Kind) -> BTreeMap<(u8, i64, i64), (u64, u64)> {
    let mut out: BTreeMap<(u8, i64, i64), (u64, u64)> = BTreeMap::new();
    match k {
        Kind::Tumbling(_) | Kind::Sliding(..) => {
            let (size, slide) = match k {
                Kind::Tumbling(s) => (s, s),
                Kind::Sliding(s, l) => (s, l),
                Kind::Session(_) => unreachable!(),
            };
            for &(key, ts, v) in records {
                // every window [start, start + size) with start a multiple of slide containing ts
                let mut start = ts - ts.rem_euclid(slide);
                while start > ts - size {
                    let e = out.entry((key, start, start + size)).or_default();
                    e.0 += v as u64;
                    e.1 += 1;
                    start -= slide;
                }
            }
        }
        Kind::Session(gap) => {
            let mut by_key: BTreeMap<u8, Vec<(i64, u32)>> = BTreeMap::new();
            for &(key, ts, v) in records {
                by_key.entry(key).or_default().push((ts, v));
            }
            for (key, mut evs) in by_key {
                evs.sort();
                let mut cur: Option<(i64, i64, u64, u64)> = None;
                for (ts, v) in evs {
                    cur = match cur {
                        Some((s, e, sum, n)) if ts <= e => {
                            Some((s, e.max(ts + gap), sum + v as u64, n + 1))
                        }
                        Some((s, e, sum, n)) => {
                            out.insert((key, s, e), (sum, n));
                            Some((ts, ts + gap, v as u64, 1))
                        }
                        None => Some((ts, ts + gap, v as u64, 1)),
                    };
                }
                if let Some((s, e, sum, n)) = cur {
                    out.insert((key, s, e), (sum, n));
                }
            }
        }
    }
    out
}

#[derive(Clone)]
struct SumCount;
impl Aggregate<Ev> for SumCount {
    type Acc = (u64, u64);
    type Out = (u64, u64);
    fn create(&mut self, e: Ev) -> (u64, u64) {
        (e.2 as u64, 1)
    }
    fn add(&mut self, a: &mut (u64, u64), e: Ev) {
        a.0 += e.2 as u64;
        a.1 += 1;
    }
    fn merge(&mut self, a: &mut (u64, u64), b: (u64, u64)) {
        a.0 += b.0;
        a.1 += b.1;
    }
    fn result(&mut self, a: (u64, u64)) -> (u64, u64) {
        a
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// With a watermark bound that covers the disorder, nothing is late and every window
    /// operator equals the batch computation, at any parallelism and split interleaving.
    #[test]
    fn windows_equal_the_batch_computation(
        records in events(300, 30),
        k in kind(),
        parallelism in 1usize..=4,
        batch in 1usize..20,
    ) {
        let mut env = Env::new(Config::default().parallelism(parallelism).batch_size(batch));
        let agg = env
            .from_vec(records.clone())
            .assign_timestamps(|e| e.1, WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(30)))
            .key_by(|e| e.0)
            .window(spec(k))
            .aggregate(SumCount)
            .map(|w| ((w.key, w.window.start, w.window.end), w.value))
            .collect();
        // The same windows through `process`, which sees every record of the window.
        let processed = env
            .from_vec(records.clone())
            .assign_timestamps(|e| e.1, WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(30)))
            .key_by(|e| e.0)
            .window(spec(k))
            .process(|key, info, evs: Vec<Ev>| {
                assert!(evs.iter().all(|e| e.1 >= info.window.start && e.1 < info.window.end), "{info:?}");
                Some(((*key, info.window.start, info.window.end), (evs.iter().map(|e| e.2 as u64).sum::<u64>(), evs.len() as u64)))
            })
            .collect();
        let summary = env.execute().unwrap();
        prop_assert_eq!(summary.records_late(), 0);
        let want = batch_windows(&records, k);
        let got: BTreeMap<_, _> = agg.take().into_iter().collect();
        prop_assert_eq!(&got, &want);
        let got: BTreeMap<_, _> = processed.take().into_iter().collect();
        prop_assert_eq!(&got, &want);
    }

    /// With one split and a watermark after every record, a record is late exactly when the
    /// watermark (max timestamp before it − bound − 1) has passed all its windows plus the
    /// allowed lateness; late records reach the side output and accepted ones the windows.
    #[test]
    fn late_records_are_exactly_those_flink_drops(
        records in events(200, 80),
        size in 5i64..100,
        bound in 0i64..40,
        lateness in 0i64..40,
    ) {
        let mut env = Env::new(Config::default().parallelism(2).batch_size(1));
        let mut windowed = env
            .from_iter(records.clone())
            .assign_timestamps(|e| e.1, WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(bound as u64)))
            .key_by(|e| e.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(size as u64)))
            .allowed_lateness(Duration::from_millis(lateness as u64));
        let late = windowed.late_records().collect();
        let fired = windowed.aggregate(SumCount).map(|w| ((w.key, w.window.start), w.value)).collect();
        let summary = env.execute().unwrap();

        // reference
        let mut wm = i64::MIN;
        let mut max_ts = i64::MIN;
        let mut want_late = Vec::new();
        let mut accepted = Vec::new();
        for &e in &records {
            let start = e.1 - e.1.rem_euclid(size);
            if start + size - 1 + lateness <= wm {
                want_late.push(e);
            } else {
                accepted.push(e);
            }
            max_ts = max_ts.max(e.1);
            wm = wm.max(max_ts - bound - 1);
        }
        let mut got_late = late.take();
        got_late.sort();
        want_late.sort();
        prop_assert_eq!(&got_late, &want_late);
        prop_assert_eq!(summary.records_late(), want_late.len() as u64);
        // Re-firings emit growing results; the last one per window is the batch result.
        let mut last: BTreeMap<(u8, i64), (u64, u64)> = BTreeMap::new();
        for (w, v) in fired.take() {
            let e = last.entry(w).or_default();
            prop_assert!(v.1 > e.1, "each firing of a window has more records than the last");
            *e = v;
        }
        let want: BTreeMap<(u8, i64), (u64, u64)> = batch_windows(&accepted, Kind::Tumbling(size))
            .into_iter()
            .map(|((k, s, _), v)| ((k, s), v))
            .collect();
        prop_assert_eq!(last, want);
    }

    /// Session windows with allowed lateness against a reference model of Flink's merging
    /// windows (one split, a watermark after every record): a record is late exactly when the
    /// session it would merge into is past the lateness; an accepted record that extends a
    /// session that already fired makes the merged session fire again; and the last firing of
    /// every session carries all of its records — none is lost.
    #[test]
    fn session_windows_with_lateness_lose_no_accepted_record(
        records in events(150, 80),
        gap in 1i64..60,
        bound in 0i64..40,
        lateness in 0i64..80,
    ) {
        let mut env = Env::new(Config::default().parallelism(2).batch_size(1));
        let mut windowed = env
            .from_iter(records.clone())
            .assign_timestamps(|e| e.1, WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(bound as u64)))
            .key_by(|e| e.0)
            .window(EventTimeSessionWindows::with_gap(Duration::from_millis(gap as u64)))
            .allowed_lateness(Duration::from_millis(lateness as u64));
        let late = windowed.late_records().collect();
        let fired = windowed
            .aggregate(SumCount)
            .map(|w| ((w.key, w.window.start, w.window.end), w.value))
            .collect();
        env.execute().unwrap();

        // Reference: live sessions per key as (start, end, sum, count); a session is purged
        // once the watermark passes its end - 1 + lateness, and is final then (or at the end).
        let mut live: BTreeMap<u8, Vec<(i64, i64, u64, u64)>> = BTreeMap::new();
        let mut finals: BTreeMap<(u8, i64, i64), (u64, u64)> = BTreeMap::new();
        let mut want_late = Vec::new();
        let (mut wm, mut max_ts) = (i64::MIN, i64::MIN);
        for &(key, ts, v) in &records {
            let sessions = live.entry(key).or_default();
            let (mut s, mut e) = (ts, ts + gap);
            for &(a, b, _, _) in sessions.iter() {
                if a <= e && s <= b {
                    s = s.min(a);
                    e = e.max(b);
                }
            }
            if e - 1 + lateness <= wm {
                want_late.push((key, ts, v));
            } else {
                let (mut sum, mut n) = (v as u64, 1u64);
                sessions.retain(|&(a, b, x, m)| {
                    let touching = a <= e && s <= b;
                    if touching {
                        sum += x;
                        n += m;
                    }
                    !touching
                });
                sessions.push((s, e, sum, n));
            }
            max_ts = max_ts.max(ts);
            wm = wm.max(max_ts - bound - 1);
            for (k, sessions) in live.iter_mut() {
                sessions.retain(|&(a, b, x, m)| {
                    let purge = b - 1 + lateness <= wm;
                    if purge {
                        finals.insert((*k, a, b), (x, m));
                    }
                    !purge
                });
            }
        }
        for (k, sessions) in live {
            for (a, b, x, m) in sessions {
                finals.insert((k, a, b), (x, m));
            }
        }
        let mut got_late = late.take();
        got_late.sort();
        want_late.sort();
        prop_assert_eq!(&got_late, &want_late);
        let mut last: BTreeMap<(u8, i64, i64), (u64, u64)> = BTreeMap::new();
        for (w, v) in fired.take() {
            last.insert(w, v);
        }
        for (w, v) in &finals {
            prop_assert_eq!(last.get(w), Some(v), "session {:?}", w);
        }
        let accepted: u64 = finals.values().map(|v| v.1).sum();
        prop_assert_eq!(accepted + want_late.len() as u64, records.len() as u64);
    }
}

#[test]
fn a_late_record_that_extends_a_fired_session_fires_the_merged_session() {
    // Issue 13, bug 1: with allowed lateness, a@9000 extends the fired session a[0,10000) to
    // a[0,19000), which must fire when the watermark passes it (Flink re-fires the merged
    // session); it used to keep the old session's "fired" mark and was never emitted.
    let mut env = Env::new(Config::default().parallelism(1).batch_size(1));
    let out = env
        .from_iter([("a", 0i64), ("b", 15_000), ("a", 9_000), ("b", 30_000)])
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .key_by(|e| e.0.to_string())
        .window(EventTimeSessionWindows::with_gap(Duration::from_secs(10)))
        .allowed_lateness(Duration::from_secs(60))
        .count()
        .map(|w| (w.key, w.window.start, w.window.end, w.value))
        .collect();
    let summary = env.execute().unwrap();
    let mut got = out.take();
    got.sort();
    let got: Vec<_> = got
        .iter()
        .map(|(k, s, e, n)| (k.as_str(), *s, *e, *n))
        .collect();
    assert_eq!(
        got,
        vec![
            ("a", 0, 10_000, 1),
            ("a", 0, 19_000, 2),
            ("b", 15_000, 25_000, 1),
            ("b", 30_000, 40_000, 1),
        ]
    );
    assert_eq!(summary.records_late(), 0);
}

#[test]
fn a_record_between_two_sessions_merges_them() {
    let mut env = Env::new(Config::default().parallelism(1).batch_size(1));
    let out = env
        .from_iter([(1u8, 0i64, 1u32), (1, 100, 2), (1, 50, 4), (1, 400, 8)])
        .assign_timestamps(
            |e| e.1,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(60)),
        )
        .key_by(|e| e.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_millis(60)))
        .aggregate(SumCount)
        .map(|w| (w.window.start, w.window.end, w.value))
        .collect();
    env.execute().unwrap();
    let mut got = out.take();
    got.sort();
    // [0,60) and [100,160) are bridged by 50 -> [50,110): one session [0,160)
    assert_eq!(got, vec![(0, 160, (7, 3)), (400, 460, (8, 1))]);
}

#[test]
fn count_windows_fire_every_slide_records_and_never_partially() {
    let mut env = Env::new(Config::default().parallelism(2));
    let tumbling = env
        .from_iter((0..10u32).map(|i| (1u8, i as i64, i)))
        .key_by(|e| e.0)
        .window(CountWindows::of(4))
        .count()
        .map(|w| w.value)
        .collect();
    let sliding = env
        .from_iter((0..10u32).map(|i| (1u8, i as i64, i)))
        .key_by(|e| e.0)
        .window(CountWindows::sliding(3, 2))
        .process(|_, _, evs: Vec<Ev>| Some(evs.iter().map(|e| e.2).collect::<Vec<_>>()))
        .collect();
    env.execute().unwrap();
    assert_eq!(tumbling.take(), vec![4, 4]);
    assert_eq!(
        sliding.take(),
        vec![
            vec![0, 1],
            vec![1, 2, 3],
            vec![3, 4, 5],
            vec![5, 6, 7],
            vec![7, 8, 9]
        ]
    );
}

#[test]
fn timers_fire_in_timestamp_order_once_per_key_and_time() {
    #[derive(Clone)]
    struct Timers;
    impl KeyedProcessFunction<u8, Ev> for Timers {
        type State = u32;
        type Out = (i64, u8);
        fn process_element(
            &mut self,
            _: &u8,
            e: Ev,
            _: &mut u32,
            ctx: &mut Context<'_, (i64, u8)>,
        ) {
            // Registered twice: fires once. A timer deleted right away never fires.
            ctx.register_event_time_timer(e.1 + 100);
            ctx.register_event_time_timer(e.1 + 100);
            ctx.register_event_time_timer(e.1 + 7);
            ctx.delete_event_time_timer(e.1 + 7);
        }
        fn on_timer(
            &mut self,
            key: &u8,
            ts: i64,
            fired: &mut u32,
            ctx: &mut Context<'_, (i64, u8)>,
        ) {
            *fired += 1;
            assert_eq!(ctx.timestamp(), ts);
            assert!(ctx.current_watermark() >= ts);
            ctx.emit((ts, *key));
        }
    }
    let mut env = Env::new(Config::default().parallelism(1).batch_size(1));
    let out = env
        .from_iter([(2u8, 50i64, 0u32), (1, 10, 0), (1, 30, 0), (3, 500, 0)])
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .key_by(|e| e.0)
        .process(Timers)
        .collect();
    env.execute().unwrap();
    // The watermark 499 after the last record fires 110, 130, 150 in order; the end fires 600.
    assert_eq!(out.take(), vec![(110, 1), (130, 1), (150, 2), (600, 3)]);
}

#[test]
fn window_all_sees_every_key_in_one_window() {
    let mut env = Env::new(Config::default().parallelism(3));
    let out = env
        .from_vec(
            (0..100i64)
                .map(|i| ((i % 7) as u8, i * 10, 1u32))
                .collect::<Vec<Ev>>(),
        )
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .window_all(TumblingEventTimeWindows::of(Duration::from_millis(500)))
        .count()
        .map(|w| (w.window.start, w.value))
        .collect();
    env.execute().unwrap();
    let got: BTreeSet<_> = out.take().into_iter().collect();
    assert_eq!(got, [(0, 50), (500, 50)].into_iter().collect());
}

#[test]
fn a_keyed_process_function_has_a_side_output() {
    /// Main output: running count per key; side output: every tenth record of a key.
    #[derive(Clone)]
    struct Tenth;
    impl KeyedProcessFunction<u8, Ev> for Tenth {
        type State = u32;
        type Out = Either<(u8, u32), Ev>;
        fn process_element(
            &mut self,
            k: &u8,
            e: Ev,
            n: &mut u32,
            ctx: &mut Context<'_, Self::Out>,
        ) {
            *n += 1;
            if (*n).is_multiple_of(10) {
                ctx.emit(Either::Right(e));
            }
            ctx.emit(Either::Left((*k, *n)));
        }
    }
    for p in 1..=3 {
        let mut env = Env::new(Config::default().parallelism(p).batch_size(7));
        let (counts, tenths) = env
            .from_vec(
                (0..200i64)
                    .map(|i| ((i % 4) as u8, i, i as u32))
                    .collect::<Vec<Ev>>(),
            )
            .key_by(|e| e.0)
            .process(Tenth)
            .split();
        let (counts, tenths) = (counts.filter(|c| c.1 == 50).collect(), tenths.collect());
        env.execute().unwrap();
        assert_eq!(
            sorted_vec(counts.take()),
            vec![(0, 50), (1, 50), (2, 50), (3, 50)],
            "parallelism {p}"
        );
        assert_eq!(tenths.take().len(), 20, "parallelism {p}");
    }
}

#[test]
fn a_non_keyed_process_function_sees_timestamps_and_watermarks() {
    let mut env = Env::new(Config::default().parallelism(2).batch_size(1));
    let out = env
        .from_iter([(0u8, 10i64, 1u32), (0, 20, 2), (0, 30, 3)])
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .process(|e: Ev, ctx: &mut ProcessContext<'_, (i64, i64, u32)>| {
            ctx.emit((ctx.timestamp(), ctx.current_watermark(), e.2));
            ctx.emit((ctx.timestamp(), ctx.current_watermark(), e.2 * 10));
        })
        .collect();
    env.execute().unwrap();
    // one record per batch: each record sees the watermark of the records before it
    assert_eq!(
        out.take(),
        vec![
            (10, i64::MIN, 1),
            (10, i64::MIN, 10),
            (20, 9, 2),
            (20, 9, 20),
            (30, 19, 3),
            (30, 19, 30)
        ]
    );
}

fn sorted_vec<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn min_min_by_and_max_by_per_window_equal_a_batch_computation() {
    let records: Vec<Ev> = (0..200i64)
        .map(|i| ((i % 3) as u8, i * 7 % 500, ((i * 37) % 11) as u32))
        .collect();
    let run = |pick: &str| -> BTreeMap<(u8, i64), (i64, u32)> {
        let mut env = Env::new(Config::default().parallelism(2));
        let w = env
            .from_vec(records.clone())
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .key_by(|e| e.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(100)));
        let out = match pick {
            "min" => w
                .min(|e| e.2)
                .map(|w| ((w.key, w.window.start), (0, w.value)))
                .collect(),
            "min_by" => w
                .min_by(|e| e.2)
                .map(|w| ((w.key, w.window.start), (w.value.1, w.value.2)))
                .collect(),
            _ => w
                .max_by(|e| e.2)
                .map(|w| ((w.key, w.window.start), (w.value.1, w.value.2)))
                .collect(),
        };
        env.execute().unwrap();
        out.take().into_iter().collect()
    };
    let mut by_window: BTreeMap<(u8, i64), Vec<Ev>> = BTreeMap::new();
    for &e in &records {
        by_window.entry((e.0, e.1 - e.1 % 100)).or_default().push(e);
    }
    let want_min: BTreeMap<_, _> = by_window
        .iter()
        .map(|(k, v)| (*k, (0, v.iter().map(|e| e.2).min().unwrap())))
        .collect();
    assert_eq!(run("min"), want_min);
    // The winners must carry the extreme value; which record among equals depends on arrival
    // order across the two source subtasks, so compare the values.
    let vals = |m: BTreeMap<(u8, i64), (i64, u32)>| -> BTreeMap<(u8, i64), u32> {
        m.into_iter().map(|(k, v)| (k, v.1)).collect()
    };
    let want_min_by: BTreeMap<_, _> = want_min.iter().map(|(k, v)| (*k, v.1)).collect();
    assert_eq!(vals(run("min_by")), want_min_by);
    let want_max_by: BTreeMap<_, _> = by_window
        .iter()
        .map(|(k, v)| (*k, v.iter().map(|e| e.2).max().unwrap()))
        .collect();
    assert_eq!(vals(run("max_by")), want_max_by);
}
