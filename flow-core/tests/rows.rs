//! Rows as structs: records of any serde type written with `write_csv_serde` /
//! `write_json_lines` read back unchanged with `read_csv_serde` / `read_json_lines`, at
//! several parallelisms and chunk sizes; bad records are named by file and line.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
mod common;
use flow_core::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, PartialOrd)]
struct Row {
    name: String,
    count: u32,
    delta: Option<i64>,
    ratio: f64,
    ok: bool,
}

fn rows() -> Vec<Row> {
    let names = [
        "plain",
        "with, comma",
        "say \"hi\"",
        "two\nlines",
        "crlf\r\nline",
        "",
        "é ünïcode",
        "\"",
        ",",
    ];
    (0..200u32)
        .map(|i| Row {
            name: format!("{}{}", names[i as usize % names.len()], i),
            count: i,
            delta: (i % 3 != 0).then_some(i as i64 - 100),
            ratio: i as f64 / 7.0,
            ok: i % 2 == 0,
        })
        .collect()
}

fn sorted(mut v: Vec<Row>) -> Vec<Row> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v
}

/// The part files of `dir` with extension `ext`.
fn parts(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.starts_with("part-") && name.ends_with(ext)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn structs_round_trip_through_csv_with_and_without_a_header() {
    for header in [false, true] {
        for p in [1, 3] {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("out");
            let mut env = common::env(p);
            env.from_iter(rows())
                .rebalance()
                .write_csv_serde(&out, WriteOptions { header })
                .unwrap();
            env.execute().unwrap();
            let files = parts(&out, ".csv");
            assert_eq!(files.len(), p);
            for chunk in [5, 64, 1 << 20] {
                let mut got = Vec::new();
                for f in &files {
                    let text = std::fs::read_to_string(f).unwrap();
                    if header && !text.is_empty() {
                        assert!(text.starts_with("name,count,delta,ratio,ok\n"), "{text}");
                        assert_eq!(text.matches("name,count").count(), 1);
                    }
                    let mut env = Env::new(Config::default().parallelism(p).chunk_bytes(chunk));
                    let back = env
                        .read_csv_serde::<Row>(
                            f,
                            ReadOptions {
                                header,
                                ..Default::default()
                            },
                        )
                        .unwrap()
                        .collect();
                    env.execute().unwrap();
                    got.extend(back.take());
                }
                assert_eq!(
                    sorted(got),
                    sorted(rows()),
                    "header {header}, p {p}, chunk {chunk}"
                );
            }
        }
    }
}

#[test]
fn a_header_maps_fields_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    // Columns in another order, one the struct does not name, a quoted header field.
    std::fs::write(
        &path,
        "ok,\"ratio\",extra,name,delta,count\ntrue,0.5,x,\"a,b\",,1\nfalse,1.5,y,c,-2,2\n",
    )
    .unwrap();
    for chunk in [1, 4, 1 << 20] {
        let mut env = Env::new(Config::default().parallelism(3).chunk_bytes(chunk));
        let back = env
            .read_csv_serde::<Row>(&path, ReadOptions::default().with_header())
            .unwrap()
            .collect();
        env.execute().unwrap();
        let want = vec![
            Row {
                name: "a,b".into(),
                count: 1,
                delta: None,
                ratio: 0.5,
                ok: true,
            },
            Row {
                name: "c".into(),
                count: 2,
                delta: Some(-2),
                ratio: 1.5,
                ok: false,
            },
        ];
        assert_eq!(sorted(back.take()), want, "chunk {chunk}");
    }
}

#[test]
fn a_bad_csv_record_is_named_by_file_and_line_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    std::fs::write(
        &path,
        "name,count,delta,ratio,ok\n\"two\nlines\",1,,0.5,true\nb,x,,1,false\nc,3,4,2,true\n",
    )
    .unwrap();
    for chunk in [3, 1 << 20] {
        let mut env = Env::new(Config::default().parallelism(2).chunk_bytes(chunk));
        let _rows = env
            .read_csv_serde::<Row>(&path, ReadOptions::default().with_header())
            .unwrap()
            .collect();
        let err = env.execute().unwrap_err().to_string();
        assert!(err.contains("in.csv:4:"), "chunk {chunk}: {err}");
        assert!(
            err.contains("field 2 `count` (\"x\")"),
            "chunk {chunk}: {err}"
        );

        let mut env = Env::new(Config::default().parallelism(2).chunk_bytes(chunk));
        let rows = env
            .read_csv_serde::<Row>(&path, ReadOptions::lenient().with_header())
            .unwrap()
            .collect();
        let summary = env.execute().unwrap();
        assert_eq!(summary.records_skipped(), 1);
        let names: Vec<String> = sorted(rows.take()).into_iter().map(|r| r.name).collect();
        assert_eq!(names, vec!["c", "two\nlines"], "chunk {chunk}");
    }
}

#[test]
fn structs_round_trip_through_json_lines() {
    for p in [1, 3] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let mut env = common::env(p);
        env.from_iter(rows())
            .rebalance()
            .write_json_lines(&out)
            .unwrap();
        env.execute().unwrap();
        let files = parts(&out, ".jsonl");
        assert_eq!(files.len(), p);
        let mut got = Vec::new();
        for f in &files {
            let mut env = Env::new(Config::default().parallelism(p).chunk_bytes(50));
            let back = env
                .read_json_lines::<Row>(f, ReadOptions::default())
                .unwrap()
                .collect();
            env.execute().unwrap();
            got.extend(back.take());
        }
        assert_eq!(sorted(got), sorted(rows()), "p {p}");
    }
}

#[test]
fn a_bad_json_line_is_named_by_file_and_line_or_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    let good = r#"{"name":"a","count":1,"delta":null,"ratio":0.5,"ok":true}"#;
    let wrong_type = r#"{"name":"b","count":"x","delta":null,"ratio":0.5,"ok":true}"#;
    for (bad, what) in [
        ("{not json", "key must be a string"),
        (wrong_type, "expected u32"),
    ] {
        std::fs::write(&path, format!("{good}\n\n{bad}\n{good}\n")).unwrap();
        let mut env = Env::new(Config::default().parallelism(2).chunk_bytes(16));
        let _rows = env
            .read_json_lines::<Row>(&path, ReadOptions::default())
            .unwrap()
            .collect();
        let err = env.execute().unwrap_err().to_string();
        assert!(err.contains("in.jsonl:3:"), "{err}");
        assert!(err.contains(what), "{err}");
        assert!(!err.contains("at line 1"), "{err}");
    }
    std::fs::write(
        &path,
        format!("{good}\n\n{{not json\n{wrong_type}\n{good}\n"),
    )
    .unwrap();

    let mut env = Env::new(Config::default().parallelism(2).chunk_bytes(16));
    let rows = env
        .read_json_lines::<Row>(&path, ReadOptions::lenient())
        .unwrap()
        .collect();
    let summary = env.execute().unwrap();
    assert_eq!(summary.records_skipped(), 2);
    assert_eq!(rows.take().len(), 2);
}

#[test]
fn a_record_csv_cannot_write_fails_the_job_naming_the_part_file() {
    #[derive(Serialize)]
    struct Nested {
        inner: std::collections::BTreeMap<String, u32>,
    }
    let dir = tempfile::tempdir().unwrap();
    let mut env = common::env(1);
    env.from_iter([Nested {
        inner: [("a".to_string(), 1)].into(),
    }])
    .write_csv_serde(dir.path(), WriteOptions::default())
    .unwrap();
    let err = env.execute().unwrap_err().to_string();
    assert!(err.contains("part-00000.csv"), "{err}");
    assert!(err.contains("cannot write a record"), "{err}");
}

#[test]
fn read_csv_skips_a_header_row_when_told_even_one_spanning_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.csv");
    for text in ["word,n\na,1\nb,2\n", "\"wo\nrd\",n\na,1\nb,2\n"] {
        std::fs::write(&path, text).unwrap();
        for chunk in [1, 2, 5, 1 << 20] {
            let mut env = Env::new(Config::default().parallelism(2).chunk_bytes(chunk));
            let rows = env
                .read_csv::<(String, u32)>(&path, ReadOptions::default().with_header())
                .unwrap()
                .collect();
            env.execute().unwrap();
            let mut got = rows.take();
            got.sort();
            assert_eq!(
                got,
                vec![("a".into(), 1), ("b".into(), 2)],
                "{text:?} chunk {chunk}"
            );
        }
    }
    // A file with nothing but (or not even) a header has no records.
    for text in ["", "name,count,delta,ratio,ok\n"] {
        std::fs::write(&path, text).unwrap();
        let mut env = common::env(2);
        let rows = env
            .read_csv_serde::<Row>(&path, ReadOptions::default().with_header())
            .unwrap()
            .collect();
        env.execute().unwrap();
        assert!(rows.take().is_empty());
    }
}
