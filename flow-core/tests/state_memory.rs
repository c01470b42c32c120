//! Keyed state larger than its memory budget, end to end: a rolling aggregate over far more
//! keys than fit in `Config::state_memory` spills its coldest entries to disk and still gives
//! every key's right result — without checkpoints, and with checkpoints across a failure and
//! a restore at another parallelism (changed entries that were spilled are read back into the
//! checkpoint, still encoded).
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::io::sink::read_part_files;
use flow_core::prelude::*;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

const KEYS: u64 = 120_000;

/// Rolling counts and sums over `KEYS` string keys (skewed: low keys are hot), written as
/// the final value per key once the bounded input ends. `fail_at`: the source panics there.
fn build(env: &mut Env, n: u64, out: &Path, fail_at: Option<Arc<AtomicU64>>) {
    env.generate_n(n, move |i| {
        if let Some(f) = &fail_at {
            if f.load(Ordering::Relaxed) == i {
                f.store(u64::MAX, Ordering::Relaxed);
                panic!("injected failure");
            }
        }
        let r = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20;
        // Half the events on 1% of the keys, the rest spread over all of them.
        let k = if r % 2 == 0 {
            r % (KEYS / 100)
        } else {
            r % KEYS
        };
        (format!("key-{k}"), i % 7)
    })
    .key_by(|e| e.0.clone())
    .sum(|e| e.1)
    .map(|(k, v)| format!("{k},{v}"))
    .write_lines(out.join("sums"))
    .unwrap();
}

fn reference(n: u64) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new(Config::default().parallelism(2));
    build(&mut env, n, dir.path(), None);
    env.execute().unwrap();
    read_part_files(&dir.path().join("sums")).unwrap()
}

#[test]
fn a_job_beyond_its_state_budget_spills_and_gives_the_same_results() {
    let n = 400_000;
    let dir = tempfile::tempdir().unwrap();
    let spill = dir.path().join("spill");
    let mut env = Env::new(
        Config::default()
            .parallelism(2)
            .state_memory(1 << 20)
            .state_dir(&spill),
    );
    build(&mut env, n, dir.path(), None);
    let summary = env.execute().unwrap();
    let s = summary.state_spill;
    assert!(
        s.evicted > 10_000,
        "the state did not fit its budget: {s:?}"
    );
    assert!(s.loaded > 0, "spilled keys came back: {s:?}");
    assert!(summary.to_string().contains("entries spilled"), "{summary}");
    assert_eq!(
        read_part_files(&dir.path().join("sums")).unwrap(),
        reference(n)
    );
    let left = std::fs::read_dir(&spill)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".run")
        })
        .count();
    assert_eq!(left, 0, "the job removes its spill runs");
}

#[test]
fn spilled_state_survives_a_failure_and_a_rescale_exactly_once() {
    let n = 400_000;
    let want = reference(n);
    for (fail_at, p1, p2) in [(250_000, 2, 3), (300_000, 3, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let config = |p: usize| {
            Config::default()
                .parallelism(p)
                .state_memory(1 << 20)
                .checkpoint_dir(dir.path().join("checkpoints"))
                .checkpoint_interval(Duration::from_millis(5))
        };
        let fail = Arc::new(AtomicU64::new(fail_at));
        let mut env = Env::new(config(p1));
        build(&mut env, n, dir.path(), Some(fail.clone()));
        assert!(env.execute().is_err(), "the injected failure fails the run");
        let mut env = Env::new(config(p2).restore(Restore::Latest));
        build(&mut env, n, dir.path(), Some(fail));
        let summary = env.execute().unwrap();
        assert!(summary.state_spill.evicted > 0, "{:?}", summary.state_spill);
        assert_eq!(
            read_part_files(&dir.path().join("sums")).unwrap(),
            want,
            "failure at {fail_at}, parallelism {p1} then {p2}"
        );
    }
}

/// Keys 'a' before a pause longer than the TTL, then 'a' and 'b' after it.
fn ttl_job(env: &mut Env, ttl: Option<Duration>) -> flow_core::io::sink::Collected<(char, u64)> {
    let sums = env
        .generate_n(10, |i| {
            if i == 5 {
                std::thread::sleep(Duration::from_millis(1500));
            }
            (if i < 8 { 'a' } else { 'b' }, 1u64)
        })
        .key_by(|e| e.0)
        .sum(|e| e.1);
    match ttl {
        Some(t) => sums.state_ttl(t).collect(),
        None => sums.collect(),
    }
}

#[test]
fn state_not_written_within_its_ttl_expires_and_starts_afresh() {
    // One thread, batches of one record, pre-aggregated one at a time: the records before
    // the pause reach the aggregate before the records after it (how many before the pause
    // depends on the scheduler's step budget, so the count of 'a' is a range).
    let config = || {
        Config::default()
            .parallelism(1)
            .batch_size(1)
            .pre_aggregate_capacity(1)
    };
    let mut env = Env::new(config());
    let got = ttl_job(&mut env, Some(Duration::from_millis(700)));
    env.execute().unwrap();
    let mut got = got.take();
    got.sort();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(
        (3..8).contains(&got[0].1),
        "'a' expired during the pause: {got:?}"
    );
    assert_eq!(got[1], ('b', 2));
    let mut env = Env::new(config());
    let got = ttl_job(&mut env, None);
    env.execute().unwrap();
    let mut got = got.take();
    got.sort();
    assert_eq!(got, vec![('a', 8), ('b', 2)]);
}

#[test]
fn a_ttl_on_an_operator_without_keyed_state_is_refused() {
    let mut env = Env::new(Config::default().parallelism(1));
    let _ = env
        .from_iter([1, 2])
        .map(|x| x + 1)
        .state_ttl(Duration::from_secs(1))
        .collect();
    let e = env.execute().unwrap_err().to_string();
    assert!(e.contains("state_ttl on `map"), "{e}");
}

/// Twenty records of key 'a' into a rolling count with a 1 s TTL, checkpointed every 20 ms;
/// the first ten come slowly (so that checkpoints cover some of them), and the first run
/// fails at the fifteenth. `process`: a keyed process function counts instead.
fn ttl_restore_job(
    env: &mut Env,
    fail: Arc<AtomicU64>,
    process: bool,
) -> flow_core::io::sink::Collected<u64> {
    let keyed = env
        .generate_n(20, move |i| {
            if fail.load(Ordering::Relaxed) == i {
                fail.store(u64::MAX, Ordering::Relaxed);
                panic!("injected failure");
            }
            if i < 10 {
                std::thread::sleep(Duration::from_millis(30));
            }
            ('a', 1u64)
        })
        .key_by(|e| e.0);
    let ttl = Duration::from_secs(1);
    if process {
        keyed
            .process_fn(|_, _, n: &mut u64, ctx| {
                *n += 1;
                ctx.emit(*n)
            })
            .state_ttl(ttl)
            .collect()
    } else {
        keyed.sum(|e| e.1).state_ttl(ttl).map(|(_, n)| n).collect()
    }
}

/// Runs [`ttl_restore_job`], fails it, waits `pause`, restores it; returns the final count.
fn count_after_restore(pause: Duration, process: bool) -> Vec<u64> {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        Config::default()
            .parallelism(1)
            .batch_size(1)
            .pre_aggregate_capacity(1)
            .checkpoint_dir(dir.path().join("checkpoints"))
            .checkpoint_interval(Duration::from_millis(20))
    };
    let fail = Arc::new(AtomicU64::new(15));
    let mut env = Env::new(config());
    let _ = ttl_restore_job(&mut env, fail.clone(), process);
    assert!(env.execute().is_err());
    std::thread::sleep(pause);
    let mut env = Env::new(config().restore(Restore::Latest));
    let got = ttl_restore_job(&mut env, fail, process);
    env.execute().unwrap();
    let got = got.take();
    // The process function emits its count at every record: the last one is the largest.
    match (process, got.iter().max()) {
        (true, Some(&m)) => vec![m],
        _ => got,
    }
}

#[test]
fn restored_state_keeps_its_write_time_for_its_ttl() {
    for process in [false, true] {
        // Restored at once: what was counted before the failure is still live.
        assert_eq!(count_after_restore(Duration::ZERO, process), vec![20]);
        // Restored after more than the TTL since they were written: those in the checkpoint
        // expired while the job was down, as they would have in a job that never failed;
        // only the replayed records after the checkpoint count.
        let got = count_after_restore(Duration::from_millis(1300), process);
        assert!(got.len() == 1 && (10..20).contains(&got[0]), "{got:?}");
    }
}

#[test]
fn a_checkpoint_without_ttl_does_not_restore_into_a_job_with_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = |restore: bool| {
        let c = Config::default()
            .parallelism(1)
            .checkpoint_dir(dir.path().join("checkpoints"));
        if restore {
            c.restore(Restore::Latest)
        } else {
            c
        }
    };
    let job = |env: &mut Env, ttl: bool| {
        let sums = env.from_iter([('a', 1u64)]).key_by(|e| e.0).sum(|e| e.1);
        let _ = if ttl {
            sums.state_ttl(Duration::from_secs(1)).collect()
        } else {
            sums.collect()
        };
    };
    let mut env = Env::new(config(false));
    job(&mut env, false);
    env.execute().unwrap();
    let mut env = Env::new(config(true));
    job(&mut env, true);
    let e = env.execute().unwrap_err().to_string();
    assert!(e.contains("accumulators") && e.contains("TTL"), "{e}");
}
