//! Crash soak: runs `word_count` and `window_sum` with checkpoints, kills them with SIGKILL at
//! random moments, restores them at random parallelism (1 to 3) until they finish, and checks
//! the output after every kill and at the end (see `flow_examples::crash`), until `--kills`
//! kills have landed; prints a summary. Exits 1 if any trial failed; the failed trials'
//! directories are kept.
//!
//! ```text
//! cargo build --release --examples
//! target/release/examples/crash_soak --kills 1000 --seed 42
//! ```
use flow_examples::crash::{seed_from_env, Expected, Job, Plan, Stats, Trial, XorShift};
use std::ffi::OsStr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: crash_soak [--kills N] [--seed S] [--jobs word_count,window_sum] \
                     [--corpus-mb MB] [--events N] [--dir DIR] [--stop-on-failure] [--verbose]";

/// `--help`: what the soak does and each flag.
const HELP: &str = "\
Runs word_count and window_sum with checkpoints, kills them with SIGKILL at random moments,
restores them at random parallelism (1 to 3) until they finish, and checks the output after
every kill and at the end against a failure-free run. Exits 1 if any trial failed (its
directory is kept).

Options:
  --kills N            kills to land in all (default 1000)
  --seed S             seed of the whole soak; the same seed repeats it (default: random,
                       or FLOW_CRASH_SEED)
  --jobs A,B           jobs to soak (default word_count,window_sum)
  --corpus-mb MB       size of word_count's input (default 60, 4 in debug builds)
  --events N           window_sum's input events (default 1000000, 200000 in debug builds)
  --dir DIR            directory for the trials (default: a temporary one, removed at the end)
  --stop-on-failure    stop at the first failed trial
  -v, --verbose        print every trial's kills and restores, not only a failed one's
  -h, --help           print this help";

struct Options {
    kills: u64,
    seed: u64,
    jobs: Vec<String>,
    corpus_mb: f64,
    events: u64,
    dir: Option<PathBuf>,
    stop_on_failure: bool,
    verbose: bool,
}

/// `value` of `flag` as a number.
fn number<T: std::str::FromStr>(flag: &str, value: String) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| format!("{flag} {value}: {e}\n{USAGE}"))
}

/// The options; `None` when `--help` printed the help.
fn parse() -> Result<Option<Options>, String> {
    let mut o = Options {
        kills: 1000,
        seed: seed_from_env("FLOW_CRASH_SEED"),
        jobs: vec!["word_count".into(), "window_sum".into()],
        corpus_mb: if cfg!(debug_assertions) { 4.0 } else { 60.0 },
        events: if cfg!(debug_assertions) {
            200_000
        } else {
            1_000_000
        },
        dir: None,
        stop_on_failure: false,
        verbose: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (a.clone(), None),
        };
        if flag == "--stop-on-failure" {
            o.stop_on_failure = true;
            continue;
        }
        if flag == "--verbose" || flag == "-v" {
            o.verbose = true;
            continue;
        }
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}\n\n{HELP}");
            return Ok(None);
        }
        // The value is read only for a flag that takes one: an unknown flag is named as such.
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag.as_str() {
            "--kills" => o.kills = number(&flag, value()?)?,
            "--seed" => o.seed = number(&flag, value()?)?,
            "--jobs" => o.jobs = value()?.split(',').map(str::to_string).collect(),
            "--corpus-mb" => o.corpus_mb = number(&flag, value()?)?,
            "--events" => o.events = number(&flag, value()?)?,
            "--dir" => o.dir = Some(PathBuf::from(value()?)),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    for j in &o.jobs {
        if j != "word_count" && j != "window_sum" {
            return Err(format!("unknown job {j}: word_count or window_sum"));
        }
    }
    Ok(Some(o))
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A job under test with its failure-free output.
struct Subject {
    job: Job,
    expected: Expected,
}

fn subject(name: &str, dir: &std::path::Path, o: &Options) -> Result<Subject, String> {
    let io = |e: std::io::Error| format!("{}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(io)?;
    let job = if name == "word_count" {
        let input = dir.join("words.txt");
        flow_examples::ZipfWords::new(20_000, 1.07)
            .write_corpus(&input, (o.corpus_mb * 1e6) as u64)
            .map_err(io)?;
        Job::example(name, &[OsStr::new("--input"), input.as_os_str()])?
    } else {
        let input = dir.join("events.csv");
        flow_examples::crash::write_events(&input, o.events).map_err(io)?;
        Job::example(
            name,
            &[
                OsStr::new("--input"),
                input.as_os_str(),
                OsStr::new("--window-ms"),
                OsStr::new("200"),
            ],
        )?
    };
    let expected = job.failure_free(&dir.join("expected-2"), 2)?;
    // Output does not depend on the parallelism: restores at any parallelism must give it.
    for p in [1, 3] {
        let other = job.failure_free(&dir.join(format!("expected-{p}")), p)?;
        if other.rows != expected.rows {
            return Err(format!(
                "{name}: the failure-free output at parallelism {p} differs from the one at 2"
            ));
        }
    }
    println!(
        "{name}: {} rows, failure-free run {:.2} s",
        expected.rows.len(),
        expected.took.as_secs_f64()
    );
    Ok(Subject { job, expected })
}

fn run() -> Result<bool, String> {
    let Some(o) = parse()? else {
        return Ok(true);
    };
    let (base, _guard) = match &o.dir {
        Some(d) => (d.clone(), None),
        None => {
            let t = tempfile::Builder::new()
                .prefix("flow-crash-soak-")
                .tempdir()
                .map_err(|e| format!("temporary directory: {e}"))?;
            (t.path().to_path_buf(), Some(t))
        }
    };
    println!(
        "crash soak: seed {} (--seed {} repeats it), {} kills, jobs {}, in {}",
        o.seed,
        o.seed,
        o.kills,
        o.jobs.join(","),
        base.display()
    );
    let start = Instant::now();
    let subjects = o
        .jobs
        .iter()
        .map(|j| subject(j, &base.join(j), &o))
        .collect::<Result<Vec<_>, _>>()?;
    let mut rng = XorShift::new(o.seed);
    let mut total = Stats::default();
    let mut failed_dirs = Vec::new();
    let mut index = 0u64;
    let mut last_report = Instant::now();
    while total.kills < o.kills {
        let s = &subjects[(index % subjects.len() as u64) as usize];
        let left = (o.kills - total.kills) as usize;
        let plan = Plan {
            kills: (1 + rng.below(8) as usize).min(left),
            parallelism: (0..10).map(|_| 1 + rng.below(3) as u32).collect(),
            interval: ["50ms", "100ms", "200ms"][rng.below(3) as usize].into(),
            retained: 1 + rng.below(2) as u32,
            schedule: Vec::new(),
            first_kill_before: (rng.below(4) == 0).then(|| Duration::from_millis(60)),
            restore_after_end: rng.below(4) == 0,
        };
        let trial = Trial {
            job: &s.job,
            expected: &s.expected,
            dir: base.join(format!("trial-{index:05}")),
            seed: o.seed,
            index,
            verbose: o.verbose,
        };
        match trial.run(&mut rng, &plan) {
            Ok(stats) => {
                total.add(&stats);
                let _ = std::fs::remove_dir_all(&trial.dir);
            }
            Err(e) => {
                total.failures += 1;
                println!("\nMISMATCH\n{e}\n");
                failed_dirs.push(trial.dir.clone());
                if o.stop_on_failure {
                    break;
                }
                // A failed trial's kills are not counted: make sure the soak still ends.
                total.kills += plan.kills as u64;
            }
        }
        index += 1;
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            println!(
                "[{:>6.0} s] {} trials: {total}",
                start.elapsed().as_secs_f64(),
                index
            );
        }
    }
    println!(
        "\nsummary: seed {}, {} trials in {:.1} s: {total}; mismatches: {}",
        o.seed,
        index,
        start.elapsed().as_secs_f64(),
        total.failures
    );
    if !failed_dirs.is_empty() {
        if let Some(g) = _guard {
            // Keep the evidence.
            let _ = g.keep();
        }
        println!("failed trials kept in:");
        for d in &failed_dirs {
            println!("  {}", d.display());
        }
    }
    Ok(total.failures == 0)
}
