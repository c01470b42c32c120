//! `#[process_fn]` end to end: keyed value, list and map state, event-time timers handled by
//! the `on_timer` function, the generated state's names, and configuration (`config = ...`).
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;

/// account, timestamp, amount
type Tx = (char, i64, u32);

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Out {
    /// The account's third transaction, at its timestamp.
    Third { account: char, at: i64 },
    /// The amounts of the account's transactions up to a full 100 ms of event time, and their
    /// sum.
    Flush {
        account: char,
        at: i64,
        amounts: Vec<u32>,
        sum: u32,
    },
}

/// The end of the 100 ms of event time `ts` falls in.
fn flush_time(ts: i64) -> i64 {
    ts / 100 * 100 + 99
}

/// Counts each account's transactions, and buffers their amounts until the end of their
/// 100 ms of event time, when [`flush`] emits them.
#[process_fn(on_timer = flush)]
fn batch_amounts(
    account: &char,
    tx: Tx,
    count: &mut ValueState<u32>,
    pending: &mut ListState<(i64, u32)>,
    sums: &mut MapState<i64, u32>,
    ctx: &mut Context<'_, Out>,
) {
    let (_, ts, amount) = tx;
    let n = count.get_or_insert_with(|| 0);
    *n += 1;
    if *n == 3 {
        ctx.emit(Out::Third {
            account: *account,
            at: ctx.timestamp(),
        });
    }
    pending.add((ts, amount));
    let due = flush_time(ts);
    match sums.get_mut(&due) {
        Some(sum) => *sum += amount,
        None => {
            sums.put(due, amount);
        }
    }
    // Registered once per record: timers are deduplicated per key and time.
    ctx.register_event_time_timer(due);
}

/// Emits the amounts due at `timestamp`, keeping the later ones.
fn flush(
    account: &char,
    timestamp: i64,
    count: &mut ValueState<u32>,
    pending: &mut ListState<(i64, u32)>,
    sums: &mut MapState<i64, u32>,
    ctx: &mut Context<'_, Out>,
) {
    assert_eq!(ctx.timestamp(), timestamp);
    assert!(count.get().is_some());
    let (due, later): (Vec<_>, Vec<_>) = pending.take().into_iter().partition(|p| p.0 <= timestamp);
    pending.update(later);
    ctx.emit(Out::Flush {
        account: *account,
        at: timestamp,
        amounts: due.into_iter().map(|p| p.1).collect(),
        sum: sums.remove(&timestamp).unwrap(),
    });
}

#[test]
fn state_and_timers_of_a_generated_process_function() {
    let mut env = Env::new(Config::default().parallelism(2).batch_size(1));
    let out = env
        .from_iter([
            ('a', 10, 50),
            ('b', 20, 500),
            ('a', 60, 150),
            ('a', 120, 30),
            ('b', 250, 70),
        ])
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .key_by(|e| e.0)
        .process(BatchAmounts)
        .collect();
    env.execute().unwrap();
    let mut got = out.take();
    got.sort();
    // A watermark (the largest timestamp - 1) follows every record: a's record at 120 is
    // processed before the watermark 119 fires the timers at 99, so it stays pending there;
    // the watermark 249 fires a's timer at 199; the end of input fires b's at 299.
    let flush = |account, at, amounts: &[u32]| Out::Flush {
        account,
        at,
        amounts: amounts.to_vec(),
        sum: amounts.iter().sum(),
    };
    assert_eq!(
        got,
        vec![
            Out::Third {
                account: 'a',
                at: 120
            },
            flush('a', 99, &[50, 150]),
            flush('a', 199, &[30]),
            flush('b', 99, &[500]),
            flush('b', 299, &[70]),
        ]
    );
}

#[test]
fn generated_state_names_follow_the_parameters() {
    assert_eq!(
        <BatchAmountsState as KeyedStateNames>::NAMES,
        ["count", "pending", "sums"]
    );
    assert!(<ForwardState as KeyedStateNames>::NAMES.is_empty());
    let state = BatchAmountsState::default();
    assert!(state.count.is_empty() && state.pending.is_empty() && state.sums.is_empty());
}

/// Stateless, without timers, with a chosen name.
#[process_fn(name = Forward)]
fn forward_large(_: &u8, item: (u8, i64, u32), ctx: &mut Context<'_, (u8, u32)>) {
    if item.2 >= 10 {
        ctx.emit((item.0, item.2));
    }
}

#[test]
fn a_named_stateless_process_function() {
    let mut env = Env::new(Config::default().parallelism(2));
    let out = env
        .from_iter((0..40u32).map(|i| ((i % 3) as u8, i64::from(i), i)))
        .key_by(|e| e.0)
        .process(Forward)
        .collect();
    env.execute().unwrap();
    let mut got = out.take();
    got.sort();
    let mut expected: Vec<(u8, u32)> = (10..40).map(|i| ((i % 3) as u8, i)).collect();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn closures_serve_as_keyed_process_functions_with_state_and_timers() {
    for p in 1..=3 {
        let mut env = Env::new(Config::default().parallelism(p).batch_size(7));
        // Per key, the sum of its values, emitted by an event-time timer at the end.
        let sums = env
            .from_vec(
                (0..500i64)
                    .map(|i| ((i % 13) as u32, i, i as u64))
                    .collect(),
            )
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .key_by(|e| e.0)
            .process_fn_with_timer(
                |_k, e, sum: &mut u64, ctx| {
                    *sum += e.2;
                    ctx.register_event_time_timer(i64::MAX - 1);
                },
                |k, _ts, sum, ctx| ctx.emit((*k, *sum)),
            )
            .collect();
        env.execute().unwrap();
        let mut got = sums.take();
        got.sort();
        let want: Vec<(u32, u64)> = (0..13u32)
            .map(|k| (k, (0..500u64).filter(|i| i % 13 == u64::from(k)).sum()))
            .collect();
        assert_eq!(got, want, "parallelism {p}");
    }
}

/// How repeated ids are suppressed, from the command line in a real job.
#[derive(Clone, Debug)]
struct DedupConfig {
    /// The length of the intervals of event time in which an id is emitted once.
    interval: i64,
}

/// Emits each id once per interval of event time (`cfg.interval` long, from 0), with the
/// interval's start, counting the repeats; the timer at the interval's end forgets it.
#[process_fn(config = DedupConfig, on_timer = forget)]
fn dedup(
    cfg: &DedupConfig,
    id: &u32,
    (_, ts): (u32, i64),
    seen: &mut MapState<i64, u32>,
    ctx: &mut Context<'_, (u32, i64)>,
) {
    let start = ts - ts.rem_euclid(cfg.interval);
    match seen.get_mut(&start) {
        Some(repeats) => *repeats += 1,
        None => {
            seen.put(start, 0);
            ctx.emit((*id, start));
            ctx.register_event_time_timer(start + cfg.interval - 1);
        }
    }
}

/// Forgets the interval ending at `timestamp`: no record of it can come any more.
fn forget(
    cfg: &DedupConfig,
    _id: &u32,
    timestamp: i64,
    seen: &mut MapState<i64, u32>,
    _ctx: &mut Context<'_, (u32, i64)>,
) {
    assert!(seen.remove(&(timestamp + 1 - cfg.interval)).is_some());
}

#[test]
fn a_configured_process_function_deduplicates_with_its_interval() {
    // Ids 0..5, each seen every 35 ms of event time.
    let events: Vec<(u32, i64)> = (0..200i64).map(|i| ((i % 5) as u32, i * 7)).collect();
    for interval in [10, 100, 1_000] {
        let mut want: Vec<(u32, i64)> = events
            .iter()
            .map(|&(id, ts)| (id, ts / interval * interval))
            .collect();
        want.sort_unstable();
        want.dedup();
        for p in 1..=2 {
            let mut env = Env::new(Config::default().parallelism(p).batch_size(3));
            let out = env
                .from_vec(events.clone())
                .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
                .key_by(|e| e.0)
                .process(Dedup::new(DedupConfig { interval }))
                .collect();
            env.execute().unwrap();
            let mut got = out.take();
            got.sort_unstable();
            assert_eq!(got, want, "interval {interval}, parallelism {p}");
        }
    }
    // The struct holds the configuration it was built with.
    assert_eq!(Dedup(DedupConfig { interval: 3 }).0.interval, 3);
}
