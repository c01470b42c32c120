//! Checkpoints end to end, in process: a job that fails after some checkpoints resumes from
//! the latest one (at the same or another parallelism) and its committed part-file output
//! equals a run without failure, row for row; a checkpoint that does not fit the job is
//! refused with an error naming what differs. (Killed processes: `examples/tests/crash.rs`.)
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::io::sink::read_part_files;
use flow_core::prelude::*;
use proptest::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Event `i` of a deterministic stream: key, event time (ms), value.
fn event(i: u64) -> (u32, i64, u64) {
    let key = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as u32 % 97;
    (key, (i / 10) as i64, i % 13)
}

/// The job under test: keyed 1 s tumbling window sums and a rolling count per key, both to
/// part files. `fail_at`: the job panics when the source reaches this index (a crash).
fn build(env: &mut Env, n: u64, out: &Path, fail_at: Option<Arc<AtomicU64>>) {
    let events = env
        .generate_n(n, move |i| {
            if let Some(f) = &fail_at {
                if f.load(Ordering::Relaxed) == i {
                    // Only the first run fails: the index moves out of reach.
                    f.store(u64::MAX, Ordering::Relaxed);
                    panic!("injected failure");
                }
            }
            event(i)
        })
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous());
    events
        .key_by(|e| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .sum(|e| e.2)
        .map(|w| (w.key, w.window.start, w.value))
        .write_csv(out.join("windows"))
        .unwrap();
}

fn config(dir: &Path, p: usize) -> Config {
    Config::default()
        .parallelism(p)
        .checkpoint_dir(dir.join("checkpoints"))
        .checkpoint_interval(Duration::from_millis(2))
}

/// The rows of a failure-free run without checkpoints.
fn reference(n: u64) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new(Config::default().parallelism(2));
    build(&mut env, n, dir.path(), None);
    env.execute().unwrap();
    read_part_files(&dir.path().join("windows")).unwrap()
}

/// Failed runs that had completed a checkpoint before failing.
static RESTORED: AtomicU64 = AtomicU64::new(0);

/// Runs the job with a failure at `fail_at` at parallelism `p1`, then restores at `p2`;
/// returns the committed rows.
fn fail_and_restore(n: u64, fail_at: u64, p1: usize, p2: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let fail = Arc::new(AtomicU64::new(fail_at));
    let mut env = Env::new(config(dir.path(), p1));
    build(&mut env, n, dir.path(), Some(fail.clone()));
    let first = env.execute();
    assert!(first.is_err(), "the injected failure fails the first run");
    // Whatever is visible now was committed by a complete checkpoint: no duplicates.
    let visible = read_part_files(&dir.path().join("windows")).unwrap();
    let mut dedup = visible.clone();
    dedup.dedup();
    assert_eq!(visible, dedup, "committed output holds no duplicate row");
    let checkpoints = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .filter(|e| {
            let e = e.as_ref().unwrap();
            e.file_name().to_string_lossy().ends_with(".manifest")
        })
        .count();
    RESTORED.fetch_add((checkpoints > 0) as u64, Ordering::Relaxed);
    let mut env = Env::new(config(dir.path(), p2).restore(Restore::Latest));
    build(&mut env, n, dir.path(), Some(fail));
    env.execute().unwrap();
    read_part_files(&dir.path().join("windows")).unwrap()
}

#[test]
fn a_job_with_checkpoints_writes_what_a_job_without_writes() {
    let n = 200_000;
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new(config(dir.path(), 2));
    build(&mut env, n, dir.path(), None);
    let summary = env.execute().unwrap();
    assert!(!summary.checkpoints.is_empty(), "at least the final one");
    assert_eq!(
        read_part_files(&dir.path().join("windows")).unwrap(),
        reference(n)
    );
    // The finished job's last checkpoint holds its sources' ends and no keyed state (nothing
    // can reach its operators again), so no segment is left.
    let cp = dir.path().join("checkpoints");
    let store = flow_state::CheckpointStore::open(&cp, Arc::new(flow_state::FsStorage)).unwrap();
    let last = store.latest_complete().unwrap().checkpoint.unwrap();
    assert_eq!(summary.checkpoints.last().unwrap().id, last);
    let view = store.restore_view(last).unwrap();
    assert_eq!(view.states().count(), 0);
    assert!(view
        .metadata_entries()
        .any(|(n, _)| n.starts_with("source/")));
    let segments = std::fs::read_dir(&cp)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".seg")
        })
        .count();
    assert_eq!(segments, 0);
}

#[test]
fn a_failed_job_resumes_from_its_latest_checkpoint_exactly_once() {
    let n = 400_000;
    let want = reference(n);
    for (fail_at, p1, p2) in [
        (150_000, 2, 2),
        (300_000, 1, 1),
        (250_000, 2, 3),
        (100_000, 3, 1),
    ] {
        assert_eq!(
            fail_and_restore(n, fail_at, p1, p2),
            want,
            "failure at {fail_at}, parallelism {p1} then {p2}"
        );
    }
    assert!(
        RESTORED.load(Ordering::Relaxed) >= 2,
        "most failed runs had a checkpoint to restore"
    );
}

#[test]
fn restoring_with_no_checkpoint_starts_from_the_beginning() {
    let n = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new(config(dir.path(), 2).restore(Restore::Latest));
    build(&mut env, n, dir.path(), None);
    env.execute().unwrap();
    assert_eq!(
        read_part_files(&dir.path().join("windows")).unwrap(),
        reference(n)
    );
}

#[test]
fn restoring_a_finished_job_publishes_nothing_twice() {
    let n = 50_000;
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let mut env = Env::new(config(dir.path(), 2).restore(Restore::Latest));
        build(&mut env, n, dir.path(), None);
        env.execute().unwrap();
    }
    assert_eq!(
        read_part_files(&dir.path().join("windows")).unwrap(),
        reference(n)
    );
}

#[test]
fn a_checkpoint_whose_state_does_not_fit_the_job_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new(config(dir.path(), 1));
    env.generate_n(1000, |i| (i % 7, i))
        .key_by(|e| e.0)
        .sum(|e| e.1)
        .uid("sums")
        .discard();
    env.execute().unwrap();
    // Same uid, another accumulator type.
    let mut env = Env::new(config(dir.path(), 1).restore(Restore::Latest));
    env.generate_n(1000, |i| (i % 7, i as f64))
        .key_by(|e| e.0)
        .sum(|e| e.1)
        .uid("sums")
        .discard();
    let err = env.execute().unwrap_err().to_string();
    assert!(err.contains("`sums`") && err.contains("f64"), "{err}");
    // Another uid: the checkpoint's state has no operator.
    let mut env = Env::new(config(dir.path(), 1).restore(Restore::Latest));
    env.generate_n(1000, |i| (i % 7, i))
        .key_by(|e| e.0)
        .sum(|e| e.1)
        .uid("totals")
        .discard();
    let err = env.execute().unwrap_err().to_string();
    assert!(
        err.contains("`sums`") && err.contains("does not have"),
        "{err}"
    );
}

#[test]
fn operators_that_cannot_checkpoint_refuse_to_start_with_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new(config(dir.path(), 1));
    env.generate_n(10, |i| (i % 2, i))
        .key_by(|e| e.0)
        // Sliding count windows keep records, whose type `count` does not require to be
        // encodable.
        .window(CountWindows::sliding(3, 1))
        .count()
        .discard();
    let err = env.execute().unwrap_err().to_string();
    assert!(err.contains("sliding count windows"), "{err}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// Rolling sums per key against a `BTreeMap`, across a failure, a restore and a rescale.
    #[test]
    fn rolling_sums_survive_failure_and_rescale(
        keys in 1u64..200,
        n in 1_000u64..60_000,
        fail_frac in 0.05f64..0.95,
        p1 in 1usize..4,
        p2 in 1usize..4,
    ) {
        let mut model = std::collections::BTreeMap::<u64, u64>::new();
        for i in 0..n {
            *model.entry(i * 7919 % keys).or_default() += i;
        }
        let mut want: Vec<String> = model.iter().map(|(k, v)| format!("{k},{v}")).collect();
        want.sort();
        let dir = tempfile::tempdir().unwrap();
        let fail = Arc::new(AtomicU64::new((n as f64 * fail_frac) as u64));
        let job = |env: &mut Env| {
            let f = fail.clone();
            env.generate_n(n, move |i| {
                    if f.load(Ordering::Relaxed) == i {
                        f.store(u64::MAX, Ordering::Relaxed);
                        panic!("injected failure");
                    }
                    (i * 7919 % keys, i)
                })
                .key_by(|e| e.0)
                .sum(|e| e.1)
                .write_csv(dir.path().join("out"))
                .unwrap();
        };
        let mut env = Env::new(config(dir.path(), p1));
        job(&mut env);
        prop_assert!(env.execute().is_err());
        let mut env = Env::new(config(dir.path(), p2).restore(Restore::Latest));
        job(&mut env);
        env.execute().unwrap();
        prop_assert_eq!(read_part_files(&dir.path().join("out")).unwrap(), want);
    }
}

#[test]
fn a_savepoint_restores_into_another_checkpoint_directory() {
    let n = 50_000;
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new(config(dir.path(), 2).savepoint_dir(dir.path().join("savepoints")));
    build(&mut env, n, dir.path(), None);
    let summary = env.execute().unwrap();
    let savepoint = summary.savepoint.clone().expect("a savepoint at the end");
    assert!(savepoint.starts_with(dir.path().join("savepoints")));

    std::fs::remove_dir_all(dir.path().join("checkpoints")).unwrap();
    // The restored job is finished: it publishes nothing twice.
    let mut env = Env::new(config(dir.path(), 3).restore(Restore::Path(savepoint)));
    build(&mut env, n, dir.path(), None);
    env.execute().unwrap();
    assert_eq!(
        read_part_files(&dir.path().join("windows")).unwrap(),
        reference(n)
    );
}

/// The keyed states of the newest complete checkpoint in `dir`: (uid/name, entries).
fn states_of(dir: &Path) -> Vec<(String, usize)> {
    let store = flow_state::CheckpointStore::open(dir, Arc::new(flow_state::FsStorage)).unwrap();
    let id = store.latest_complete().unwrap().checkpoint.unwrap();
    let view = store.restore_view(id).unwrap();
    let all = flow_state::KeyGroupRange { start: 0, end: 128 };
    view.states()
        .map(|(u, n)| {
            let entries = view.entries(u, n, all).unwrap().count();
            (format!("{u}/{n}"), entries)
        })
        .collect()
}

#[test]
fn a_finished_job_keeps_its_keyed_state_only_when_it_writes_a_savepoint() {
    // A process function's state, which it keeps to the end (a bounded aggregate empties its
    // table at the end of input instead, so what its savepoint holds depends on whether a
    // checkpoint came before the end: a race in a job this short).
    let n = 50_000u64;
    let job = |env: &mut Env, out: &Path| {
        env.generate_n(n, |i| (i % 500, i as i64, i % 7))
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .key_by(|e| e.0)
            .process(Track)
            .write_csv(out.join("spans"))
            .unwrap();
    };
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new(config(dir.path(), 2));
    job(&mut env, dir.path());
    env.execute().unwrap();
    assert_eq!(states_of(&dir.path().join("checkpoints")), vec![]);

    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new(config(dir.path(), 2).savepoint_dir(dir.path().join("savepoints")));
    job(&mut env, dir.path());
    let savepoint = env.execute().unwrap().savepoint.unwrap();
    let states = states_of(&savepoint);
    assert!(
        states.iter().any(|(_, entries)| *entries == 500),
        "every key's state: {states:?}"
    );
    // Restored elsewhere, the finished job publishes nothing twice: one row per event (each
    // its key's only record in its 100 ms span).
    std::fs::remove_dir_all(dir.path().join("checkpoints")).unwrap();
    let mut env = Env::new(config(dir.path(), 3).restore(Restore::Path(savepoint)));
    job(&mut env, dir.path());
    env.execute().unwrap();
    let rows = read_part_files(&dir.path().join("spans")).unwrap();
    assert_eq!(rows.len(), n as usize, "one row per event");
    let distinct: std::collections::BTreeSet<&String> = rows.iter().collect();
    assert_eq!(distinct.len(), rows.len(), "no row twice");
}

/// Per key and 100 ms span of event time: how many records, how many distinct values (map
/// state) and the largest value (value state), emitted when the span's event-time timer fires.
#[process_fn(on_timer = report)]
fn track(
    _key: &u64,
    (_, ts, v): (u64, i64, u64),
    spans: &mut MapState<i64, (u64, u64)>,
    values: &mut MapState<(i64, u64), ()>,
    records: &mut ValueState<u64>,
    ctx: &mut Context<'_, (u64, i64, u64, usize, u64)>,
) {
    let end = ts / 100 * 100 + 99;
    match spans.get_mut(&end) {
        Some(s) => {
            s.0 += 1;
            s.1 = s.1.max(v);
        }
        None => {
            spans.put(end, (1, v));
        }
    }
    values.put((end, v), ());
    *records.get_or_insert_with(|| 0) += 1;
    ctx.register_event_time_timer(end);
}

fn report(
    key: &u64,
    at: i64,
    spans: &mut MapState<i64, (u64, u64)>,
    values: &mut MapState<(i64, u64), ()>,
    _records: &mut ValueState<u64>,
    ctx: &mut Context<'_, (u64, i64, u64, usize, u64)>,
) {
    let (count, max) = spans.remove(&at).unwrap_or((0, 0));
    let distinct = values.iter().filter(|((end, _), _)| *end == at).count();
    values.retain(|(end, _), _| *end != at);
    ctx.emit((*key, at, count, distinct, max));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// Time windows, sessions and a process function's value, map and timer state against
    /// models, across a failure, a restore and a rescale.
    #[test]
    fn windows_and_process_state_survive_failure_and_rescale(
        keys in 1u64..50,
        n in 2_000u64..20_000,
        fail_frac in 0.05f64..0.95,
        p1 in 1usize..4,
        p2 in 1usize..4,
    ) {
        // Event i: key, time i (monotonous per split), value.
        let ev = move |i: u64| (i * 31 % keys, i as i64, i % 7);
        let mut windows = std::collections::BTreeMap::<(u64, i64), u64>::new();
        let mut spans = std::collections::BTreeMap::<(u64, i64), (u64, std::collections::BTreeSet<u64>, u64)>::new();
        let mut by_key = std::collections::BTreeMap::<u64, Vec<i64>>::new();
        for i in 0..n {
            let (k, t, v) = ev(i);
            *windows.entry((k, t / 250 * 250)).or_default() += v;
            let s = spans.entry((k, t / 100 * 100 + 99)).or_default();
            s.0 += 1;
            s.1.insert(v);
            s.2 = s.2.max(v);
            by_key.entry(k).or_default().push(t);
        }
        let mut want_w: Vec<String> =
            windows.iter().map(|((k, s), v)| format!("{k},{s},{v}")).collect();
        want_w.sort();
        let mut want_p: Vec<String> = spans
            .iter()
            .map(|((k, at), (c, d, l))| format!("{k},{at},{c},{},{l}", d.len()))
            .collect();
        want_p.sort();
        // Sessions with a gap of 40 ms: per key, runs of times less than 40 apart.
        let mut want_s = Vec::new();
        for (k, ts) in &by_key {
            let mut start = ts[0];
            let mut prev = ts[0];
            let mut count = 0u64;
            for &t in ts {
                // Windows [t, t + 40) that touch merge (as in Flink).
                if t - prev > 40 {
                    want_s.push(format!("{k},{start},{count}"));
                    start = t;
                    count = 0;
                }
                count += 1;
                prev = t;
            }
            want_s.push(format!("{k},{start},{count}"));
        }
        want_s.sort();

        let dir = tempfile::tempdir().unwrap();
        let fail = Arc::new(AtomicU64::new((n as f64 * fail_frac) as u64));
        let job = |env: &mut Env| {
            let f = fail.clone();
            let [a, b, c] = env
                .generate_n(n, move |i| {
                    if f.load(Ordering::Relaxed) == i {
                        f.store(u64::MAX, Ordering::Relaxed);
                        panic!("injected failure");
                    }
                    ev(i)
                })
                .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
                .fan_out();
            a.key_by(|e| e.0)
                .window(TumblingEventTimeWindows::of(Duration::from_millis(250)))
                .sum(|e| e.2)
                .map(|w| (w.key, w.window.start, w.value))
                .write_csv(dir.path().join("windows"))
                .unwrap();
            b.key_by(|e| e.0)
                .process(Track)
                .write_csv(dir.path().join("process"))
                .unwrap();
            c.key_by(|e| e.0)
                .window(EventTimeSessionWindows::with_gap(Duration::from_millis(40)))
                .count()
                .map(|w| (w.key, w.window.start, w.value))
                .write_csv(dir.path().join("sessions"))
                .unwrap();
        };
        let mut env = Env::new(config(dir.path(), p1).batch_size(64));
        job(&mut env);
        prop_assert!(env.execute().is_err());
        let mut env = Env::new(config(dir.path(), p2).batch_size(64).restore(Restore::Latest));
        job(&mut env);
        env.execute().unwrap();
        prop_assert_eq!(read_part_files(&dir.path().join("windows")).unwrap(), want_w);
        prop_assert_eq!(read_part_files(&dir.path().join("process")).unwrap(), want_p);
        prop_assert_eq!(read_part_files(&dir.path().join("sessions")).unwrap(), want_s);
    }
}

#[test]
fn compaction_keeps_the_checkpoint_directory_near_the_live_state() {
    // 2,000 keys updated over and over, checkpointed every 2 ms: without compaction the
    // directory would grow with every checkpoint's changes.
    let dir = tempfile::tempdir().unwrap();
    let n = 3_000_000u64;
    let fail = Arc::new(AtomicU64::new(n * 9 / 10));
    let job = |env: &mut Env| {
        let f = fail.clone();
        env.generate_n(n, move |i| {
            if f.load(Ordering::Relaxed) == i {
                f.store(u64::MAX, Ordering::Relaxed);
                panic!("injected failure");
            }
            (i % 2_000, 1u64)
        })
        .key_by(|e| e.0)
        .sum(|e| e.1)
        .write_csv(dir.path().join("out"))
        .unwrap();
    };
    let mut env = Env::new(config(dir.path(), 2));
    job(&mut env);
    assert!(env.execute().is_err());
    let files: Vec<String> = std::fs::read_dir(dir.path().join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let segments = files.iter().filter(|f| f.ends_with(".seg")).count();
    assert!(
        segments <= 2 * 8,
        "compacted: {segments} segments in {files:?}"
    );
    // And the compacted state restores right.
    let mut env = Env::new(config(dir.path(), 3).restore(Restore::Latest));
    job(&mut env);
    env.execute().unwrap();
    let mut want: Vec<String> = (0..2_000u64)
        .map(|k| format!("{k},{}", n / 2_000))
        .collect();
    want.sort();
    assert_eq!(read_part_files(&dir.path().join("out")).unwrap(), want);
}

#[test]
fn a_damaged_latest_checkpoint_is_skipped_and_the_output_stays_exactly_once() {
    let n = 400_000;
    let want = reference(n);
    let mut tested = 0;
    for damage in ["flip", "truncate", "delete segment"] {
        let dir = tempfile::tempdir().unwrap();
        let fail = Arc::new(AtomicU64::new(n * 3 / 4));
        let cfg = |p| config(dir.path(), p).checkpoints_retained(3);
        let mut env = Env::new(cfg(2));
        build(&mut env, n, dir.path(), Some(fail.clone()));
        assert!(env.execute().is_err());
        let cp = dir.path().join("checkpoints");
        let mut manifests: Vec<_> = std::fs::read_dir(&cp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "manifest"))
            .collect();
        manifests.sort();
        if manifests.len() < 2 {
            // Too few checkpoints before the failure to fall back: nothing to test here.
            continue;
        }
        let latest = manifests.last().unwrap().clone();
        match damage {
            "flip" => {
                let mut b = std::fs::read(&latest).unwrap();
                let mid = b.len() / 2;
                b[mid] ^= 0x40;
                std::fs::write(&latest, b).unwrap();
            }
            "truncate" => {
                let b = std::fs::read(&latest).unwrap();
                std::fs::write(&latest, &b[..b.len() - 5]).unwrap();
            }
            _ => {
                // The newest segment: one only the latest checkpoint lists.
                let mut segs: Vec<_> = std::fs::read_dir(&cp)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .filter(|p| p.extension().is_some_and(|e| e == "seg"))
                    .collect();
                segs.sort();
                std::fs::remove_file(segs.last().unwrap()).unwrap();
            }
        }
        let mut env = Env::new(cfg(2).restore(Restore::Latest));
        build(&mut env, n, dir.path(), Some(fail));
        env.execute().unwrap();
        assert_eq!(
            read_part_files(&dir.path().join("windows")).unwrap(),
            want,
            "after damage: {damage}"
        );
        tested += 1;
    }
    assert!(
        tested >= 2,
        "the failed runs had checkpoints to fall back on"
    );
}

/// Counts each key's records on both inputs; a timer reports them at the end of input.
#[derive(Clone)]
struct CountBoth;

impl KeyedCoProcessFunction<u64, (u64, u64), (u64, u64)> for CountBoth {
    type State = (u64, u64, bool);
    type Out = (u64, u64, u64);
    fn process_left(
        &mut self,
        _: &u64,
        _: (u64, u64),
        st: &mut Self::State,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        st.0 += 1;
        if !st.2 {
            st.2 = true;
            ctx.register_event_time_timer(0);
        }
    }
    fn process_right(
        &mut self,
        _: &u64,
        _: (u64, u64),
        st: &mut Self::State,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        st.1 += 1;
        if !st.2 {
            st.2 = true;
            ctx.register_event_time_timer(0);
        }
    }
    fn on_timer(
        &mut self,
        k: &u64,
        _: i64,
        st: &mut Self::State,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        ctx.emit((*k, st.0, st.1));
    }
}

#[test]
fn co_process_state_and_timers_survive_failure_and_rescale() {
    let (n, m, keys) = (300_000u64, 200_000u64, 500u64);
    let mut want: Vec<String> = (0..keys)
        .map(|k| {
            let l = (0..n).filter(|i| i % keys == k).count();
            let r = (0..m).filter(|j| j * 7 % keys == k).count();
            format!("{k},{l},{r}")
        })
        .collect();
    want.sort();
    for (p1, p2) in [(2, 3), (3, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let fail = Arc::new(AtomicU64::new(n * 2 / 3));
        let job = |env: &mut Env| {
            let f = fail.clone();
            let left = env
                .generate_n(n, move |i| {
                    if f.load(Ordering::Relaxed) == i {
                        f.store(u64::MAX, Ordering::Relaxed);
                        panic!("injected failure");
                    }
                    (i % keys, i)
                })
                .key_by(|e| e.0);
            let right = env
                .generate_n(m, move |j| (j * 7 % keys, j))
                .key_by(|e| e.0);
            left.connect(right)
                .process(CountBoth)
                .write_csv(dir.path().join("out"))
                .unwrap();
        };
        let mut env = Env::new(config(dir.path(), p1));
        job(&mut env);
        assert!(env.execute().is_err());
        let mut env = Env::new(config(dir.path(), p2).restore(Restore::Latest));
        job(&mut env);
        env.execute().unwrap();
        assert_eq!(
            read_part_files(&dir.path().join("out")).unwrap(),
            want,
            "parallelism {p1} then {p2}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// A `process_with_state` window function's per-window and per-key state, with a count
    /// trigger's state and the windows' records, against a model, across a failure, a restore
    /// and a rescale: each firing counts itself in its window's state and in its key's.
    #[test]
    fn process_with_state_windows_survive_failure_and_rescale(
        keys in 1u64..20,
        n in 1_000u64..6_000,
        fail_frac in 0.05f64..0.95,
        p1 in 1usize..4,
        p2 in 1usize..4,
    ) {
        let ev = move |i: u64| (i * 31 % keys, i as i64);
        // Per key and 250 ms window, the count; a count trigger of 3 fires at 3, 6, 9, ...
        let mut counts = std::collections::BTreeMap::<(u64, i64), usize>::new();
        for i in 0..n {
            let (k, t) = ev(i);
            *counts.entry((k, t / 250 * 250)).or_default() += 1;
        }
        let mut want_w = Vec::new();
        let mut want_k = std::collections::BTreeMap::<u64, Vec<u64>>::new();
        for (&(k, start), &c) in &counts {
            for f in 1..=c / 3 {
                want_w.push(format!("{k},{start},{},{f}", f * 3));
                let g = want_k.entry(k).or_default();
                g.push(g.len() as u64 + 1);
            }
        }
        want_w.sort();

        let dir = tempfile::tempdir().unwrap();
        let fail = Arc::new(AtomicU64::new((n as f64 * fail_frac) as u64));
        let job = |env: &mut Env| {
            let f = fail.clone();
            env.generate_n(n, move |i| {
                if f.load(Ordering::Relaxed) == i {
                    f.store(u64::MAX, Ordering::Relaxed);
                    panic!("injected failure");
                }
                ev(i)
            })
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .key_by(|e| e.0)
            .window(TumblingEventTimeWindows::of(Duration::from_millis(250)))
            .trigger(CountTrigger::of(3))
            .process_with_state(
                |k: &u64,
                 info: &WindowInfo,
                 items: Vec<(u64, i64)>,
                 ctx: &mut StatefulWindowContext<'_, (u64, i64, usize, u64, u64), u64, u64>| {
                    *ctx.window_state() += 1;
                    *ctx.global_state() += 1;
                    let (w, g) = (*ctx.window_state(), *ctx.global_state());
                    ctx.emit((*k, info.window.start, items.len(), w, g))
                },
            )
            .write_csv(dir.path().join("fired"))
            .unwrap();
        };
        let mut env = Env::new(config(dir.path(), p1).batch_size(64));
        job(&mut env);
        prop_assert!(env.execute().is_err());
        let mut env = Env::new(config(dir.path(), p2).batch_size(64).restore(Restore::Latest));
        job(&mut env);
        env.execute().unwrap();
        let rows = read_part_files(&dir.path().join("fired")).unwrap();
        let mut got_w = Vec::new();
        let mut got_k = std::collections::BTreeMap::<u64, Vec<u64>>::new();
        for r in &rows {
            let f: Vec<&str> = r.split(',').collect();
            got_w.push(f[..4].join(","));
            got_k.entry(f[0].parse().unwrap()).or_default().push(f[4].parse().unwrap());
        }
        got_w.sort();
        for g in got_k.values_mut() {
            g.sort_unstable();
        }
        prop_assert_eq!(got_w, want_w);
        // Whatever order a key's windows fired in, its firings counted 1, 2, 3, ...
        prop_assert_eq!(got_k, want_k);
    }
}
