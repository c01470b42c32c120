//! Sources resume from checkpoints end to end: a job stopped midway (at a checkpoint, not
//! drained) and restored, again and again at other parallelisms, reads every
//! record of its input exactly once over all its runs.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::io::sink::read_part_files;
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

/// A stop with checkpoints does not drain: a bounded rolling sum that is stopped and
/// restored several times emits nothing until its input really ends, and then each key's
/// total once, as a run never stopped does.
#[test]
fn a_stop_with_checkpoints_does_not_drain_and_a_restore_continues_the_sums() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let n = 60_000u64;
    let mut stopped = 0;
    // Stopped after 60 ms each, but the last run, which reads to the end.
    let runs = [2, 1, 3, 2, 2, 2, 2, 2, 2];
    for (k, &p) in runs.iter().enumerate() {
        let last = k + 1 == runs.len();
        let mut cfg = Config::default()
            .parallelism(p)
            .checkpoint_dir(dir.path().join("cp"))
            .checkpoint_interval(Duration::from_millis(5));
        if k > 0 {
            cfg = cfg.restore(Restore::Latest);
        }
        let mut env = Env::new(cfg);
        env.generate_paced(200_000, Some(n), |i| (i % 10, i))
            .key_by(|e| e.0)
            .sum(|e| e.1)
            .write_csv(&out)
            .unwrap();
        let stop = env.stop_handle();
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(60));
            if !last {
                stop.stop();
            }
        });
        let summary = env.execute().unwrap();
        stopper.join().unwrap();
        match summary.stopped_at {
            Some(_) => {
                stopped += 1;
                // Nothing emitted yet: the sums are still open.
                assert_eq!(read_part_files(&out).unwrap(), Vec::<String>::new());
            }
            None => break,
        }
    }
    assert!(stopped > 0, "no run was stopped before its input ended");
    let mut want: Vec<String> = (0..10u64)
        .map(|k| {
            let total: u64 = (0..n).filter(|i| i % 10 == k).sum();
            format!("{k},{total}")
        })
        .collect();
    want.sort();
    assert_eq!(read_part_files(&out).unwrap(), want);
}
