//! Criterion group `word_count`: flow at parallelism 1 and 2 beside the hand-written baseline
//! (one and two threads) on two inputs over the same Zipf vocabulary (100,000 words,
//! s = 1.07): `words`, lowercase words between single spaces, and `text`, mixed-case prose
//! with digits, underscores and punctuation ([`ZipfWords::text_line`]), which the tokenizer
//! must lowercase and split on more than spaces.
//!
//! `cargo bench -p flow-benches --bench word_count`. Each corpus is generated into a temporary
//! file of `FLOW_BENCH_MB` MB (default 200). Set `FLOW_BENCH_WORDS=/path` and
//! `FLOW_BENCH_TEXT=/path` to reuse corpus files instead (e.g. `words.txt` and `text.txt`
//! that `../shared/bench/compare.sh word_count [text]` generates).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flow_core::prelude::*;
use flow_examples::{tokenize, ZipfWords};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The corpus named `name` (`words` or `text`): the file `$var` names, else one generated
/// into a temporary file, kept alive by the second element.
fn corpus(name: &str, var: &str) -> (PathBuf, Option<tempfile::NamedTempFile>) {
    if let Ok(p) = std::env::var(var) {
        return (PathBuf::from(p), None);
    }
    let mb: u64 = std::env::var("FLOW_BENCH_MB")
        .map(|v| v.parse().expect("FLOW_BENCH_MB: a number of MB"))
        .unwrap_or(200);
    let f = tempfile::NamedTempFile::new().expect("temporary corpus file");
    let z = ZipfWords::new(100_000, 1.07);
    let bytes = mb * 1_000_000;
    match name {
        "words" => z.write_corpus(f.path(), bytes),
        _ => z.write_text_corpus(f.path(), bytes),
    }
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
    let mut g = c.benchmark_group("word_count");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    for (name, var) in [("words", "FLOW_BENCH_WORDS"), ("text", "FLOW_BENCH_TEXT")] {
        let (path, _keep) = corpus(name, var);
        let bytes = std::fs::metadata(&path).expect("corpus").len();
        let distinct = flow_benches::word_count_threads(&path, 1)
            .expect("baseline")
            .len();
        assert_eq!(
            flow_word_count(&path, 2),
            distinct,
            "flow and the baseline disagree on {name}"
        );
        g.throughput(Throughput::Bytes(bytes));
        for threads in [1usize, 2] {
            let id = format!("{name}-{threads}");
            g.bench_with_input(BenchmarkId::new("baseline", &id), &threads, |b, &t| {
                b.iter(|| {
                    flow_benches::word_count_threads(&path, t)
                        .expect("baseline")
                        .len()
                })
            });
            g.bench_with_input(BenchmarkId::new("flow", &id), &threads, |b, &p| {
                b.iter(|| flow_word_count(&path, p))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, word_count);
criterion_main!(benches);
