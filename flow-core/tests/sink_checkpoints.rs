//! Part-file sinks with a checkpoint directory (exactly-once, two-phase commit): a job's
//! output is the same as without checkpoints, published by the checkpoint at its end (and by
//! periodic ones before it), with no in-progress or pending files left behind.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::io::sink::read_part_files;
use flow_core::prelude::*;
use std::path::Path;
use std::time::Duration;

fn input() -> Vec<(u32, String)> {
    (0..20_000u32).map(|i| (i, format!("row {i}"))).collect()
}

fn job(env: &mut Env, out: &Path) {
    env.from_vec(input())
        .map(|(i, s)| (i * 2, s))
        .write_csv(out)
        .unwrap();
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// The rows of a run without checkpoints.
fn plain_rows(parallelism: usize) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut env = Env::new(Config::default().parallelism(parallelism));
    job(&mut env, &out);
    env.execute().unwrap();
    read_part_files(&out).unwrap()
}

#[test]
fn checkpointed_csv_output_equals_the_plain_run() {
    let expected = plain_rows(3);
    assert_eq!(expected.len(), 20_000);
    let dir = tempfile::tempdir().unwrap();
    let (out, cp) = (dir.path().join("out"), dir.path().join("cp"));
    let mut env = Env::new(Config::default().parallelism(3).checkpoint_dir(&cp));
    job(&mut env, &out);
    env.execute().unwrap();
    assert_eq!(read_part_files(&out).unwrap(), expected);
    let files = names(&out);
    assert!(files.iter().all(|f| !f.starts_with('.')), "{files:?}");
    assert!(
        files.iter().all(|f| f.starts_with("part-0000000001-")),
        "the checkpoint at the end publishes everything: {files:?}"
    );

    // A second run (no restore) starts from an empty directory: the same rows again, under
    // the ids of its own checkpoints, which follow the first run's.
    let mut env = Env::new(Config::default().parallelism(2).checkpoint_dir(&cp));
    job(&mut env, &out);
    env.execute().unwrap();
    assert_eq!(read_part_files(&out).unwrap(), expected);
    let files = names(&out);
    assert!(
        files.iter().all(|f| f.starts_with("part-0000000002-")),
        "{files:?}"
    );
}

#[test]
fn periodic_checkpoints_publish_each_row_once() {
    let expected = plain_rows(2);
    let dir = tempfile::tempdir().unwrap();
    let (out, cp) = (dir.path().join("out"), dir.path().join("cp"));
    let mut env = Env::new(
        Config::default()
            .parallelism(2)
            .checkpoint_dir(&cp)
            .checkpoint_interval(Duration::from_millis(1)),
    );
    // A slower job, so that barriers fall between its records.
    env.from_vec(input())
        .map(|(i, s)| {
            if i % 1000 == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            (i * 2, s)
        })
        .write_csv(&out)
        .unwrap();
    let summary = env.execute().unwrap();
    assert_eq!(read_part_files(&out).unwrap(), expected);
    let files = names(&out);
    assert!(files.iter().all(|f| !f.starts_with('.')), "{files:?}");
    // Periodic checkpoints published files before the end.
    assert!(summary.checkpoints.len() > 1);
    assert!(files.len() > 2, "{files:?}");
}

#[test]
fn serde_sinks_are_transactional_too() {
    #[derive(serde::Serialize)]
    struct Row {
        id: u32,
        name: String,
    }
    let rows = || {
        (0..100u32).map(|id| Row {
            id,
            name: format!("n{id}"),
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let cp = dir.path().join("cp");
    let mut env = Env::new(Config::default().parallelism(2).checkpoint_dir(&cp));
    env.from_iter(rows())
        .write_csv_serde(
            dir.path().join("csv"),
            WriteOptions::default().with_header(),
        )
        .unwrap();
    env.from_iter(rows())
        .write_json_lines(dir.path().join("json"))
        .unwrap();
    env.execute().unwrap();
    // A header at the top of each part file.
    let files = names(&dir.path().join("csv"));
    let csv = read_part_files(&dir.path().join("csv")).unwrap();
    assert_eq!(csv.iter().filter(|r| *r == "id,name").count(), files.len());
    assert_eq!(csv.len(), 100 + files.len());
    assert_eq!(
        read_part_files(&dir.path().join("json")).unwrap().len(),
        100
    );
}
