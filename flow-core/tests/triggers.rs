//! Triggers and evictors on time windows against a reference model: one `BTreeMap` of records
//! per key and window, fired from each trigger's definition as the watermark advances.
//!
//! The source (`from_iter`) is one subtask, so each window subtask sees its keys' records and
//! the watermarks (one after each source batch) in source order, at any parallelism: the model
//! replays that order exactly.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

type Ev = (u8, i64, u32); // key, timestamp, value

/// Records with timestamps rising by `step` on average, each up to `disorder` early.
fn events(max_len: usize, disorder: i64) -> impl Strategy<Value = Vec<Ev>> {
    proptest::collection::vec((0u8..4, 0i64..40, 0i64..=disorder, 0u32..100), 0..max_len).prop_map(
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
enum Trig {
    Count(u64),
    Continuous(i64),
    EndOfWindow,
}

#[derive(Clone, Copy, Debug)]
enum Evict {
    None,
    Count(usize),
    Time(i64),
}

#[derive(Clone, Copy, Debug)]
struct Setup {
    size: i64,
    slide: i64,
    lateness: i64,
    trig: Trig,
    purging: bool,
    evict: Evict,
}

#[derive(Default, Debug)]
struct Win {
    records: Vec<(u32, i64)>,
    count: u64,
    timers: BTreeSet<i64>,
    next: Option<i64>,
}

/// A firing: key, window start, the values the function saw (in arrival order).
type Firing = (u8, i64, Vec<u32>);

struct Model {
    s: Setup,
    wm: i64,
    wins: BTreeMap<(u8, i64), Win>,
    out: Vec<Firing>,
}

impl Model {
    fn max_ts(&self, start: i64) -> i64 {
        start + self.s.size - 1
    }

    fn fire(&mut self, key: u8, start: i64, purge: bool) {
        let evict = self.s.evict;
        let w = self.wins.get_mut(&(key, start)).unwrap();
        match evict {
            Evict::None => {}
            Evict::Count(n) => {
                let len = w.records.len();
                if len > n {
                    w.records.drain(..len - n);
                }
            }
            Evict::Time(d) => {
                if let Some(newest) = w.records.iter().map(|r| r.1).max() {
                    w.records.retain(|r| r.1 > newest - d);
                }
            }
        }
        if !w.records.is_empty() {
            self.out
                .push((key, start, w.records.iter().map(|r| r.0).collect()));
        }
        if purge {
            w.records.clear();
        }
    }

    fn record(&mut self, (key, ts, v): Ev) {
        let (size, slide) = (self.s.size, self.s.slide);
        let mut start = ts - ts.rem_euclid(slide);
        let mut starts = Vec::new();
        while start > ts - size {
            starts.push(start);
            start -= slide;
        }
        for start in starts {
            let max = self.max_ts(start);
            if max + self.s.lateness <= self.wm {
                continue; // late for this window
            }
            let wm = self.wm;
            let trig = self.s.trig;
            let w = self.wins.entry((key, start)).or_default();
            w.records.push((v, ts));
            let fire = match trig {
                Trig::Count(n) => {
                    w.count += 1;
                    if w.count == n {
                        w.count = 0;
                        true
                    } else {
                        false
                    }
                }
                Trig::EndOfWindow => {
                    if max <= wm {
                        true
                    } else {
                        w.timers.insert(max);
                        false
                    }
                }
                Trig::Continuous(i) => {
                    if max <= wm {
                        true
                    } else {
                        w.timers.insert(max);
                        if w.next.is_none() {
                            let next = (ts - ts.rem_euclid(i) + i).min(max);
                            w.next = Some(next);
                            w.timers.insert(next);
                        }
                        false
                    }
                }
            };
            if fire {
                self.fire(key, start, self.s.purging);
            }
        }
    }

    fn advance(&mut self, wm: i64) {
        if wm <= self.wm {
            return;
        }
        self.wm = wm;
        let keys: Vec<(u8, i64)> = self.wins.keys().copied().collect();
        for (key, start) in keys {
            let max = self.max_ts(start);
            loop {
                let w = self.wins.get_mut(&(key, start)).unwrap();
                let Some(&t) = w.timers.first() else { break };
                if t > wm {
                    break;
                }
                w.timers.remove(&t);
                let fire = if t == max {
                    true
                } else if w.next == Some(t) {
                    if let Trig::Continuous(i) = self.s.trig {
                        let next = (t + i).min(max);
                        w.next = Some(next);
                        w.timers.insert(next);
                    }
                    true
                } else {
                    false
                };
                if fire {
                    self.fire(key, start, self.s.purging);
                }
            }
        }
        let (size, lateness) = (self.s.size, self.s.lateness);
        self.wins
            .retain(|&(_, start), _| start + size - 1 + lateness > wm);
    }

    fn run(s: Setup, records: &[Ev], batch: usize) -> Vec<Firing> {
        let mut m = Model {
            s,
            wm: i64::MIN,
            wins: BTreeMap::new(),
            out: Vec::new(),
        };
        let mut max = i64::MIN;
        for chunk in records.chunks(batch.max(1)) {
            for &r in chunk {
                max = max.max(r.1);
                m.record(r);
            }
            m.advance(max - 1);
        }
        m.advance(i64::MAX);
        let mut out = m.out;
        out.sort();
        out
    }
}

fn ms(x: i64) -> Duration {
    Duration::from_millis(x as u64)
}

/// The job: `process` on tumbling or sliding windows with the setup's trigger and evictor.
fn run_job(s: Setup, records: &[Ev], parallelism: usize, batch: usize) -> Vec<Firing> {
    let mut env = Env::new(Config::default().parallelism(parallelism).batch_size(batch));
    let spec: flow_core::ops::window::WindowSpec = if s.size == s.slide {
        TumblingEventTimeWindows::of(ms(s.size)).into()
    } else {
        SlidingEventTimeWindows::of(ms(s.size), ms(s.slide)).into()
    };
    let windowed = env
        .from_iter(records.to_vec())
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .key_by(|e| e.0)
        .window(spec)
        .allowed_lateness(ms(s.lateness));
    let f = |k: &u8, info: &WindowInfo, items: Vec<Ev>| {
        [(
            *k,
            info.window.start,
            items.iter().map(|e| e.2).collect::<Vec<_>>(),
        )]
    };
    macro_rules! finish {
        ($t:expr) => {
            match s.evict {
                Evict::None => windowed.trigger($t).process(f).collect(),
                Evict::Count(n) => windowed
                    .trigger($t)
                    .evictor(CountEvictor::of(n))
                    .process(f)
                    .collect(),
                Evict::Time(d) => windowed
                    .trigger($t)
                    .evictor(TimeEvictor::of(ms(d)))
                    .process(f)
                    .collect(),
            }
        };
    }
    let got = match (s.trig, s.purging) {
        (Trig::Count(n), false) => finish!(CountTrigger::of(n)),
        (Trig::Count(n), true) => finish!(PurgingTrigger::of(CountTrigger::of(n))),
        (Trig::Continuous(i), false) => finish!(ContinuousEventTimeTrigger::of(ms(i))),
        (Trig::Continuous(i), true) => {
            finish!(PurgingTrigger::of(ContinuousEventTimeTrigger::of(ms(i))))
        }
        (Trig::EndOfWindow, false) => finish!(EventTimeTrigger::create()),
        (Trig::EndOfWindow, true) => finish!(PurgingTrigger::of(EventTimeTrigger::create())),
    };
    env.execute().unwrap();
    let mut got = got.take();
    got.sort();
    got
}

fn windows() -> impl Strategy<Value = (i64, i64)> {
    prop_oneof![
        (1i64..200).prop_map(|s| (s, s)),
        (1i64..200, 1i64..100).prop_map(|(size, slide)| (size.max(slide), slide)),
    ]
}

fn setup(
    trig: impl Strategy<Value = Trig>,
    evict: impl Strategy<Value = Evict>,
) -> impl Strategy<Value = Setup> {
    (
        windows(),
        prop_oneof![Just(0i64), 1i64..100],
        trig,
        any::<bool>(),
        evict,
    )
        .prop_map(|((size, slide), lateness, trig, purging, evict)| Setup {
            size,
            slide,
            lateness,
            trig,
            purging,
            evict,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// CountTrigger (plain and purging) fires every n records of a key's window.
    #[test]
    fn count_trigger_matches_the_model(
        records in events(120, 30),
        s in setup((1u64..6).prop_map(Trig::Count), Just(Evict::None)),
        parallelism in 1usize..=3,
        batch in 1usize..10,
    ) {
        prop_assert_eq!(run_job(s, &records, parallelism, batch), Model::run(s, &records, batch));
    }

    /// ContinuousEventTimeTrigger (plain and purging) fires every interval and at the end.
    #[test]
    fn continuous_trigger_matches_the_model(
        records in events(120, 30),
        s in setup((1i64..80).prop_map(Trig::Continuous), Just(Evict::None)),
        parallelism in 1usize..=3,
        batch in 1usize..10,
    ) {
        prop_assert_eq!(run_job(s, &records, parallelism, batch), Model::run(s, &records, batch));
    }

    /// Count and time evictors, under each trigger.
    #[test]
    fn evictors_match_the_model(
        records in events(120, 30),
        s in setup(
            prop_oneof![
                Just(Trig::EndOfWindow),
                (1u64..6).prop_map(Trig::Count),
                (1i64..80).prop_map(Trig::Continuous),
            ],
            prop_oneof![(0usize..5).prop_map(Evict::Count), (0i64..100).prop_map(Evict::Time)],
        ),
        parallelism in 1usize..=3,
        batch in 1usize..10,
    ) {
        prop_assert_eq!(run_job(s, &records, parallelism, batch), Model::run(s, &records, batch));
    }

    /// With the end-of-window trigger and no evictor, the triggered operator gives what the
    /// default window operator gives.
    #[test]
    fn event_time_trigger_equals_the_default(
        records in events(120, 30),
        (size, slide) in windows(),
        lateness in prop_oneof![Just(0i64), 1i64..100],
        parallelism in 1usize..=3,
        batch in 1usize..10,
    ) {
        let run = |triggered: bool| {
            let mut env = Env::new(Config::default().parallelism(parallelism).batch_size(batch));
            let windowed = env
                .from_iter(records.clone())
                .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
                .key_by(|e| e.0)
                .window(SlidingEventTimeWindows::of(ms(size), ms(slide)))
                .allowed_lateness(ms(lateness));
            let got = if triggered {
                windowed.trigger(EventTimeTrigger::create()).sum(|e| e.2 as u64).collect()
            } else {
                windowed.sum(|e| e.2 as u64).collect()
            };
            env.execute().unwrap();
            let mut got: Vec<_> = got.take().into_iter().map(|w| (w.key, w.window, w.value)).collect();
            got.sort();
            got
        };
        prop_assert_eq!(run(true), run(false));
    }
}

/// A purging count trigger splits a window into consecutive groups of n records; the rest
/// never fires, and the window's state is gone after its end.
#[test]
fn purging_count_trigger_splits_windows() {
    let mut env = Env::new(Config::default().parallelism(2));
    let sums = env
        .from_iter([
            (10, 1),
            (20, 2),
            (30, 3),
            (40, 4),
            (50, 5),
            (1_100, 6),
            (1_200, 7),
        ])
        .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
        .key_by(|_| 0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .trigger(PurgingTrigger::of(CountTrigger::of(2)))
        .aggregate_process(flow_core::ops::aggregate::Count, |_, info, n| {
            (info.window.start, n)
        })
        .collect();
    env.execute().unwrap();
    assert_eq!(sums.take(), vec![(0, 2), (0, 2), (1_000, 2)]);
}

/// A custom trigger: fires at the end and whenever a record's value is 0, purging then.
#[derive(Clone)]
struct OnZero;
impl WindowTrigger<(i64, u32)> for OnZero {
    type State = ();
    fn on_element(
        &mut self,
        item: &(i64, u32),
        _: i64,
        window: &Window,
        _: &mut (),
        ctx: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        ctx.register_timer(window.max_timestamp());
        if item.1 == 0 {
            TriggerResult::FireAndPurge
        } else {
            TriggerResult::Continue
        }
    }
    fn on_time(
        &mut self,
        _: i64,
        _: &Window,
        _: &mut (),
        _: &mut TriggerContext<'_>,
    ) -> TriggerResult {
        TriggerResult::Fire
    }
}

#[test]
fn custom_trigger() {
    let mut env = Env::new(Config::default().parallelism(1));
    let sums = env
        .from_iter([(10, 1), (20, 0), (30, 3), (40, 4), (1_500, 9)])
        .assign_timestamps(|e| e.0, WatermarkStrategy::monotonous())
        .key_by(|_| 0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .trigger(OnZero)
        .sum(|e| e.1)
        .map(|w| (w.window.start, w.value))
        .collect();
    env.execute().unwrap();
    assert_eq!(sums.take(), vec![(0, 1), (0, 7), (1_000, 9)]);
}

#[test]
fn session_windows_take_no_trigger() {
    let mut env = Env::new(Config::default());
    let _out = env
        .from_iter([(1u8, 1i64)])
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .key_by(|e| e.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_secs(1)))
        .trigger(CountTrigger::of(2))
        .count()
        .collect();
    let err = env.execute().unwrap_err().to_string();
    assert!(
        err.contains("tumbling and sliding windows only, not session gap 1000 ms"),
        "{err}"
    );
    assert!(err.contains("tests/triggers.rs:"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// With a firing per record, the window state counts a window's firings (= its records)
    /// and the global state a key's firings (= its records in all windows so far).
    #[test]
    fn window_and_global_state(
        records in events(80, 30),
        (size, slide) in windows(),
        lateness in prop_oneof![Just(0i64), 1i64..100],
        parallelism in 1usize..=3,
        batch in 1usize..10,
    ) {
        let mut env = Env::new(Config::default().parallelism(parallelism).batch_size(batch));
        let got = env
            .from_iter(records.clone())
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .key_by(|e| e.0)
            .window(SlidingEventTimeWindows::of(ms(size), ms(slide)))
            .allowed_lateness(ms(lateness))
            .trigger(CountTrigger::of(1))
            .process_with_state(
                |k: &u8, _: &WindowInfo, items: Vec<Ev>,
                 ctx: &mut StatefulWindowContext<'_, (u8, usize, u64, u64), u64, u64>| {
                    *ctx.window_state() += 1;
                    *ctx.global_state() += 1;
                    let (w, g) = (*ctx.window_state(), *ctx.global_state());
                    ctx.emit((*k, items.len(), w, g));
                },
            )
            .collect();
        env.execute().unwrap();
        let got = got.take();
        let mut per_key: BTreeMap<u8, Vec<u64>> = BTreeMap::new();
        for (k, n, w, g) in got {
            prop_assert_eq!(n as u64, w);
            per_key.entry(k).or_default().push(g);
        }
        for (_, gs) in per_key {
            let mut sorted = gs.clone();
            sorted.sort();
            prop_assert_eq!(sorted, (1..=gs.len() as u64).collect::<Vec<_>>());
        }
    }
}
