//! Regression tests, each named after what broke.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod common;
use common::*;
use flow_core::prelude::*;
use std::io::Write;
use std::time::Duration;

#[test]
fn a_stop_requested_before_execute_stops_the_job_when_it_starts() {
    // Before the fix `execute` cleared the request and ran the unbounded job for ever; run it
    // on a thread so that a regression fails instead of hanging.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut env = env(2);
        let out = env.generate(|i| i).collect();
        env.stop_handle().stop();
        let r = env.execute().map(|_| out.take().len());
        let _ = tx.send(r.map_err(|e| e.to_string()));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the job ignored a stop requested before it started");
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn a_stop_is_forgotten_once_the_job_it_stopped_has_ended() {
    let mut env = env(1);
    let stop = env.stop_handle();
    env.generate(|i| i).discard();
    stop.stop();
    env.execute().unwrap();
    assert!(!stop.is_stopped(), "the next job must start afresh");
    let out = env.from_iter(0..10).collect();
    env.execute().unwrap();
    assert_eq!(out.take().len(), 10);
}

#[test]
fn an_interval_join_with_inverted_bounds_is_rejected() {
    let mut env = env(1);
    let a = env.from_iter([(1u8, 10i64)]).key_by(|e| e.0);
    let b = env.from_iter([(1u8, 20i64)]).key_by(|e| e.0);
    let _out = a
        .interval_join_signed(b, 5, -5, |_, x, y| (x.1, y.1))
        .collect();
    let err = env.execute().unwrap_err().to_string();
    assert!(
        err.contains("lower bound 5 ms is above the upper bound -5 ms"),
        "{err}"
    );
    assert!(
        err.contains("tests/regressions.rs:"),
        "names the place: {err}"
    );
}

/// A record type that is neither `Clone` nor `Copy`.
struct Opaque(u32);

#[derive(Clone)]
struct Sum;
impl KeyedProcessFunction<u32, Opaque> for Sum {
    type State = u32;
    type Out = (u32, u32);
    fn process_element(
        &mut self,
        k: &u32,
        x: Opaque,
        s: &mut u32,
        ctx: &mut Context<'_, (u32, u32)>,
    ) {
        *s += x.0;
        ctx.emit((*k, *s));
    }
}

#[test]
fn keyed_process_functions_take_records_that_are_not_clone() {
    let mut env = env(2);
    let out = env
        .from_iter((0..6u32).map(Opaque))
        .key_by(|x| x.0 % 2)
        .process(Sum)
        .collect();
    env.execute().unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec![(0, 0), (0, 2), (0, 6), (1, 1), (1, 4), (1, 9)]);
}

#[test]
fn bad_lines_in_later_chunks_are_named_by_their_line() {
    // Many small chunks read by several readers; every bad line's number must be right
    // (counting goes on from the last bad line instead of from the file's start).
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("dirty.csv");
    let mut f = std::fs::File::create(&input).unwrap();
    let mut bad = vec![];
    for i in 1..=3000u32 {
        if i % 97 == 0 {
            writeln!(f, "k{i},oops").unwrap();
            bad.push(i);
        } else {
            writeln!(f, "k{i},{i}").unwrap();
        }
    }
    drop(f);
    let mut env = Env::new(Config::default().parallelism(3).chunk_bytes(256));
    let out = env
        .read_csv::<(String, u32)>(&input, ReadOptions::lenient())
        .unwrap()
        .collect();
    let summary = env.execute().unwrap();
    assert_eq!(summary.records_skipped(), bad.len() as u64);
    assert_eq!(out.take().len(), 3000 - bad.len());
    // Failing on the first bad line names it.
    let mut env = Env::new(Config::default().parallelism(3).chunk_bytes(256));
    let _out = env
        .read_csv::<(String, u32)>(&input, ReadOptions::default())
        .unwrap()
        .collect();
    let err = env.execute().unwrap_err().to_string();
    let named: Vec<String> = bad.iter().map(|l| format!("dirty.csv:{l}:")).collect();
    assert!(named.iter().any(|n| err.contains(n.as_str())), "{err}");
}

#[test]
fn a_socket_line_that_is_not_utf8_names_the_address_not_a_file() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        conn.write_all(b"fine\n\xff\xfe broken\n").unwrap();
    });
    let mut env = env(1);
    let _out = env.socket_lines(address.clone()).collect();
    let err = env.execute().unwrap_err();
    assert!(
        matches!(&err, flow_core::Error::NetRecord { address: a, line: 2, .. } if *a == address),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(&format!("{address}: line 2: ")),
        "{err}"
    );
}

#[test]
fn the_summary_names_every_operator_of_a_stage() {
    // Issue 13, bug 2: names were cut at the first " (", which dropped window and process
    // operators from the summary.
    let mut env = env(2);
    let _out = env
        .from_iter([(1u8, 1_000i64)])
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .key_by(|e| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .count()
        .map(|w| w.value)
        .collect();
    let summary = env.execute().unwrap();
    assert_eq!(
        summary.stages[1].name,
        "from stage 0 by key -> count -> map => collect"
    );
    assert!(
        summary.stages[0].name.starts_with(
            "from_iter -> assign_timestamps => exchange by key_by (flow-core/tests/regressions.rs:"
        ),
        "{}",
        summary.stages[0].name
    );
}

#[test]
fn each_sink_has_its_own_count() {
    // Issue 13, bug 3: records_written() added up every sink, side outputs included, with no
    // way to tell them apart. One record per batch: a watermark follows every record.
    let mut env = Env::new(Config::default().parallelism(1).batch_size(1));
    let mut windowed = env
        .from_iter([(1u8, 5_000i64), (1, 100), (1, 6_000)])
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .key_by(|e| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)));
    let _late = windowed.late_records().collect();
    windowed.count().discard();
    let summary = env.execute().unwrap();
    assert_eq!(summary.sinks(), vec![("discard", 2), ("collect", 1)]);
    assert_eq!(summary.records_written(), 3);
    assert_eq!(summary.records_late(), 1);
}

#[test]
fn the_plan_of_window_all_has_one_subtask_and_edges_say_what_they_carry() {
    // Issue 13, bug 6.
    let mut env = env(2);
    let mut windowed = env
        .from_iter([(1u8, 1_000i64)])
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .window_all(TumblingEventTimeWindows::of(Duration::from_secs(1)));
    windowed.late_records().discard();
    windowed.count().discard();
    let a = env.from_iter([(1u8, 1i64)]).key_by(|e| e.0);
    let b = env.from_iter([(1u8, 2i64)]).key_by(|e| e.0);
    a.connect(b).process(Pass).discard();
    let plan = env.plan();
    assert_eq!(plan.stages[1].parallelism, 1, "{plan}");
    assert_eq!(plan.edges[0].partitioning, Partitioning::Single);
    let text = plan.to_string();
    assert!(text.contains("==[forward: late records]==>"), "{text}");
    assert!(
        text.contains("=> exchange by key_by (flow-core/tests/regressions.rs:"),
        "{text}"
    );
    assert!(
        text.contains("(left)") && text.contains("(right)"),
        "{text}"
    );
}

#[derive(Clone)]
struct Pass;
impl KeyedCoProcessFunction<u8, (u8, i64), (u8, i64)> for Pass {
    type State = ();
    type Out = i64;
    fn process_left(&mut self, _: &u8, x: (u8, i64), _: &mut (), ctx: &mut Context<'_, i64>) {
        ctx.emit(x.1)
    }
    fn process_right(&mut self, _: &u8, x: (u8, i64), _: &mut (), ctx: &mut Context<'_, i64>) {
        ctx.emit(x.1)
    }
}

#[test]
fn the_plan_does_not_touch_inputs() {
    // Issue 13, bug 6: a missing input failed `--plan`.
    let mut env = Env::new(Config::default().parallelism(2).plan_only(true));
    env.read_lines("/no/such/file.txt")
        .unwrap()
        .map(|l| l.len())
        .discard();
    let summary = env.execute().unwrap();
    assert!(summary.planned_only);
}

#[test]
fn a_small_file_gets_watermarks_within_its_only_chunk() {
    // Issue 13, item 9: a file source advanced its watermark once per 64 KiB chunk, so in a
    // small file nothing could ever be late. Now a watermark follows every
    // `watermark_interval` records.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.csv");
    let mut f = std::fs::File::create(&input).unwrap();
    // Times rise by 10 ms; every 50th record is 300 ms old.
    for i in 0..500i64 {
        let t = if i % 50 == 49 { i * 10 - 300 } else { i * 10 };
        writeln!(f, "k,{t}").unwrap();
    }
    drop(f);
    let late_with = |interval: usize| {
        let mut env = Env::new(
            Config::default()
                .parallelism(1)
                .watermark_interval(interval),
        );
        env.read_csv::<(String, i64)>(&input, ReadOptions::default())
            .unwrap()
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .key_by(|e| e.0.clone())
            .window(TumblingEventTimeWindows::of(Duration::from_millis(100)))
            .count()
            .discard();
        env.execute().unwrap().records_late()
    };
    assert_eq!(
        late_with(1),
        10,
        "with a watermark per record, every old record is late"
    );
    assert_eq!(
        late_with(1_000_000),
        0,
        "one watermark for the whole chunk: nothing is late"
    );
    let default = late_with(Config::default().get_watermark_interval());
    assert!(default <= 10);
}
