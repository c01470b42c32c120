//! Criterion group `window_sum`: 1 s event-time tumbling sums per key over 20 million events
//! (10,000 keys, timestamps rising ~1 ms per event, 10% up to 100 ms late), flow at
//! parallelism 1 and 2 beside a hand-written streaming baseline.
//!
//! `cargo bench -p flow-benches --bench window_sum`. Set `FLOW_BENCH_EVENTS=/path` to reuse an
//! events file (e.g. the one `../shared/bench/compare.sh window_sum` generates).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flow_core::prelude::*;
use flow_examples::{Event, SumCount};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

const EVENTS: u64 = 20_000_000;

fn events_file() -> (PathBuf, Option<tempfile::NamedTempFile>) {
    if let Ok(p) = std::env::var("FLOW_BENCH_EVENTS") {
        return (PathBuf::from(p), None);
    }
    let f = tempfile::NamedTempFile::new().expect("temporary events file");
    let mut out = std::io::BufWriter::with_capacity(1 << 20, f.reopen().expect("events file"));
    for i in 0..EVENTS {
        let (key, ts, value) = flow_examples::generated_event(i);
        writeln!(out, "{key},{ts},{value}").expect("write events");
    }
    out.flush().expect("write events");
    (f.path().to_path_buf(), Some(f))
}

fn windowed_sums(
    env: &mut Env,
    path: &Path,
) -> Stream<impl Chain<Out = Windowed<Word, (u64, u64)>>> {
    env.read_csv::<Event>(path, ReadOptions::default())
        .expect("events")
        .assign_timestamps(
            |e| e.1,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
        )
        .key_by(|e| e.0.clone())
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .aggregate(SumCount)
}

/// The job the benchmark times: every window result reaches a sink that counts it.
fn flow_window_sum(path: &Path, parallelism: usize) -> u64 {
    let mut env = Env::new(Config::default().parallelism(parallelism));
    windowed_sums(&mut env, path).discard();
    env.execute().expect("window sum").records_written()
}

/// The same job with its results totalled, to check it against the baseline (not timed).
fn flow_totals(path: &Path, parallelism: usize) -> flow_benches::WindowTotals {
    let mut env = Env::new(Config::default().parallelism(parallelism));
    let totals = windowed_sums(&mut env, path)
        .key_by(|_| ())
        .fold((0u64, 0u64), |acc: &mut (u64, u64), w| {
            acc.0 += 1;
            acc.1 += w.value.0;
        })
        .collect();
    let summary = env.execute().expect("window sum");
    let (rows, sum) = totals
        .take()
        .into_iter()
        .map(|(_, v)| v)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    flow_benches::WindowTotals {
        rows,
        sum,
        late: summary.records_late(),
    }
}

fn window_sum(c: &mut Criterion) {
    let (path, _keep) = events_file();
    let want = flow_benches::window_sum(&path, 1000, 100).expect("baseline");
    assert_eq!(
        flow_totals(&path, 2),
        want,
        "flow and the baseline disagree"
    );
    assert_eq!(flow_window_sum(&path, 1), want.rows);

    let mut g = c.benchmark_group("window_sum");
    g.throughput(Throughput::Elements(EVENTS))
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    g.bench_function("baseline/1", |b| {
        b.iter(|| flow_benches::window_sum(&path, 1000, 100).expect("baseline"))
    });
    for p in [1usize, 2] {
        g.bench_with_input(BenchmarkId::new("flow", p), &p, |b, &p| {
            b.iter(|| flow_window_sum(&path, p))
        });
    }
    g.finish();
}

criterion_group!(benches, window_sum);
criterion_main!(benches);
