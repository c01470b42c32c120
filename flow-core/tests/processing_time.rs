//! Wall-clock behaviour: idle splits, processing-time windows and timers. Each test runs an
//! unbounded job for a fraction of a second and stops it.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;
use flow_core::time::now_ms;
use std::io::Write;
use std::time::Duration;

/// Runs a job built by `build` on a thread of its own and stops it after `run_for`.
fn run_for<T: Send + 'static>(
    run_for: Duration,
    build: impl FnOnce(&mut Env) -> flow_core::Collected<T> + Send + 'static,
) -> Vec<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    let job = std::thread::spawn(move || {
        let mut env = Env::new(Config::default().parallelism(2));
        tx.send(env.stop_handle()).unwrap();
        let out = build(&mut env);
        env.execute().map(|_| out.take())
    });
    let stop = rx.recv().unwrap();
    std::thread::sleep(run_for);
    stop.stop();
    job.join().unwrap().unwrap()
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

fn watermarks_seen(idleness: Option<Duration>) -> Vec<i64> {
    let address = silent_server();
    run_for(Duration::from_millis(700), move |env| {
        let strategy = |s: WatermarkStrategy| match idleness {
            Some(d) => s.with_idleness(d),
            None => s,
        };
        let quiet = env
            .socket_lines(address)
            .map(|_| (0u8, 0i64))
            .assign_timestamps(|r| r.1, strategy(WatermarkStrategy::monotonous()));
        let busy = env
            .generate_paced(2_000, None, |i| (1u8, i as i64))
            .assign_timestamps(|r| r.1, strategy(WatermarkStrategy::monotonous()));
        quiet.union(busy).key_by(|r| r.0).process(Watch).collect()
    })
}

#[test]
fn an_idle_split_stops_holding_back_the_watermark() {
    let with = watermarks_seen(Some(Duration::from_millis(100)));
    assert!(
        with.iter().any(|&w| w > 0),
        "with idleness the busy split's watermark advances: {:?}",
        &with[..with.len().min(5)]
    );
    // Negative control: without idleness the silent split holds the watermark at its start.
    let without = watermarks_seen(None);
    assert!(!without.is_empty());
    assert!(
        without.iter().all(|&w| w == i64::MIN),
        "the silent split must hold the watermark"
    );
}

#[test]
fn processing_time_windows_fire_on_the_wall_clock() {
    let out = run_for(Duration::from_millis(900), |env| {
        env.generate_paced(2_000, None, |i| ((i % 3) as u8, i))
            .key_by(|r| r.0)
            .window(TumblingProcessingTimeWindows::of(Duration::from_millis(
                100,
            )))
            .count()
            .map(|w| (w.window, w.value, now_ms()))
            .collect()
    });
    let windows: std::collections::BTreeSet<_> = out.iter().map(|o| o.0).collect();
    assert!(windows.len() >= 3, "{windows:?}");
    // Windows that closed well before the stop fired when the wall clock passed their end:
    // not before it, and not only when the job ended.
    let stop_time = out.iter().map(|o| o.2).max().unwrap();
    let early: Vec<_> = out.iter().filter(|o| o.0.end + 300 < stop_time).collect();
    assert!(!early.is_empty(), "{out:?}");
    for (w, _, fired_at) in early {
        assert!(
            *fired_at >= w.end - 1,
            "{w:?} fired at {fired_at}, before its end"
        );
        assert!(
            *fired_at <= w.end + 150,
            "{w:?} fired at {fired_at}, long after its end"
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
    let out = run_for(Duration::from_millis(500), |env| {
        env.generate_paced(1_000, None, |i| i)
            .key_by(|_| 0u8)
            .process(Once)
            .collect()
    });
    assert_eq!(out.len(), 1, "{out:?}");
    let (ts, fired_at, proc) = out[0];
    assert!(proc);
    assert!(fired_at >= ts, "fired at {fired_at}, before its time {ts}");
}
