//! Wall-clock behaviour: idle splits, processing-time windows and timers. Each test runs an
//! unbounded job until what it waits for has happened (never for a fixed time that a busy
//! machine could overrun), then stops it.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;
use flow_core::time::now_ms;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a test waits for what it expects before failing (far above what it needs).
const PATIENCE: Duration = Duration::from_secs(60);

/// Runs a job built by `build` on a thread of its own until `done` holds for the counter it
/// hands to `build` (which the job bumps), then stops it. Fails after [`PATIENCE`].
fn run_until<T: Send + 'static>(
    done: impl Fn(usize) -> bool,
    build: impl FnOnce(&mut Env, Arc<AtomicUsize>) -> flow_core::Collected<T> + Send + 'static,
) -> Vec<T> {
    run_until_stopped(done, build).0
}

/// [`run_until`], also returning the counter's value when the stop was requested.
fn run_until_stopped<T: Send + 'static>(
    done: impl Fn(usize) -> bool,
    build: impl FnOnce(&mut Env, Arc<AtomicUsize>) -> flow_core::Collected<T> + Send + 'static,
) -> (Vec<T>, usize) {
    let counter = Arc::new(AtomicUsize::new(0));
    let seen = counter.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let job = std::thread::spawn(move || {
        let mut env = Env::new(Config::default().parallelism(2));
        tx.send(env.stop_handle()).unwrap();
        let out = build(&mut env, seen);
        env.execute().map(|_| out.take())
    });
    let stop = rx.recv().unwrap();
    let start = Instant::now();
    while !done(counter.load(Ordering::SeqCst)) {
        assert!(
            start.elapsed() < PATIENCE,
            "gave up waiting after {PATIENCE:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let before_stop = counter.load(Ordering::SeqCst);
    stop.stop();
    (job.join().unwrap().unwrap(), before_stop)
}

/// Emits the watermark each record sees.
#[derive(Clone)]
struct Watch;
impl KeyedProcessFunction<u8, (u8, i64)> for Watch {
    type State = ();
    type Out = i64;
    fn process_element(&mut self, _: &u8, _: (u8, i64), _: &mut (), ctx: &mut Context<'_, i64>) {
        ctx.emit(ctx.current_watermark());
    }
}

/// A server that accepts one connection and sends nothing until the job ends.
fn silent_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            std::thread::sleep(Duration::from_secs(3));
            let _ = conn.flush();
        }
    });
    address
}

/// The watermarks records see while a silent split without idleness is unioned with a busy
/// one, for the first `records` records.
fn watermarks_without_idleness(records: usize) -> Vec<i64> {
    let address = silent_server();
    run_until(
        move |n| n >= records,
        move |env, n| {
            let quiet = env
                .socket_lines(address)
                .map(|_| (0u8, 0i64))
                .assign_timestamps(|r| r.1, WatermarkStrategy::monotonous());
            let busy = env
                .generate_paced(2_000, None, |i| (1u8, i as i64))
                .assign_timestamps(|r| r.1, WatermarkStrategy::monotonous());
            quiet
                .union(busy)
                .key_by(|r| r.0)
                .process(Watch)
                .inspect(move |_| {
                    n.fetch_add(1, Ordering::SeqCst);
                })
                .collect()
        },
    )
}

#[test]
fn an_idle_split_stops_holding_back_the_watermark() {
    // Runs until a record sees an advanced watermark: with the silent split idle, the busy
    // split's watermark advances (a hang here fails after PATIENCE).
    let address = silent_server();
    let with = run_until(
        |advanced| advanced > 0,
        move |env, advanced| {
            let quiet = env
                .socket_lines(address)
                .map(|_| (0u8, 0i64))
                .assign_timestamps(
                    |r| r.1,
                    WatermarkStrategy::monotonous().with_idleness(Duration::from_millis(100)),
                );
            let busy = env
                .generate_paced(2_000, None, |i| (1u8, i as i64))
                .assign_timestamps(
                    |r| r.1,
                    WatermarkStrategy::monotonous().with_idleness(Duration::from_millis(100)),
                );
            quiet
                .union(busy)
                .key_by(|r| r.0)
                .process(Watch)
                .inspect(move |&w| {
                    if w > 0 {
                        advanced.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .collect()
        },
    );
    assert!(with.iter().any(|&w| w > 0));
    // Negative control: without idleness the silent split holds the watermark at its start,
    // however long the busy split runs (here: for 600 of its records, 0.3 s at its pace).
    let without = watermarks_without_idleness(600);
    assert!(without.len() >= 600);
    assert!(
        without.iter().all(|&w| w == i64::MIN),
        "the silent split must hold the watermark"
    );
}

#[test]
fn processing_time_windows_fire_on_the_wall_clock() {
    // Runs until three windows have fired while the job is still running, so they fired when
    // the wall clock passed their end, not when the job ended.
    let (out, fired_before_stop) = run_until_stopped(
        |fired| fired >= 3,
        |env, fired| {
            env.generate_paced(2_000, None, |i| ((i % 3) as u8, i))
                .key_by(|_| 0u8)
                .window(TumblingProcessingTimeWindows::of(Duration::from_millis(
                    100,
                )))
                .count()
                .map(|w| (w.window, w.value, now_ms()))
                .inspect(move |_| {
                    fired.fetch_add(1, Ordering::SeqCst);
                })
                .collect()
        },
    );
    // The stop ends the input, which fires the open windows too (drain semantics): look at
    // the firings before it (one key, so one subtask, so output in firing order).
    let before_stop = &out[..fired_before_stop];
    let windows: std::collections::BTreeSet<_> = before_stop.iter().map(|o| o.0).collect();
    assert!(windows.len() >= 3, "{out:?}");
    for (w, n, fired_at) in before_stop {
        assert!(*n > 0, "{w:?} fired empty");
        assert!(
            *fired_at >= w.end - 1,
            "{w:?} fired at {fired_at}, before its end"
        );
    }
}

#[test]
fn processing_time_timers_fire_when_the_wall_clock_reaches_them() {
    #[derive(Clone)]
    struct Once;
    impl KeyedProcessFunction<u8, u64> for Once {
        type State = bool;
        type Out = (i64, i64, bool);
        fn process_element(
            &mut self,
            _: &u8,
            _: u64,
            started: &mut bool,
            ctx: &mut Context<'_, Self::Out>,
        ) {
            if !*started {
                *started = true;
                let at = ctx.current_processing_time() + 100;
                ctx.register_processing_time_timer(at);
            }
        }
        fn on_timer(&mut self, _: &u8, ts: i64, _: &mut bool, ctx: &mut Context<'_, Self::Out>) {
            ctx.emit((
                ts,
                ctx.current_processing_time(),
                ctx.is_processing_time_timer(),
            ));
        }
    }
    let out = run_until(
        |fired| fired >= 1,
        |env, fired| {
            env.generate_paced(1_000, None, |i| i)
                .key_by(|_| 0u8)
                .process(Once)
                .inspect(move |_| {
                    fired.fetch_add(1, Ordering::SeqCst);
                })
                .collect()
        },
    );
    assert_eq!(out.len(), 1, "{out:?}");
    let (ts, fired_at, proc) = out[0];
    assert!(proc);
    assert!(fired_at >= ts, "fired at {fired_at}, before its time {ts}");
}
