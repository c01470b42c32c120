//! Criterion group `state_ops`: get and update of keyed state over 10 million keys, in
//! memory, as flow's stateful operators keep it ([`flow_core::state::KeyedTable`], with the
//! change tracking that incremental checkpoints need switched on), beside a plain
//! `FxHashMap` doing the same operations in the same group.
//!
//! - `value/update`: add 1 to the value of a random key (a rolling count).
//! - `value/get`: read the value of a random key.
//! - `map/update`: add 1 to one of 8 entries of a random key's map state.
//!
//! Keys are drawn from a fixed sequence (a multiplicative hash of a counter), so every run does
//! the same operations. `cargo bench -p flow-benches --bench state_ops`; `FLOW_STATE_KEYS`
//! changes the number of keys (default 10,000,000).
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use flow_core::prelude::MapState;
use flow_core::state::{FoldWith, KeyedTable};
use rustc_hash::FxHashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

/// Operations per measured iteration.
const OPS: u64 = 1_000_000;

fn keys() -> u64 {
    std::env::var("FLOW_STATE_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000)
}

/// The `i`-th key of the sequence, in `0..n`.
#[inline]
fn key(i: u64, n: u64) -> u64 {
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16) % n
}

fn value_state(c: &mut Criterion) {
    let n = keys();
    let mut table: KeyedTable<u64, u64> = KeyedTable::tracking();
    let mut base: FxHashMap<u64, u64> = FxHashMap::default();
    for k in 0..n {
        table.insert(k, 0);
        base.insert(k, 0);
    }
    // The fill counts as changes; a checkpoint would take them.
    let _ = table.take_changes().map(|c| c.len());
    let mut g = c.benchmark_group("state_ops/value");
    g.throughput(Throughput::Elements(OPS)).sample_size(10);
    let mut next = 0u64;
    let mut add = FoldWith(|x: u64| x, |v: &mut u64, x| *v += x);
    g.bench_function("update/flow", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // Between iterations, a checkpoint takes the changes (not timed).
                let _ = table.take_changes().map(|c| c.len());
                let start = Instant::now();
                for _ in 0..OPS {
                    next += 1;
                    table.upsert(key(next, n), 1, &mut add);
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("update/baseline", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                next += 1;
                *base.entry(key(next, n)).or_insert(0) += 1;
            }
        })
    });
    g.bench_function("get/flow", |b| {
        b.iter(|| {
            let mut s = 0u64;
            for _ in 0..OPS {
                next += 1;
                s = s.wrapping_add(*table.get(&key(next, n)).unwrap_or(&0));
            }
            black_box(s)
        })
    });
    g.bench_function("get/baseline", |b| {
        b.iter(|| {
            let mut s = 0u64;
            for _ in 0..OPS {
                next += 1;
                s = s.wrapping_add(*base.get(&key(next, n)).unwrap_or(&0));
            }
            black_box(s)
        })
    });
    g.finish();
}

fn map_state(c: &mut Criterion) {
    // Map state holds several entries per key: a tenth of the keys keeps the memory sane.
    let n = keys() / 10;
    let mut table: KeyedTable<u64, MapState<u32, u64>> = KeyedTable::tracking();
    let mut base: FxHashMap<u64, FxHashMap<u32, u64>> = FxHashMap::default();
    let mut g = c.benchmark_group("state_ops/map");
    g.throughput(Throughput::Elements(OPS)).sample_size(10);
    let mut next = 0u64;
    g.bench_function("update/flow", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let _ = table.take_changes().map(|c| c.len());
                let start = Instant::now();
                for _ in 0..OPS {
                    next += 1;
                    let k = key(next, n);
                    let m = table.get_or_insert_with(k, MapState::default);
                    let e = (next % 8) as u32;
                    match m.get_mut(&e) {
                        Some(v) => *v += 1,
                        None => {
                            m.put(e, 1);
                        }
                    }
                }
                total += start.elapsed();
            }
            total
        })
    });
    g.bench_function("update/baseline", |b| {
        b.iter(|| {
            for _ in 0..OPS {
                next += 1;
                let k = key(next, n);
                *base
                    .entry(k)
                    .or_default()
                    .entry((next % 8) as u32)
                    .or_insert(0) += 1;
            }
        })
    });
    g.finish();
}

criterion_group!(benches, value_state, map_state);
criterion_main!(benches);
