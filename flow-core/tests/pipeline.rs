//! End-to-end jobs run in-process: sources, fused operators, exchanges, sinks and failures.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod common;
use common::*;
use flow_core::prelude::*;
use flow_core::{Error, ReadOptions};
use std::collections::BTreeMap;
use std::io::Write;

fn reference_counts(text: &str) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for w in text.lines().flat_map(words_of) {
        *m.entry(w).or_insert(0) += 1;
    }
    m
}

fn sample_text(lines: usize) -> String {
    let vocab = [
        "alpha", "Beta", "gamma", "delta", "EPSILON", "zeta", "eta", "theta", "x_1", "42",
    ];
    let mut s = String::new();
    for i in 0..lines {
        for j in 0..(i % 7 + 1) {
            s.push_str(vocab[(i * 7 + j * 3) % vocab.len()]);
            s.push_str(if j % 3 == 0 { ", " } else { " " });
        }
        s.push('\n');
    }
    s
}

#[test]
fn word_count_from_a_file_equals_the_reference_at_every_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    let text = sample_text(5000);
    std::fs::write(&input, &text).unwrap();
    let want = reference_counts(&text);
    for p in 1..=4 {
        // Small chunks: many chunk boundaries fall inside lines.
        let mut env = Env::new(
            Config::default()
                .parallelism(p)
                .chunk_bytes(97)
                .batch_size(7),
        );
        let out = env
            .read_lines(&input)
            .unwrap()
            .flat_map(|l| words_of(&l))
            .key_by(|w| w.clone())
            .count()
            .collect();
        let summary = env.execute().unwrap();
        let got: BTreeMap<String, u64> = out.take().into_iter().collect();
        assert_eq!(got, want, "parallelism {p}");
        assert_eq!(summary.records_read(), 5000);
        assert_eq!(summary.bytes_read(), text.len() as u64);
    }
}

#[test]
fn write_csv_writes_each_key_once_in_complete_part_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Part files of an earlier run with more subtasks must not survive.
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("part-00007.csv"), "stale,1\n").unwrap();
    let mut env = env(3);
    env.from_iter(["b a", "a c, \"q\"", "a"])
        .flat_map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
        .key_by(|w| w.clone())
        .count()
        .write_csv(&out)
        .unwrap();
    env.execute().unwrap();
    assert_eq!(
        read_parts(&out),
        vec!["\"\"\"q\"\"\",1", "\"c,\",1", "a,3", "b,1"]
    );
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("part-") && n.ends_with(".csv")),
        "{names:?}"
    );
}

#[test]
fn files_without_a_final_newline_and_with_crlf_lose_no_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.txt");
    std::fs::write(&input, "one\r\ntwo\n\nthree").unwrap();
    for p in 1..=3 {
        let mut env = Env::new(Config::default().parallelism(p).chunk_bytes(2));
        let out = env.read_lines(&input).unwrap().collect();
        env.execute().unwrap();
        let mut got = out.take();
        got.sort();
        assert_eq!(got, vec!["", "one", "three", "two"], "parallelism {p}");
    }
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let mut env = env(1);
    let err = env.read_lines("/definitely/not/here.txt").err().unwrap();
    assert!(
        err.to_string().contains("/definitely/not/here.txt"),
        "{err}"
    );
}

#[test]
fn a_line_that_is_not_utf8_fails_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("bad.txt");
    let mut f = std::fs::File::create(&input).unwrap();
    for i in 0..100 {
        writeln!(f, "line {i}").unwrap();
    }
    f.write_all(b"bad \xff byte\n").unwrap();
    writeln!(f, "after").unwrap();
    drop(f);
    let mut env = Env::new(Config::default().parallelism(2).chunk_bytes(64));
    env.read_lines(&input).unwrap().discard();
    let err = env.execute().unwrap_err();
    assert!(
        matches!(
            err,
            Error::Utf8 {
                line: 101,
                column: 5,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("bad.txt:101"), "{err}");

    // Lenient reading skips and counts the line, and keeps every other one.
    let mut env = Env::new(Config::default().parallelism(2).chunk_bytes(64));
    let out = env
        .read_lines_with(&input, ReadOptions::lenient())
        .unwrap()
        .collect();
    let summary = env.execute().unwrap();
    assert_eq!(out.take().len(), 101);
    assert_eq!(summary.records_skipped(), 1);
}

#[test]
fn malformed_csv_records_name_file_line_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("events.csv");
    std::fs::write(&input, "k1,10,5\nk2,11,6\nk3,twelve,7\nk4,13,8\n").unwrap();
    let mut env = env(2);
    env.read_csv::<(String, i64, u64)>(&input, ReadOptions::default())
        .unwrap()
        .discard();
    let err = env.execute().unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("events.csv:3") && msg.contains("field 2") && msg.contains("twelve"),
        "{msg}"
    );

    let mut env2 = Env::new(Config::default().parallelism(2));
    let out = env2
        .read_csv::<(String, i64, u64)>(&input, ReadOptions::lenient())
        .unwrap()
        .collect();
    let summary = env2.execute().unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(got.len(), 3);
    assert_eq!(got[2], ("k4".to_string(), 13, 8));
    assert_eq!(summary.records_skipped(), 1);
}

#[test]
fn a_panicking_user_function_fails_the_job_and_names_the_operator() {
    for p in 1..=3 {
        let mut env = env(p);
        env.from_vec((0..10_000u64).collect())
            .map(|x| x + 1)
            .filter(|x| {
                assert!(*x != 5000, "record {x} is cursed");
                true
            })
            .key_by(|x| x % 10)
            .count()
            .discard();
        let err = env.execute().unwrap_err();
        match err {
            Error::OperatorPanic { operator, message } => {
                assert!(
                    operator.starts_with("filter (flow-core/tests/pipeline.rs:"),
                    "{operator}"
                );
                assert!(message.contains("record 5000 is cursed"), "{message}");
            }
            other => panic!("unexpected error {other}"),
        }
    }
}

#[test]
fn a_stream_without_a_sink_is_reported_with_its_location() {
    let mut env = env(2);
    let _unused = env.from_iter(0..3).map(|x| x * 2);
    let err = env.execute().unwrap_err();
    assert!(
        err.to_string().contains("pipeline.rs") && err.to_string().contains("no sink"),
        "{err}"
    );
}

#[test]
fn union_and_rebalance_keep_every_record() {
    let mut env = env(3);
    let a = env.from_iter(0..1000u32);
    let b = env
        .from_vec((1000..1500u32).collect())
        .filter(|x| x % 2 == 0);
    let out = a.union(b).rebalance().map(|x| x as u64).collect();
    env.execute().unwrap();
    let mut got = out.take();
    got.sort();
    let want: Vec<u64> = (0..1000)
        .chain((1000..1500).filter(|x| x % 2 == 0))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn a_bounded_generator_produces_each_index_once() {
    let mut env = env(4);
    let out = env
        .generate_n(100_003, |i| i * 3)
        .filter_map(|x| (x % 2 == 0).then_some(x / 3))
        .collect();
    env.execute().unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(
        got,
        (0..100_003).filter(|i| i % 2 == 0).collect::<Vec<u64>>()
    );
}

#[test]
fn an_unbounded_job_stops_cleanly_when_asked() {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut env = env(2);
        tx.send(env.stop_handle()).unwrap();
        let out = env.generate(|i| i % 100).key_by(|x| *x).count().collect();
        env.execute().map(|s| (s, out.take()))
    });
    let stop = rx.recv().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    stop.stop();
    let (summary, updates) = t.join().unwrap().unwrap();
    assert!(summary.records_read() > 0);
    // Rolling updates: the last update per key is its count, and all keys add up.
    let mut last = BTreeMap::new();
    for (k, n) in updates {
        let e = last.entry(k).or_insert(0);
        assert!(n > *e, "counts only grow");
        *e = n;
    }
    assert_eq!(last.values().sum::<u64>(), summary.records_read());
}

#[test]
fn a_slow_sink_applies_backpressure_without_losing_records() {
    let mut env = Env::new(Config::default().parallelism(2).batch_size(4));
    let out = env
        .generate_n(20_000, |i| i)
        .rebalance()
        .inspect(|x| {
            if x % 2000 == 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        })
        .collect();
    let summary = env.execute().unwrap();
    let mut got = out.take();
    got.sort();
    assert_eq!(got, (0..20_000).collect::<Vec<u64>>());
    assert!(
        summary.stages[0].backpressured > 0,
        "the source never waited: {summary}"
    );
}

#[test]
fn write_lines_writes_display_forms_to_text_part_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("lines");
    let mut env = env(2);
    env.from_vec((1..=5u32).collect())
        .map(|x| format!("n={x}"))
        .write_lines(&out)
        .unwrap();
    env.execute().unwrap();
    assert_eq!(read_parts(&out), vec!["n=1", "n=2", "n=3", "n=4", "n=5"]);
    assert!(std::fs::read_dir(&out).unwrap().all(|e| e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".txt")));
}
