//! Sources resume from checkpoints end to end: a job stopped midway (which takes a last
//! checkpoint at its end) and restored, again and again at other parallelisms, reads every
//! record of its input exactly once over all its runs.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;
use flow_core::{Collected, Restore};
use std::path::Path;
use std::time::Duration;

/// Runs `build`'s job with checkpoints in `dir` (restoring the latest one if `restore`),
/// stops it after `ms` milliseconds (unless it ended before), and returns what it collected.
fn run<T: Send + 'static>(
    dir: &Path,
    p: usize,
    restore: bool,
    ms: u64,
    build: impl FnOnce(&mut Env) -> Collected<T>,
) -> Vec<T> {
    let mut cfg = Config::default()
        .parallelism(p)
        .batch_size(16)
        .chunk_bytes(200)
        .checkpoint_dir(dir)
        .checkpoint_interval(Duration::from_millis(3));
    if restore {
        cfg = cfg.restore(Restore::Latest);
    }
    let mut env = Env::new(cfg);
    let out = build(&mut env);
    let stop = env.stop_handle();
    let (done, ended) = std::sync::mpsc::channel::<()>();
    let stopper = std::thread::spawn(move || {
        let waited = ended.recv_timeout(Duration::from_millis(ms));
        if waited == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            stop.stop();
        }
    });
    env.execute().unwrap();
    drop(done);
    stopper.join().unwrap();
    out.take()
}

#[test]
fn a_stopped_generator_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = Vec::new();
    for (k, p) in [2, 3, 1, 2].into_iter().enumerate() {
        all.extend(run(dir.path(), p, k > 0, 50, |env| {
            env.generate_paced(50_000, None, |i| i).collect()
        }));
    }
    all.sort_unstable();
    assert!(!all.is_empty());
    assert_eq!(all, (0..all.len() as u64).collect::<Vec<_>>());
}

#[test]
fn a_stopped_csv_reader_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    let mut text = String::from("name,n\n");
    let mut expect = Vec::new();
    for i in 0..6000u64 {
        let name = if i % 5 == 0 {
            text += &format!("\"a\nb, {i}\",{i}\n");
            format!("a\nb, {i}")
        } else {
            text += &format!("x{i},{i}\n");
            format!("x{i}")
        };
        expect.push((name, i));
    }
    std::fs::write(&path, text).unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let mut all = Vec::new();
    let read = |env: &mut Env| {
        env.read_csv::<(String, u64)>(&path, ReadOptions::default().with_header())
            .unwrap()
            .map(|r| {
                std::thread::sleep(Duration::from_micros(20));
                r
            })
            .collect()
    };
    for (k, p) in [2, 3, 1, 2, 3].into_iter().enumerate() {
        all.extend(run(&checkpoints, p, k > 0, 40, read));
    }
    // The last run reads to the end.
    all.extend(run(&checkpoints, 2, true, 600_000, read));
    all.sort();
    expect.sort();
    assert_eq!(all, expect);
}
