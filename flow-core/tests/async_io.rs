//! `map_async`: ordered and unordered async requests with bounded concurrency and a timeout.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A pseudo-random delay of 0..3 ms for record `x`.
fn delay(x: u64) -> Duration {
    Duration::from_micros(x.wrapping_mul(0x9E37_79B9_7F4A_7C15) % 3000)
}

fn env(p: usize) -> Env {
    Env::new(
        Config::default()
            .parallelism(p)
            .batch_size(16)
            .progress(false),
    )
}

#[test]
fn ordered_mode_keeps_the_order_of_each_subtask_and_loses_nothing() {
    let mut env = env(2);
    // Each subtask's clone of the closure numbers its records: (subtask, sequence, record).
    let subtasks = Arc::new(AtomicUsize::new(0));
    let mut me: Option<(usize, u64)> = None;
    let out = env
        .generate_n(600, |i| i)
        .map(move |x| {
            let (id, seq) = me.get_or_insert_with(|| (subtasks.fetch_add(1, Ordering::SeqCst), 0));
            *seq += 1;
            (*id, *seq, x)
        })
        .map_async(
            AsyncOptions::ordered(8, Duration::from_secs(10)),
            |r| async move {
                tokio::time::sleep(delay(r.2)).await;
                r
            },
        )
        .collect();
    env.execute().unwrap();
    let got = out.take();
    assert_eq!(got.len(), 600);
    // Per subtask, results arrive in the order of the records.
    for s in 0..2 {
        let seqs: Vec<u64> = got.iter().filter(|r| r.0 == s).map(|r| r.1).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] + 1 == w[1]),
            "subtask {s}: {seqs:?}"
        );
    }
    let mut all: Vec<u64> = got.iter().map(|r| r.2).collect();
    all.sort();
    assert_eq!(all, (0..600).collect::<Vec<_>>());
}

#[test]
fn unordered_mode_loses_nothing_and_never_crosses_a_watermark() {
    let mut env = env(2);
    let out = env
        .generate_n(800, |i| i)
        .assign_timestamps(|x| *x as i64, WatermarkStrategy::monotonous())
        .map_async(
            AsyncOptions::unordered(16, Duration::from_secs(10)),
            |x| async move {
                tokio::time::sleep(delay(x)).await;
                x
            },
        )
        .process(|x: u64, ctx: &mut ProcessContext<'_, (u64, bool)>| {
            let late = ctx.timestamp() <= ctx.current_watermark();
            ctx.emit((x, late))
        })
        .collect();
    env.execute().unwrap();
    let got = out.take();
    let late: Vec<_> = got.iter().filter(|r| r.1).collect();
    assert!(late.is_empty(), "results after their watermark: {late:?}");
    let mut all: Vec<u64> = got.iter().map(|r| r.0).collect();
    all.sort();
    assert_eq!(all, (0..800).collect::<Vec<_>>());
}

#[test]
fn unordered_mode_does_reorder_within_a_segment() {
    // Without watermarks, a slow first request does not hold back the rest.
    let mut env = env(1);
    let out = env
        .from_iter(0..10u64)
        .map_async(
            AsyncOptions::unordered(10, Duration::from_secs(10)),
            |x| async move {
                if x == 0 {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                x
            },
        )
        .collect();
    env.execute().unwrap();
    let got = out.take();
    assert_eq!(got.len(), 10);
    assert_ne!(got[0], 0, "{got:?}");
}

#[test]
fn concurrency_never_exceeds_the_capacity() {
    for opts in [
        AsyncOptions::ordered(5, Duration::from_secs(10)),
        AsyncOptions::unordered(5, Duration::from_secs(10)).worker_threads(2),
    ] {
        let mut env = env(2);
        let now = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        let (n, m) = (now.clone(), max.clone());
        let out = env
            .generate_n(400, |i| i)
            .map_async(opts, move |x| {
                let (n, m) = (n.clone(), m.clone());
                async move {
                    let c = n.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(c, Ordering::SeqCst);
                    tokio::time::sleep(delay(x)).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                    x
                }
            })
            .collect();
        env.execute().unwrap();
        assert_eq!(out.take().len(), 400);
        let max = max.load(Ordering::SeqCst);
        // Two subtasks, each with at most 5 requests in flight.
        assert!(max <= 10, "{max} requests in flight");
        assert!(max >= 2, "requests never overlapped: {max}");
    }
}

#[test]
fn a_timeout_fails_the_job_naming_the_operator() {
    let mut env = env(2);
    env.from_iter(0..10u64)
        .map_async(
            AsyncOptions::ordered(4, Duration::from_millis(50)),
            |x| async move {
                if x == 7 {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                }
                x
            },
        )
        .discard();
    let start = std::time::Instant::now();
    let err = env.execute().unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    let msg = err.to_string();
    assert!(
        matches!(err, flow_core::Error::AsyncTimeout { .. }),
        "{msg}"
    );
    assert!(
        msg.contains("map_async") && msg.contains("async_io.rs"),
        "{msg}"
    );
    assert!(msg.contains("timed out after 50ms"), "{msg}");
}

#[test]
fn a_panicking_future_fails_the_job() {
    let mut env = env(1);
    env.from_iter(0..10u64)
        .map_async(
            AsyncOptions::unordered(4, Duration::from_secs(10)),
            |x| async move {
                assert!(x != 3, "boom");
                x
            },
        )
        .discard();
    let err = env.execute().unwrap_err();
    assert!(err.to_string().contains("map_async"), "{err}");
}

#[test]
fn an_unbounded_source_with_map_async_stops_cleanly() {
    let mut env = env(2);
    let stop = env.stop_handle();
    let seen = Arc::new(AtomicUsize::new(0));
    let s = seen.clone();
    let out = env
        .generate(|i| i)
        .map_async(
            AsyncOptions::unordered(8, Duration::from_secs(10)),
            |x| async move {
                tokio::time::sleep(Duration::from_micros(100)).await;
                x
            },
        )
        .inspect(move |_| {
            s.fetch_add(1, Ordering::SeqCst);
        })
        .collect();
    let stopped = Arc::new(AtomicBool::new(false));
    let st = stopped.clone();
    let stopper = std::thread::spawn(move || {
        while seen.load(Ordering::SeqCst) < 1000 {
            std::thread::sleep(Duration::from_millis(5));
        }
        st.store(true, Ordering::SeqCst);
        stop.stop();
    });
    env.execute().unwrap();
    stopper.join().unwrap();
    assert!(stopped.load(Ordering::SeqCst));
    assert!(out.take().len() >= 1000);
}

#[test]
fn the_plan_shows_the_async_stage() {
    let mut env = env(3);
    env.from_iter(0..3u64)
        .map_async(
            AsyncOptions::ordered(2, Duration::from_secs(1)),
            |x| async move { x },
        )
        .discard();
    let plan = env.plan();
    assert_eq!(plan.stages.len(), 2);
    assert_eq!(plan.stages[1].parallelism, plan.stages[0].parallelism);
    assert!(
        plan.stages[1].head.contains("map_async"),
        "{}",
        plan.stages[1].head
    );
}

#[test]
fn checkpoint_barriers_pass_after_the_results_before_them() {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut env = Env::new(
            Config::default()
                .parallelism(2)
                .batch_size(16)
                .progress(false)
                .barrier_interval(Duration::from_millis(2)),
        );
        tx.send(env.stop_handle()).unwrap();
        env.generate(|i| i)
            .map_async(
                AsyncOptions::unordered(8, Duration::from_secs(10)),
                |x| async move {
                    tokio::time::sleep(delay(x)).await;
                    x
                },
            )
            .key_by(|x| x % 3)
            .count()
            .discard();
        env.execute()
    });
    let stop = rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    stop.stop();
    let summary = t.join().unwrap().unwrap();
    let ids: Vec<u64> = summary.checkpoints.iter().map(|c| c.id).collect();
    assert!(!ids.is_empty(), "no checkpoint completed");
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
}
