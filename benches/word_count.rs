//! Criterion group `word_count`: flow at parallelism 1 and 2 beside the hand-written baseline
//! (one and two threads) on the same ~200 MB Zipf corpus (100,000 words, s = 1.07).
//!
//! `cargo bench -p flow-benches --bench word_count`. Set `FLOW_BENCH_WORDS=/path` to reuse a
//! corpus file (e.g. the one `../shared/bench/compare.sh` generates) instead of writing one.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flow_core::prelude::*;
use flow_examples::{tokenize, ZipfWords};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn corpus() -> (PathBuf, Option<tempfile::NamedTempFile>) {
    if let Ok(p) = std::env::var("FLOW_BENCH_WORDS") {
        return (PathBuf::from(p), None);
    }
    let f = tempfile::NamedTempFile::new().expect("temporary corpus file");
    ZipfWords::new(100_000, 1.07)
        .write_corpus(f.path(), 200_000_000)
        .expect("write corpus");
    (f.path().to_path_buf(), Some(f))
}

fn flow_word_count(path: &Path, parallelism: usize) -> usize {
    let mut env = Env::new(Config::default().parallelism(parallelism));
    let counts = env
        .read_lines(path)
        .expect("corpus")
        .flat_map(tokenize)
        .key_by(|w| w.clone())
        .count()
        .collect();
    env.execute().expect("word count");
    counts.take().len()
}

fn word_count(c: &mut Criterion) {
    let (path, _keep) = corpus();
    let bytes = std::fs::metadata(&path).expect("corpus").len();
    let distinct = flow_benches::word_count_threads(&path, 1)
        .expect("baseline")
        .len();
    assert_eq!(
        flow_word_count(&path, 2),
        distinct,
        "flow and the baseline disagree"
    );

    let mut g = c.benchmark_group("word_count");
    g.throughput(Throughput::Bytes(bytes))
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    for threads in [1usize, 2] {
        g.bench_with_input(BenchmarkId::new("baseline", threads), &threads, |b, &t| {
            b.iter(|| {
                flow_benches::word_count_threads(&path, t)
                    .expect("baseline")
                    .len()
            })
        });
        g.bench_with_input(BenchmarkId::new("flow", threads), &threads, |b, &p| {
            b.iter(|| flow_word_count(&path, p))
        });
    }
    g.finish();
}

criterion_group!(benches, word_count);
criterion_main!(benches);
