//! Criterion benchmark `nexmark`: one group per query, each at parallelism 1 and 2, on
//! generated events (generation included, rows discarded after the last operator, as Flink's
//! blackhole sink). Group `q0` also runs a hand-written loop that generates the same events
//! and projects the bids, so the framework's cost shows as a ratio.
//!
//! `cargo bench -p flow-benches --bench nexmark` (all queries), or `-- q5` for one. Events per
//! iteration: `FLOW_NEXMARK_EVENTS` (default 2,000,000).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flow_core::prelude::*;
use flow_nexmark::{queries, Event, Generator, GeneratorConfig, Output, Query};
use std::hint::black_box;
use std::time::Duration;

/// The allocator of the `nexmark` binary (see its source), so that the figures compare.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn events() -> u64 {
    std::env::var("FLOW_NEXMARK_EVENTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000)
}

fn run(q: Query, n: u64, parallelism: usize) -> u64 {
    let mut env = Env::new(Config::default().parallelism(parallelism));
    let events = flow_nexmark::events(&mut env, GeneratorConfig::default(), Some(n));
    queries::build(q, events, &Output::Discard).expect("build");
    env.execute().expect("run").records_read()
}

/// q0 by hand: generate every event, project each bid, no framework.
fn baseline_q0(n: u64) -> u64 {
    let g = Generator::new(GeneratorConfig::default());
    let mut rows = 0;
    for i in 0..n {
        if let Event::Bid(b) = g.event(i) {
            black_box((b.auction, b.bidder, b.price, b.date_time, b.extra));
            rows += 1;
        }
    }
    rows
}

fn nexmark(c: &mut Criterion) {
    let n = events();
    for q in Query::ALL {
        let mut group = c.benchmark_group(q.name());
        group
            .throughput(Throughput::Elements(n))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(5));
        if q == Query::Q0 {
            group.bench_function("baseline", |b| b.iter(|| baseline_q0(n)));
        }
        for p in [1, 2] {
            group.bench_with_input(BenchmarkId::new("flow", format!("p{p}")), &p, |b, &p| {
                b.iter(|| assert_eq!(run(q, n, p), n))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, nexmark);
criterion_main!(benches);
