//! At-least-once checkpoints (`CheckpointMode::AtLeastOnce`): operators do not hold back the
//! records of inputs whose barrier came first, so after a failure some records may count
//! twice, but none is lost; without failure the output is the exactly-once output.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::io::sink::read_part_files;
use flow_core::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Event `i`: key, event time (ms).
fn event(i: u64) -> (u32, i64) {
    let key = (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40) as u32 % 61;
    (key, (i / 20) as i64)
}

/// Counts per key and 1 s tumbling window, to part files; the source panics once at `fail_at`.
fn build(env: &mut Env, n: u64, out: &Path, fail_at: Option<Arc<AtomicU64>>) {
    env.generate_n(n, move |i| {
        if let Some(f) = &fail_at {
            if f.load(Ordering::Relaxed) == i {
                f.store(u64::MAX, Ordering::Relaxed);
                panic!("injected failure");
            }
        }
        event(i)
    })
    .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    .key_by(|e| e.0)
    .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
    .count()
    .map(|w| (w.key, w.window.start, w.value))
    .write_csv(out.join("counts"))
    .unwrap();
}

fn config(dir: &Path, p: usize, mode: CheckpointMode) -> Config {
    Config::default()
        .parallelism(p)
        .checkpoint_dir(dir.join("checkpoints"))
        .checkpoint_interval(Duration::from_millis(2))
        .checkpoint_mode(mode)
}

/// `(key, window start) -> count` from CSV rows `key,start,count`.
fn counts(rows: &[String]) -> BTreeMap<(u32, i64), u64> {
    rows.iter()
        .map(|r| {
            let f: Vec<&str> = r.split(',').collect();
            assert_eq!(f.len(), 3, "row {r:?}");
            (
                (f[0].parse().unwrap(), f[1].parse().unwrap()),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

fn run(n: u64, p: usize, mode: CheckpointMode) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut env = Env::new(config(dir.path(), p, mode));
    build(&mut env, n, dir.path(), None);
    let summary = env.execute().unwrap();
    assert!(!summary.checkpoints.is_empty());
    read_part_files(&dir.path().join("counts")).unwrap()
}

#[test]
fn without_failure_at_least_once_writes_what_exactly_once_writes() {
    let n = 200_000;
    assert_eq!(
        run(n, 2, CheckpointMode::AtLeastOnce),
        run(n, 2, CheckpointMode::ExactlyOnce)
    );
}

#[test]
fn after_a_failure_at_least_once_loses_no_record() {
    let n = 300_000;
    let want = counts(&run(n, 2, CheckpointMode::ExactlyOnce));
    let total: u64 = want.values().sum();
    assert_eq!(total, n);
    let mut restored = 0;
    for (fail_at, p1, p2) in [(120_000, 2, 2), (200_000, 3, 2), (80_000, 2, 1)] {
        let dir = tempfile::tempdir().unwrap();
        let fail = Arc::new(AtomicU64::new(fail_at));
        let mut env = Env::new(config(dir.path(), p1, CheckpointMode::AtLeastOnce));
        build(&mut env, n, dir.path(), Some(fail.clone()));
        assert!(env.execute().is_err(), "the injected failure fails the run");
        restored += std::fs::read_dir(dir.path().join("checkpoints"))
            .unwrap()
            .any(|e| {
                e.unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".manifest")
            }) as u32;
        let cfg = config(dir.path(), p2, CheckpointMode::AtLeastOnce).restore(Restore::Latest);
        let mut env = Env::new(cfg);
        build(&mut env, n, dir.path(), Some(fail));
        env.execute().unwrap();
        let got = counts(&read_part_files(&dir.path().join("counts")).unwrap());
        // Every window is there once (the sink stays exactly-once), and counts at least
        // what it should.
        assert_eq!(
            got.keys().collect::<Vec<_>>(),
            want.keys().collect::<Vec<_>>(),
            "failure at {fail_at}, parallelism {p1} then {p2}"
        );
        for (k, c) in &want {
            assert!(got[k] >= *c, "window {k:?}: {} < {c}", got[k]);
        }
    }
    assert!(
        restored >= 2,
        "most failed runs had a checkpoint to restore"
    );
}
