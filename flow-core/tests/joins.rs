//! Two-input operators against reference computations.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;
use proptest::prelude::*;
use std::time::Duration;

type Rec = (u8, i64, u32); // key, timestamp, id

fn side(max_len: usize) -> impl Strategy<Value = Vec<Rec>> {
    proptest::collection::vec((0u8..4, 0i64..30, 0i64..=20), 0..max_len).prop_map(|v| {
        let mut t = 0i64;
        v.into_iter()
            .enumerate()
            .map(|(i, (k, step, jitter))| {
                t += step;
                (k, t - jitter, i as u32)
            })
            .collect()
    })
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    /// With watermarks that cover the disorder (nothing is late), the interval join emits
    /// exactly the pairs of equal keys with `a.ts + lower <= b.ts <= a.ts + upper`.
    #[test]
    fn interval_join_equals_the_nested_loop(
        left in side(120),
        right in side(120),
        lower in -40i64..20,
        span in 0i64..50,
        parallelism in 1usize..=4,
        batch in 1usize..16,
    ) {
        let upper = lower + span;
        let bound = Duration::from_millis(20);
        let mut env = Env::new(Config::default().parallelism(parallelism).batch_size(batch));
        let a = env.from_vec(left.clone()).assign_timestamps(|r| r.1, WatermarkStrategy::bounded_out_of_orderness(bound)).key_by(|r| r.0);
        let b = env.from_vec(right.clone()).assign_timestamps(|r| r.1, WatermarkStrategy::bounded_out_of_orderness(bound)).key_by(|r| r.0);
        let out = a.interval_join_signed(b, lower, upper, |k, x, y| (*k, x.2, y.2)).collect();
        env.execute().unwrap();
        let mut want = Vec::new();
        for x in &left {
            for y in &right {
                if x.0 == y.0 && x.1 + lower <= y.1 && y.1 <= x.1 + upper {
                    want.push((x.0, x.2, y.2));
                }
            }
        }
        prop_assert_eq!(sorted(out.take()), sorted(want));
    }

    /// A window join pairs the records of equal keys in the same tumbling window.
    #[test]
    fn window_join_equals_the_nested_loop(
        left in side(100),
        right in side(100),
        size in 1i64..80,
        parallelism in 1usize..=4,
    ) {
        let bound = Duration::from_millis(20);
        let mut env = Env::new(Config::default().parallelism(parallelism).batch_size(8));
        let a = env.from_vec(left.clone()).assign_timestamps(|r| r.1, WatermarkStrategy::bounded_out_of_orderness(bound)).key_by(|r| r.0);
        let b = env.from_vec(right.clone()).assign_timestamps(|r| r.1, WatermarkStrategy::bounded_out_of_orderness(bound)).key_by(|r| r.0);
        let out = a
            .window_join(b, TumblingEventTimeWindows::of(Duration::from_millis(size as u64)), |k, x, y| (*k, x.2, y.2))
            .collect();
        env.execute().unwrap();
        let win = |t: i64| t - t.rem_euclid(size);
        let mut want = Vec::new();
        for x in &left {
            for y in &right {
                if x.0 == y.0 && win(x.1) == win(y.1) {
                    want.push((x.0, x.2, y.2));
                }
            }
        }
        prop_assert_eq!(sorted(out.take()), sorted(want));
    }
}

/// Flink's classic `connect` example: a control stream blocks words of a data stream. Words
/// are decided at an event-time timer, once the watermark (the minimum over both inputs) has
/// passed them, so a control record with an earlier timestamp always counts, whatever the
/// order in which the two sources' records arrive.
#[derive(Clone)]
struct Blocklist;

#[derive(Default, serde::Serialize, serde::Deserialize)]
struct WordState {
    blocked_from: Option<i64>,
    pending: Vec<i64>,
}

impl KeyedCoProcessFunction<String, (String, i64), (String, i64)> for Blocklist {
    type State = WordState;
    type Out = (String, i64);
    fn process_left(
        &mut self,
        _: &String,
        c: (String, i64),
        s: &mut WordState,
        _: &mut Context<'_, Self::Out>,
    ) {
        s.blocked_from = Some(s.blocked_from.map_or(c.1, |b| b.min(c.1)));
    }
    fn process_right(
        &mut self,
        _: &String,
        w: (String, i64),
        s: &mut WordState,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        s.pending.push(w.1);
        ctx.register_event_time_timer(w.1);
    }
    fn on_timer(
        &mut self,
        word: &String,
        ts: i64,
        s: &mut WordState,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        let blocked_from = s.blocked_from;
        s.pending.retain(|&t| {
            if t > ts {
                return true;
            }
            if blocked_from.is_none_or(|b| t < b) {
                ctx.emit((word.clone(), t));
            }
            false
        });
    }
}

#[test]
fn connected_streams_share_keyed_state_and_timers() {
    for p in 1..=3 {
        let mut env = Env::new(Config::default().parallelism(p).batch_size(1));
        // "spam" is blocked from time 5 on; "eggs" from time 100 (after all its records).
        let control = env
            .from_iter([("spam".to_string(), 5i64), ("eggs".to_string(), 100)])
            .assign_timestamps(|c| c.1, WatermarkStrategy::monotonous())
            .key_by(|c| c.0.clone());
        let words = env
            .from_iter(
                [
                    ("ham", 1),
                    ("spam", 2),
                    ("eggs", 3),
                    ("spam", 7),
                    ("ham", 9),
                ]
                .map(|(w, t)| (w.to_string(), t)),
            )
            .assign_timestamps(|w| w.1, WatermarkStrategy::monotonous())
            .key_by(|w| w.0.clone());
        let out = control.connect(words).process(Blocklist).collect();
        env.execute().unwrap();
        let want: Vec<(String, i64)> = [("eggs", 3), ("ham", 1), ("ham", 9), ("spam", 2)]
            .map(|(w, t)| (w.to_string(), t))
            .to_vec();
        assert_eq!(sorted(out.take()), want, "parallelism {p}");
    }
}

#[test]
fn a_co_process_function_sees_both_inputs_in_event_time_with_timers() {
    /// Emits, at each key's timer, how many records each side had.
    #[derive(Clone)]
    struct Tally;
    impl KeyedCoProcessFunction<u8, Rec, Rec> for Tally {
        type State = (u32, u32);
        type Out = (u8, u32, u32);
        fn process_left(
            &mut self,
            _: &u8,
            r: Rec,
            s: &mut (u32, u32),
            ctx: &mut Context<'_, Self::Out>,
        ) {
            s.0 += 1;
            ctx.register_event_time_timer(r.1 - r.1 % 100 + 99);
        }
        fn process_right(
            &mut self,
            _: &u8,
            r: Rec,
            s: &mut (u32, u32),
            ctx: &mut Context<'_, Self::Out>,
        ) {
            s.1 += 1;
            ctx.register_event_time_timer(r.1 - r.1 % 100 + 99);
        }
        fn on_timer(
            &mut self,
            k: &u8,
            _: i64,
            s: &mut (u32, u32),
            ctx: &mut Context<'_, Self::Out>,
        ) {
            ctx.emit((*k, s.0, s.1));
            *s = (0, 0);
        }
    }
    let mut env = Env::new(Config::default().parallelism(3).batch_size(2));
    let left: Vec<Rec> = (0..300)
        .map(|i| ((i % 3) as u8, i as i64, i as u32))
        .collect();
    let right: Vec<Rec> = (0..150)
        .map(|i| ((i % 3) as u8, 2 * i as i64, i as u32))
        .collect();
    let a = env
        .from_vec(left)
        .assign_timestamps(|r| r.1, WatermarkStrategy::monotonous())
        .key_by(|r| r.0);
    let b = env
        .from_vec(right)
        .assign_timestamps(|r| r.1, WatermarkStrategy::monotonous())
        .key_by(|r| r.0);
    let out = a.connect(b).process(Tally).collect();
    env.execute().unwrap();
    let got = out.take();
    // Every 100 ms of event time, each of the 3 keys saw ~33 left and ~17 right records: the
    // counts per timer must add up to all records, whatever the interleaving of the splits.
    assert_eq!(got.iter().map(|g| g.1).sum::<u32>(), 300);
    assert_eq!(got.iter().map(|g| g.2).sum::<u32>(), 150);
    assert_eq!(got.len(), 9, "one timer per key and 100 ms: {got:?}");
}

#[derive(Clone)]
struct CountAndEcho;
impl KeyedBroadcastProcessFunction<u32, (u32, u64), String> for CountAndEcho {
    type State = u64;
    type Broadcast = Vec<String>;
    type Out = String;
    fn process_element(
        &mut self,
        key: &u32,
        _: (u32, u64),
        n: &mut u64,
        _rules: &Vec<String>,
        ctx: &mut ProcessContext<'_, String>,
    ) {
        *n += 1;
        ctx.emit(format!("key {key}: {n}"));
    }
    fn process_broadcast(
        &mut self,
        rule: String,
        rules: &mut Vec<String>,
        ctx: &mut ProcessContext<'_, String>,
    ) {
        rules.push(rule.clone());
        ctx.emit(format!("rule {rule} #{}", rules.len()));
    }
}

#[test]
fn every_subtask_sees_every_broadcast_record_and_keys_keep_their_state() {
    for p in 1..=3 {
        let mut env = Env::new(Config::default().parallelism(p));
        let rules = env.from_iter(["x".to_string(), "y".to_string()]);
        let out = env
            .from_vec((0..300u64).map(|i| ((i % 5) as u32, i)).collect())
            .key_by(|e| e.0)
            .connect_broadcast(rules)
            .process(CountAndEcho)
            .collect();
        env.execute().unwrap();
        let got = out.take();
        let rules: Vec<&String> = got.iter().filter(|s| s.starts_with("rule")).collect();
        assert_eq!(rules.len(), 2 * p, "each subtask saw each rule: {rules:?}");
        assert_eq!(
            rules.iter().filter(|r| r.as_str() == "rule y #2").count(),
            p
        );
        // Each key counted all 60 of its records, in whichever subtask owns it.
        for k in 0..5 {
            assert!(got.contains(&format!("key {k}: 60")), "key {k}");
        }
        assert_eq!(got.len() - rules.len(), 300);
    }
}

#[test]
fn connected_streams_of_two_types_map_into_one() {
    let mut env = Env::new(Config::default().parallelism(3));
    let a = env.from_vec((0..100u32).collect());
    let b = env.from_iter((0..50).map(|i| format!("w{i}")));
    let out = a
        .connect(b)
        .map(|n| n as usize, |w| 1000 + w.len())
        .collect();
    env.execute().unwrap();
    let got = out.take();
    assert_eq!(got.len(), 150);
    assert_eq!(got.iter().filter(|&&x| x >= 1000).count(), 50);
}

#[derive(Clone)]
struct Tally;
impl BroadcastProcessFunction<u32, String> for Tally {
    type Broadcast = Vec<String>;
    type Out = String;
    fn process_element(
        &mut self,
        x: u32,
        _rules: &Vec<String>,
        ctx: &mut ProcessContext<'_, String>,
    ) {
        ctx.emit(format!("x{x}"));
    }
    fn process_broadcast(
        &mut self,
        rule: String,
        rules: &mut Vec<String>,
        ctx: &mut ProcessContext<'_, String>,
    ) {
        rules.push(rule.clone());
        ctx.emit(format!("rule {rule} #{}", rules.len()));
    }
}

#[test]
fn a_non_keyed_stream_connected_with_a_broadcast_sees_every_rule_in_every_subtask() {
    for p in 1..=3 {
        let mut env = Env::new(Config::default().parallelism(p));
        let rules = env.from_iter(["x".to_string(), "y".to_string()]);
        let out = env
            .from_vec((0..100u32).collect())
            .connect_broadcast(rules)
            .process(Tally)
            .collect();
        env.execute().unwrap();
        let got = out.take();
        assert_eq!(got.iter().filter(|s| s.as_str() == "rule y #2").count(), p);
        assert_eq!(got.iter().filter(|s| s.starts_with('x')).count(), 100);
        assert_eq!(got.len(), 100 + 2 * p);
    }
}
