//! Every query (but q12, which runs in processing time) checked against DuckDB running the
//! query's SQL (`nexmark/sql/`) on the same events, at parallelism 1 and 2.
//!
//! DuckDB comes from PyPI: `.ci/run` installs it into the virtual environment `target/py`
//! (or set `FLOW_PYTHON` to a Python that has it). Without it this test fails, saying so.
use flow_core::prelude::*;
use flow_nexmark::{json, queries, Generator, GeneratorConfig, Output, Query};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The Python with DuckDB: `FLOW_PYTHON`, or the workspace's `target/py`, which is created
/// and given DuckDB from PyPI on first use (as `.ci/run` does).
fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(p) = std::env::var_os("FLOW_PYTHON") {
                return PathBuf::from(p);
            }
            let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/py");
            let python = venv.join("bin/python");
            let has_duckdb = |py: &Path| {
                Command::new(py)
                    .args(["-c", "import duckdb"])
                    .status()
                    .is_ok_and(|s| s.success())
            };
            if !has_duckdb(&python) {
                let made = Command::new("python3")
                    .arg("-m")
                    .arg("venv")
                    .arg(&venv)
                    .status();
                let installed = Command::new(&python)
                    .args(["-m", "pip", "install", "--quiet", "duckdb==1.5.6"])
                    .status();
                assert!(
                    made.is_ok_and(|s| s.success())
                        && installed.is_ok_and(|s| s.success())
                        && has_duckdb(&python),
                    "this test needs DuckDB's Python package and could not install it into \
                     {}: install python3 and python3-venv and make PyPI reachable, or set \
                     FLOW_PYTHON to a Python that has duckdb",
                    venv.display()
                );
            }
            python
        })
        .clone()
}

/// Writes the events, runs DuckDB on them and returns the directory of reference CSVs.
fn reference(dir: &Path, config: GeneratorConfig, n: u64) -> PathBuf {
    let events = dir.join("events.jsonl");
    let mut w = std::io::BufWriter::new(std::fs::File::create(&events).expect("events file"));
    let g = Generator::new(config);
    json::write_events(&mut w, (0..n).map(|i| g.event(i))).expect("write events");
    drop(w);
    let out = dir.join("duckdb");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sql/run.py");
    let run = Command::new(python())
        .arg(&script)
        .arg(&events)
        .arg(&out)
        .output()
        .expect("start python");
    assert!(
        run.status.success(),
        "DuckDB failed: {}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    out
}

fn flow_rows(q: Query, config: GeneratorConfig, n: u64, p: usize) -> Vec<String> {
    let mut env = Env::new(Config::default().parallelism(p));
    let events = flow_nexmark::events(&mut env, config, Some(n));
    let rows = queries::build(q, events, &Output::Collect)
        .expect("build")
        .expect("collected");
    env.execute().expect("run");
    let mut rows = rows.take();
    rows.sort();
    rows
}

fn check(config: GeneratorConfig, n: u64, min_rows: &[(Query, usize)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let reference = reference(dir.path(), config, n);
    let mut failures = Vec::new();
    for q in Query::ALL {
        if q.is_processing_time() {
            continue;
        }
        let text = std::fs::read_to_string(reference.join(format!("{}.csv", q.name())))
            .expect("reference rows");
        let mut want: Vec<String> = text.lines().map(str::to_string).collect();
        want.sort();
        if let Some((_, min)) = min_rows.iter().find(|(m, _)| *m == q) {
            assert!(
                want.len() >= *min,
                "{}: only {} reference rows; the data does not exercise it",
                q.name(),
                want.len()
            );
        }
        for p in [1, 2] {
            let got = flow_rows(q, config, n, p);
            if got != want {
                let missing: Vec<&String> = want
                    .iter()
                    .filter(|r| got.binary_search(r).is_err())
                    .take(3)
                    .collect();
                let extra: Vec<&String> = got
                    .iter()
                    .filter(|r| want.binary_search(r).is_err())
                    .take(3)
                    .collect();
                failures.push(format!(
                    "{} at p{p}: {} rows, DuckDB {}; missing {missing:?}; unexpected {extra:?}",
                    q.name(),
                    got.len(),
                    want.len()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// 20 s of event time: many windows, auctions that close, hot keys.
#[test]
fn queries_match_duckdb_on_a_busy_stream() {
    let config = GeneratorConfig {
        seed: 7,
        rate: 10_000.0,
        ..GeneratorConfig::default()
    };
    check(
        config,
        200_000,
        &[
            (Query::Q3, 100),
            (Query::Q4, 5),
            (Query::Q5, 5),
            (Query::Q7, 2),
            (Query::Q8, 100),
            (Query::Q9, 1000),
            (Query::Q11, 1000),
            (Query::Q20, 1000),
        ],
    );
}

/// 17 hours of event time from 21:00: every `bidTimeType` of q14 and two days for q15–q17.
#[test]
fn queries_match_duckdb_across_days_and_hours() {
    let config = GeneratorConfig {
        seed: 11,
        rate: 0.5,
        base_time: 1_767_225_600_000 + 21 * 3_600_000,
    };
    check(
        config,
        30_000,
        &[(Query::Q14, 100), (Query::Q15, 2), (Query::Q17, 100)],
    );
}
