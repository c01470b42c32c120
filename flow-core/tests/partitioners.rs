//! Partitioners, observed through the part files a sink writes per subtask.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;
use std::path::Path;

/// The rows of each part file, by subtask (part-00000, part-00001, ...).
fn parts(dir: &Path, n: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|i| {
            let f = dir.join(format!("part-{i:05}.csv"));
            match std::fs::read_to_string(&f) {
                Ok(text) => text.lines().map(|l| l.parse().unwrap()).collect(),
                Err(_) => vec![],
            }
        })
        .collect()
}

fn run(p: usize, build: impl FnOnce(&mut Env, &Path)) -> Vec<Vec<u32>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let mut env = Env::new(Config::default().parallelism(p));
    build(&mut env, &out);
    env.execute().unwrap();
    parts(&out, 4)
}

#[test]
fn partition_custom_sends_each_record_where_the_function_says() {
    let got = run(2, |env, out| {
        env.from_iter(0u32..20)
            .partition_custom(|x, n| *x as usize % n)
            .write_csv(out)
            .unwrap()
    });
    assert_eq!(got[0], (0..20).step_by(2).collect::<Vec<_>>());
    assert_eq!(got[1], (1..20).step_by(2).collect::<Vec<_>>());
}

#[test]
fn forward_keeps_records_in_their_subtask() {
    let got = run(2, |env, out| {
        env.from_vec((0u32..100).collect())
            .forward()
            .write_csv(out)
            .unwrap()
    });
    // from_vec gives subtask i the i-th contiguous half.
    assert_eq!(got[0], (0..50).collect::<Vec<_>>());
    assert_eq!(got[1], (50..100).collect::<Vec<_>>());
}

#[test]
fn global_sends_everything_to_one_subtask() {
    let got = run(3, |env, out| {
        env.from_vec((0u32..30).collect())
            .global()
            .write_csv(out)
            .unwrap()
    });
    let mut all = got[0].clone();
    all.sort();
    assert_eq!(all, (0..30).collect::<Vec<_>>());
    assert!(got[1..].iter().all(Vec::is_empty));
}

#[test]
fn broadcast_gives_every_subtask_every_record() {
    let got = run(3, |env, out| {
        env.from_iter(0u32..10).broadcast().write_csv(out).unwrap()
    });
    for part in &got[..3] {
        assert_eq!(part, &(0..10).collect::<Vec<_>>());
    }
}

#[test]
fn shuffle_spreads_records_reproducibly() {
    let build =
        |env: &mut Env, out: &Path| env.from_iter(0u32..1000).shuffle().write_csv(out).unwrap();
    let a = run(2, build);
    let b = run(2, build);
    assert_eq!(a, b, "the same seed routes alike");
    assert!(
        a[0].len() > 300 && a[1].len() > 300,
        "{} / {}",
        a[0].len(),
        a[1].len()
    );
    assert_eq!(a[0].len() + a[1].len(), 1000);
}

#[test]
fn rescale_feeds_each_producer_s_own_group_of_consumers() {
    // One producer, three consumers: round-robin over all three.
    let got = run(3, |env, out| {
        env.from_iter(0u32..9).rescale().write_csv(out).unwrap()
    });
    assert_eq!(got[0], vec![0, 3, 6]);
    assert_eq!(got[1], vec![1, 4, 7]);
    assert_eq!(got[2], vec![2, 5, 8]);
    // Equal parallelism: subtask i feeds subtask i.
    let got = run(2, |env, out| {
        env.from_vec((0u32..10).collect())
            .rescale()
            .write_csv(out)
            .unwrap()
    });
    assert_eq!(got[0], (0..5).collect::<Vec<_>>());
    assert_eq!(got[1], (5..10).collect::<Vec<_>>());
}

#[test]
fn parallelism_sets_the_subtasks_of_a_keyed_operator_and_of_what_follows() {
    let mut env = Env::new(Config::default().parallelism(2));
    let counts = env
        .from_vec((0u32..300).collect())
        .key_by(|x| x % 10)
        .parallelism(3)
        .count()
        .parallelism(1)
        .map(|(k, n)| (k, n * 2))
        .collect();
    let plan = env.plan();
    let ps: Vec<usize> = plan.stages.iter().map(|s| s.parallelism).collect();
    assert_eq!(ps, vec![2, 3, 1], "{plan}");
    env.execute().unwrap();
    let mut got = counts.take();
    got.sort();
    assert_eq!(got, (0..10).map(|k| (k, 60)).collect::<Vec<_>>());
    // Written through one subtask: one part file.
    let got = run(2, |env, out| {
        env.from_vec((0u32..20).collect())
            .parallelism(1)
            .write_csv(out)
            .unwrap()
    });
    assert_eq!(got[0].len(), 20);
    assert!(got[1].is_empty());
}
