//! Checkpoints of the operators beyond time windows and process functions: count windows,
//! window joins and interval joins. Each job fails partway with checkpoints on, is restored
//! from its latest checkpoint (at the same or another parallelism), and its committed
//! part-file output must equal a failure-free run's, row for row.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::io::sink::read_part_files;
use flow_core::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Frequent watermarks keep the joins' buffers (written whole at every checkpoint) small.
fn plain(p: usize) -> Config {
    Config::default().parallelism(p).watermark_interval(64)
}

fn config(dir: &Path, p: usize) -> Config {
    plain(p)
        .checkpoint_dir(dir.join("checkpoints"))
        .checkpoint_interval(Duration::from_millis(20))
}

/// Where a run fails: at the first record from index `at` on once a checkpoint of `dir` is
/// complete (so that there is one to restore).
#[derive(Clone)]
struct Failure {
    at: Arc<AtomicU64>,
    dir: std::path::PathBuf,
}

/// `f`, except that it panics (once) as `fail` says: an injected crash.
fn failing<T>(
    fail: Option<Failure>,
    f: impl Fn(u64) -> T + Clone + Send + 'static,
) -> impl FnMut(u64) -> T + Clone + Send + 'static {
    move |i| {
        if let Some(fail) = &fail {
            if i >= fail.at.load(Ordering::Relaxed) && checkpoints(&fail.dir) > 0 {
                // Only the first run fails: the index moves out of reach.
                fail.at.store(u64::MAX, Ordering::Relaxed);
                panic!("injected failure");
            }
        }
        f(i)
    }
}

/// How many checkpoints a directory holds.
fn checkpoints(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("checkpoints"))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".manifest"))
            })
            .count()
        })
        .unwrap_or(0)
}

/// A job under test: builds into `env` at (keyed) parallelism `p`, writing part files under
/// `out`, its source failing as `fail` says (if at all).
type Job = dyn Fn(&mut Env, &Path, Option<Failure>, usize);

/// Runs `job` without failure and without checkpoints, then failing from index `fail_at` on at
/// parallelism `p1` and restored at `p2`, for each `(p1, p2)`; compares the part files of
/// each of `outputs`. `source_parallelism`: the job's default parallelism, when its sources
/// must keep one (the keyed operators then take `p` from the job).
fn assert_restores_exactly(
    job: &Job,
    outputs: &[&str],
    fail_at: u64,
    source_parallelism: Option<usize>,
    runs: &[(usize, usize)],
) {
    check_restores(job, outputs, fail_at, source_parallelism, runs, false)
}

/// [`assert_restores_exactly`] for jobs whose sources keep one subtask, comparing each
/// output's distinct rows.
fn assert_restores_exactly_as_sets(
    job: &Job,
    outputs: &[&str],
    fail_at: u64,
    runs: &[(usize, usize)],
) {
    check_restores(job, outputs, fail_at, Some(1), runs, true)
}

fn check_restores(
    job: &Job,
    outputs: &[&str],
    fail_at: u64,
    source_parallelism: Option<usize>,
    runs: &[(usize, usize)],
    sets: bool,
) {
    let read = |d: &Path| {
        let mut rows = read_part_files(d).unwrap();
        if sets {
            rows.dedup();
        }
        rows
    };
    let reference = tempfile::tempdir().unwrap();
    let mut env = Env::new(plain(source_parallelism.unwrap_or(2)));
    job(&mut env, reference.path(), None, 2);
    env.execute().unwrap();
    let want: Vec<Vec<String>> = outputs
        .iter()
        .map(|o| read(&reference.path().join(o)))
        .collect();
    assert!(
        want.iter().all(|w| !w.is_empty()),
        "the reference run writes something"
    );
    for &(p1, p2) in runs {
        let dir = tempfile::tempdir().unwrap();
        let fail = Failure {
            at: Arc::new(AtomicU64::new(fail_at)),
            dir: dir.path().to_path_buf(),
        };
        let mut env = Env::new(config(dir.path(), source_parallelism.unwrap_or(p1)));
        job(&mut env, dir.path(), Some(fail.clone()), p1);
        assert!(env.execute().is_err(), "the injected failure fails the run");
        assert!(
            checkpoints(dir.path()) > 0,
            "a checkpoint completed before the failure (parallelism {p1})"
        );
        let cfg = config(dir.path(), source_parallelism.unwrap_or(p2)).restore(Restore::Latest);
        let mut env = Env::new(cfg);
        job(&mut env, dir.path(), Some(fail), p2);
        env.execute().unwrap();
        for (o, w) in outputs.iter().zip(&want) {
            let got = read(&dir.path().join(o));
            if &got != w {
                let missing: Vec<_> = w
                    .iter()
                    .filter(|r| got.binary_search(r).is_err())
                    .take(5)
                    .collect();
                let extra: Vec<_> = got
                    .iter()
                    .filter(|r| w.binary_search(r).is_err())
                    .take(5)
                    .collect();
                eprintln!(
                    "{o}: got {} want {}, missing {missing:?} extra {extra:?}",
                    got.len(),
                    w.len()
                );
            }
            assert_eq!(
                &read(&dir.path().join(o)),
                w,
                "output `{o}`, parallelism {p1} then {p2}"
            );
        }
    }
}

/// Event `i`: key, value. Keys repeat irregularly.
fn keyed(i: u64) -> (u64, u64) {
    ((i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) % 61, i)
}

#[test]
fn count_windows_survive_failure_and_rescale() {
    // One source subtask, so that each key's records arrive in the same order in every
    // run (count windows depend on it); the windows run at the parallelism under test.
    let n = 60_000;
    let job = move |env: &mut Env, out: &Path, fail: Option<Failure>, p: usize| {
        let [a, b] = env.generate_n(n, failing(fail, keyed)).fan_out();
        // Tumbling: sums of each key's consecutive 7 records.
        a.key_by(|e| e.0)
            .parallelism(p)
            .window(CountWindows::of(7))
            .sum(|e| e.1)
            .map(|w| (w.key, w.value))
            .write_csv(out.join("tumbling"))
            .unwrap();
        // Sliding: every 3 records of a key, its last 5 (records kept in the state).
        b.key_by(|e| e.0)
            .parallelism(p)
            .window(CountWindows::sliding(5, 3))
            .process(|k, _, items| {
                let first = items.first().map_or(0, |e| e.1);
                let sum: u64 = items.iter().map(|e| e.1).sum();
                [(*k, first, items.len(), sum)]
            })
            .write_csv(out.join("sliding"))
            .unwrap();
    };
    assert_restores_exactly(
        &job,
        &["tumbling", "sliding"],
        n / 2,
        Some(1),
        &[(2, 3), (3, 1), (2, 2)],
    );
}

#[test]
fn windows_with_triggers_and_evictors_survive_failure_and_rescale() {
    // One source subtask: each key's records arrive in the same order in every run (count
    // triggers and evictors depend on it).
    let n = 60_000;
    let job = move |env: &mut Env, out: &Path, fail: Option<Failure>, p: usize| {
        let timed = |i: u64| {
            let (k, v) = keyed(i);
            (k, (i / 20) as i64, v)
        };
        let [a, b, c] = env
            .generate_n(n, failing(fail, timed))
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .fan_out();
        // Early firings every 4 records of a key's window, purging (trigger state: a count).
        a.key_by(|e| e.0)
            .parallelism(p)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(500)))
            .trigger(PurgingTrigger::of(CountTrigger::of(4)))
            .sum(|e| e.2)
            .map(|w| (w.key, w.window.start, w.value))
            .write_csv(out.join("counted"))
            .unwrap();
        // Firings every 100 ms of event time within 1 s windows (trigger timers).
        b.key_by(|e| e.0)
            .parallelism(p)
            .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
            .trigger(ContinuousEventTimeTrigger::of(Duration::from_millis(100)))
            .count()
            .map(|w| (w.key, w.window.start, w.value))
            .write_csv(out.join("continuous"))
            .unwrap();
        // The last 3 records of each window (records kept by the evictor).
        c.key_by(|e| e.0)
            .parallelism(p)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(700)))
            .evictor(CountEvictor::of(3))
            .process(|k, info, items| {
                [(
                    *k,
                    info.window.start,
                    items.iter().map(|e| e.2).sum::<u64>(),
                )]
            })
            .write_csv(out.join("evicted"))
            .unwrap();
    };
    assert_restores_exactly(
        &job,
        &["counted", "continuous", "evicted"],
        n / 2,
        Some(1),
        &[(2, 3), (3, 1)],
    );
}

/// Left event `i`: key, time (ms), index.
fn left(i: u64) -> (u64, i64, u64) {
    (i % 100, (i / 20) as i64, i)
}

/// Right event `j`: key, time (ms), index.
///
/// In the join tests the left source, which fails, is paced (60,000 records per second over
/// all its subtasks): on any machine, fast or busy, it is still running when the first
/// checkpoints complete. Pacing returns the pool thread while it waits, so the join and the
/// right source keep running (a sleeping source would starve them and hold alignment back).
const LEFT_PER_SECOND: u64 = 60_000;
fn right(j: u64) -> (u64, i64, u64) {
    (j * 7 % 100, (j / 20) as i64, j)
}

#[test]
fn window_joins_survive_failure_and_rescale() {
    let (n, m) = (150_000u64, 600_000u64);
    let job = move |env: &mut Env, out: &Path, fail: Option<Failure>, p: usize| {
        let l = env
            .generate_paced(LEFT_PER_SECOND, Some(n), failing(fail, left))
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .key_by(|e| e.0)
            .parallelism(p);
        let r = env
            .generate_n(m, right)
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .key_by(|e| e.0);
        let window = TumblingEventTimeWindows::of(Duration::from_millis(10));
        l.window_join(r, window, |k, a, b| (*k, a.2, b.2))
            .write_csv(out.join("pairs"))
            .unwrap();
    };
    assert_restores_exactly(&job, &["pairs"], n / 5, None, &[(2, 3), (3, 1)]);
}

#[test]
fn interval_joins_survive_failure_and_rescale() {
    let (n, m) = (150_000u64, 600_000u64);
    let job = move |env: &mut Env, out: &Path, fail: Option<Failure>, p: usize| {
        let l = env
            .generate_paced(LEFT_PER_SECOND, Some(n), failing(fail, left))
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .key_by(|e| e.0)
            .parallelism(p);
        let r = env
            .generate_n(m, right)
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .key_by(|e| e.0);
        l.interval_join_signed(r, -4, 6, |k, a, b| (*k, a.2, b.2))
            .write_csv(out.join("pairs"))
            .unwrap();
    };
    assert_restores_exactly(&job, &["pairs"], n / 5, None, &[(2, 3), (3, 1)]);
}

/// Fires and purges a key's global window at each record whose value is a multiple of 11,
/// fires what is left at the end.
#[derive(Clone)]
struct OnEleven;

impl Trigger<(u64, u64)> for OnEleven {
    fn on_element(&mut self, item: &(u64, u64), _: i64, _: u64) -> TriggerResult {
        if item.1.is_multiple_of(11) {
            TriggerResult::FireAndPurge
        } else {
            TriggerResult::Continue
        }
    }
    fn on_end(&mut self, _count: u64) -> TriggerResult {
        TriggerResult::Fire
    }
}

#[test]
fn global_windows_survive_failure_and_rescale() {
    // One source subtask: each key's records arrive in the same order in every run.
    let n = 60_000;
    let job = move |env: &mut Env, out: &Path, fail: Option<Failure>, p: usize| {
        env.generate_n(n, failing(fail, keyed))
            .key_by(|e| e.0)
            .parallelism(p)
            .global_window(OnEleven)
            .process(|k, _, items| {
                let first = items.first().map_or(0, |e| e.1);
                let sum: u64 = items.iter().map(|e| e.1).sum();
                [(*k, first, items.len(), sum)]
            })
            .write_csv(out.join("global"))
            .unwrap();
    };
    assert_restores_exactly(&job, &["global"], n / 2, Some(1), &[(2, 3), (3, 1)]);
}

/// Keyed side: numbers each key's records (keyed state). Broadcast side: numbers the rules
/// it has seen (broadcast state); each subtask reports each rule with that number.
#[derive(Clone)]
struct Numbering;

impl KeyedBroadcastProcessFunction<u64, (u64, u64), u64> for Numbering {
    type State = u64;
    type Broadcast = u64;
    type Out = (u8, u64, u64);
    fn process_element(
        &mut self,
        key: &u64,
        _: (u64, u64),
        n: &mut u64,
        _: &u64,
        ctx: &mut ProcessContext<'_, Self::Out>,
    ) {
        *n += 1;
        ctx.emit((0, *key, *n));
    }
    fn process_broadcast(
        &mut self,
        rule: u64,
        seen: &mut u64,
        ctx: &mut ProcessContext<'_, Self::Out>,
    ) {
        *seen += 1;
        ctx.emit((1, rule, *seen));
    }
}

/// The non-keyed side of the same: numbers the rules it has seen.
#[derive(Clone)]
struct RuleCount;

impl BroadcastProcessFunction<(u64, u64), u64> for RuleCount {
    type Broadcast = u64;
    type Out = (u8, u64, u64);
    fn process_element(&mut self, _: (u64, u64), _: &u64, _: &mut ProcessContext<'_, Self::Out>) {}
    fn process_broadcast(
        &mut self,
        rule: u64,
        seen: &mut u64,
        ctx: &mut ProcessContext<'_, Self::Out>,
    ) {
        *seen += 1;
        ctx.emit((2, rule, *seen));
    }
}

#[test]
fn broadcast_state_survives_failure_and_rescale() {
    // One subtask per source, so that every subtask sees the rules in the same order; the
    // keyed operator runs at the parallelism under test. Every subtask reports every rule:
    // rows are compared as sets, since their number of copies is the parallelism. A
    // broadcast state restored wrongly numbers the later rules differently; keyed state
    // restored wrongly repeats or skips a key's numbers. The rule stream is long (and
    // sparse) so that it still runs when the other source fails.
    let n = 100_000u64;
    let job = move |env: &mut Env, out: &Path, fail: Option<Failure>, p: usize| {
        let [a, b] = env.generate_n(n, failing(fail, keyed)).fan_out();
        let [r1, r2] = env
            .generate_n(4 * n, |i| i)
            .filter(|i| i % 100 == 0)
            .fan_out();
        a.key_by(|e| e.0)
            .parallelism(p)
            .connect_broadcast(r1)
            .process(Numbering)
            .write_csv(out.join("keyed"))
            .unwrap();
        b.connect_broadcast(r2)
            .process(RuleCount)
            .write_csv(out.join("plain"))
            .unwrap();
    };
    assert_restores_exactly_as_sets(&job, &["keyed", "plain"], n / 2, &[(2, 3), (3, 1)]);
}
