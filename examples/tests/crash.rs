//! Crash and recovery with real processes: `word_count` and `window_sum` with checkpoints,
//! killed with SIGKILL at random moments and restored with `--restore` until a run ends on its
//! own; the committed output must equal a failure-free run's, and no reader may ever see a row
//! twice or a row that is not in the final output. See `flow_examples::crash`.
//!
//! The seed of the kill schedule is random and printed; `FLOW_CRASH_SEED=N` repeats the
//! schedule (the kill times and file triggers; where a timed kill lands in the job still
//! depends on the machine). `FLOW_CRASH_VERBOSE=1` prints every run of every trial.
//! A longer soak: `cargo build --release --examples && target/release/examples/crash_soak
//! --kills 1000`.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_examples::crash::{
    seed_from_env, Expected, Job, Kill, Plan, Stats, Trial, Watch, XorShift,
};
use std::ffi::OsStr;
use std::path::Path;
use std::time::Duration;

/// The word count corpus and the window sum events: about a second of work each for a debug
/// build at parallelism 2, so that a run takes several checkpoints, 100 ms apart.
const CORPUS_BYTES: u64 = 6_000_000;
const EVENTS: u64 = 300_000;

fn seed(test: &str) -> u64 {
    let s = seed_from_env("FLOW_CRASH_SEED");
    eprintln!("{test}: seed {s} (FLOW_CRASH_SEED={s} repeats it)");
    s
}

fn word_count(dir: &Path) -> (Job, Expected) {
    let input = dir.join("words.txt");
    flow_examples::ZipfWords::new(20_000, 1.07)
        .write_corpus(&input, CORPUS_BYTES)
        .unwrap();
    let job = Job::example("word_count", &[OsStr::new("--input"), input.as_os_str()]).unwrap();
    let expected = job.failure_free(&dir.join("expected"), 2).unwrap();
    // The failure-free run itself is right: one row per word with its count.
    let text = std::fs::read_to_string(&input).unwrap();
    let mut counts = std::collections::BTreeMap::<&str, u64>::new();
    for w in text.split_whitespace() {
        *counts.entry(w).or_default() += 1;
    }
    let mut want: Vec<String> = counts.iter().map(|(w, n)| format!("{w},{n}")).collect();
    want.sort();
    assert_eq!(expected.rows, want, "the failure-free word count");
    (job, expected)
}

fn window_sum(dir: &Path) -> (Job, Expected) {
    let input = dir.join("events.csv");
    flow_examples::crash::write_events(&input, EVENTS).unwrap();
    let job = Job::example(
        "window_sum",
        &[
            OsStr::new("--input"),
            input.as_os_str(),
            // Short windows: many fire and are published while the job runs.
            OsStr::new("--window-ms"),
            OsStr::new("200"),
        ],
    )
    .unwrap();
    let expected = job.failure_free(&dir.join("expected"), 2).unwrap();
    let values: u64 = (0..EVENTS)
        .map(|i| flow_examples::generated_event(i).2)
        .sum();
    let summed: u64 = expected
        .rows
        .iter()
        .map(|r| r.split(',').nth(2).unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(
        summed, values,
        "the failure-free window sums hold every value"
    );
    (job, expected)
}

fn trial(job: &Job, expected: &Expected, dir: &Path, seed: u64, index: u64, plan: &Plan) -> Stats {
    let mut rng = XorShift::new(seed ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let t = Trial {
        job,
        expected,
        dir: dir.join(format!("trial-{index}")),
        seed,
        index,
        verbose: std::env::var_os("FLOW_CRASH_VERBOSE").is_some(),
    };
    match t.run(&mut rng, plan) {
        Ok(stats) => {
            eprintln!("{} trial {index}: {stats}", job.name);
            stats
        }
        Err(e) => panic!("{e}"),
    }
}

/// Trials (fresh directories) until `kills` kills have landed.
fn kills(job: &Job, expected: &Expected, test: &str, kills: u64) -> Stats {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed(test);
    let plan = Plan {
        kills: kills as usize,
        parallelism: vec![2],
        interval: "100ms".into(),
        retained: 1,
        schedule: Vec::new(),
        first_kill_before: Some(Duration::from_millis(60)),
        restore_after_end: true,
    };
    let mut total = Stats::default();
    for index in 0.. {
        total.add(&trial(job, expected, dir.path(), seed, index, &plan));
        if total.kills >= kills || index == 20 {
            break;
        }
    }
    eprintln!("{}: {total}", job.name);
    total
}

/// The kills landed, one before the first checkpoint (a restore that starts over) and
/// others after checkpoints (restores that resume).
fn covered(stats: &Stats) {
    assert!(stats.kills >= 10, "{stats}");
    assert!(stats.fresh_starts >= 1, "{stats}");
    assert!(stats.from_checkpoint >= 1, "{stats}");
}

#[test]
fn word_count_survives_random_kills() {
    let dir = tempfile::tempdir().unwrap();
    let (job, expected) = word_count(dir.path());
    let stats = kills(&job, &expected, "word_count_survives_random_kills", 12);
    covered(&stats);
}

#[test]
fn window_sum_survives_random_kills() {
    let dir = tempfile::tempdir().unwrap();
    let (job, expected) = window_sum(dir.path());
    let stats = kills(&job, &expected, "window_sum_survives_random_kills", 12);
    covered(&stats);
}

/// Killed at parallelism 2, restored at 3, killed, restored at 1 and finished: keyed state
/// and source positions are redistributed twice.
#[test]
fn kills_and_restores_at_another_parallelism() {
    let dir = tempfile::tempdir().unwrap();
    let seed = seed("kills_and_restores_at_another_parallelism");
    let mut rng = XorShift::new(seed);
    let plan = Plan {
        kills: 2,
        parallelism: vec![2, 3, 1],
        interval: "100ms".into(),
        retained: 1,
        // Each run is killed once it has committed a checkpoint (one or two at parallelism 2,
        // the first at 3), just before that checkpoint's output is published: every restore
        // resumes from state written at another parallelism. Early kills, so that a busy
        // machine (fewer, slower checkpoints: one is taken at a time) still reaches them.
        schedule: vec![
            Kill::On(Watch::Manifest, 1 + rng.below(2) as u32),
            Kill::On(Watch::Manifest, 1),
        ],
        first_kill_before: None,
        restore_after_end: false,
    };
    let mut total = Stats::default();
    for (i, make) in [word_count, window_sum].into_iter().enumerate() {
        let sub = dir.path().join(format!("job-{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let (job, expected) = make(&sub);
        let stats = trial(&job, &expected, &sub, seed, i as u64, &plan);
        total.add(&stats);
    }
    eprintln!("rescaled: {total}");
    assert!(total.rescales >= 4, "{total}");
    assert!(total.rescaled_state >= 4, "{total}");
}
