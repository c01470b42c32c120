//! The Nexmark benchmark as one flow job binary.
//!
//! ```text
//! cargo run --release -p flow-nexmark                      # q0–q22, 10 million events each
//! cargo run --release -p flow-nexmark -- --query q5,q7 --events 50000000 -p 2
//! cargo run --release -p flow-nexmark -- --query q3 --output out/ --events 1000000
//! cargo run --release -p flow-nexmark -- --dump-events events.jsonl --events 100000
//! ```
use flow_core::prelude::*;
use flow_nexmark::{json, queries, Generator, GeneratorConfig, Output, Query};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of the Nexmark job.
#[derive(Args, Debug)]
struct NexmarkArgs {
    /// Queries to run, comma-separated (`q0,q5`) or `all`; they run one after the other, each
    /// on its own generated events
    #[arg(long, value_name = "QUERIES", default_value = "all")]
    query: String,
    /// Events per query (persons, auctions and bids together)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000_000,
        conflicts_with = "unbounded"
    )]
    events: u64,
    /// Generate events until stopped (Ctrl-C) instead of --events
    #[arg(long)]
    unbounded: bool,
    /// Events per second of event time: sets how far apart event times are, not how fast
    /// events are made (generation runs as fast as the job consumes)
    #[arg(long, value_name = "R", default_value_t = 10_000_000.0)]
    rate: f64,
    /// Seed of the generator: the same seed and event count give the same events at any
    /// parallelism
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Event time of the first event, in milliseconds since the Unix epoch
    /// [default: 2026-01-01 00:00:00 UTC]
    #[arg(long, value_name = "MS")]
    base_time: Option<i64>,
    /// Directory for CSV part files of the results (with several queries, one subdirectory
    /// per query). Without it, rows are discarded after the last operator, as Flink's
    /// blackhole sink does
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Write the events as JSON lines (Flink's field names) to PATH and exit, unless --query
    /// is also given
    #[arg(long, value_name = "PATH")]
    dump_events: Option<PathBuf>,
}

fn parse_queries(s: &str) -> flow_core::Result<Vec<Query>> {
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(Query::ALL.to_vec());
    }
    s.split(',')
        .map(|q| q.parse().map_err(flow_core::Error::Config))
        .collect()
}

/// Runs Nexmark queries on generated events and prints their throughput.
#[stream_job]
fn nexmark(env: &mut Env, args: NexmarkArgs) -> flow_core::Result<()> {
    if !(args.rate.is_finite() && args.rate > 0.0) {
        return Err(flow_core::Error::Config(format!(
            "--rate must be a positive number of events per second, not {}",
            args.rate
        )));
    }
    let mut config = GeneratorConfig {
        seed: args.seed,
        rate: args.rate,
        ..GeneratorConfig::default()
    };
    if let Some(t) = args.base_time {
        config.base_time = t;
    }
    let explicit_query = std::env::args().any(|a| a == "--query" || a.starts_with("--query="));
    if let Some(path) = &args.dump_events {
        dump(path, config, args.events)?;
        if !explicit_query {
            return Ok(());
        }
    }
    let list = parse_queries(&args.query)?;
    if list.len() > 1 && env.config().get_checkpoint_dir().is_some() {
        return Err(flow_core::Error::Config(
            "--checkpoint-dir checkpoints one query: give a single --query".into(),
        ));
    }
    let cores = env.config().get_parallelism();
    let limit = (!args.unbounded).then_some(args.events);
    let mut results = Vec::new();
    for q in &list {
        let out = match &args.output {
            None => Output::Discard,
            Some(dir) if list.len() == 1 => Output::Csv(dir.clone()),
            Some(dir) => Output::Csv(dir.join(q.name())),
        };
        let events = flow_nexmark::events(env, config, limit);
        queries::build(*q, events, &out)?;
        let start = Instant::now();
        let summary = env.execute()?;
        if summary.planned_only {
            continue;
        }
        let secs = start.elapsed().as_secs_f64().max(1e-9);
        let n = summary.records_read();
        let rate = n as f64 / secs;
        println!(
            "{}: {n} events in {secs:.2} s: {:.2} M events/s, {:.2} M events/s per core ({cores} cores), {} rows",
            q.name(),
            rate / 1e6,
            rate / cores as f64 / 1e6,
            summary.records_written()
        );
        results.push((*q, n, secs, summary.records_written()));
    }
    if results.len() > 1 {
        println!("\n| query | events | seconds | M events/s | M events/s per core | rows |");
        println!("|---|---|---|---|---|---|");
        for (q, n, secs, rows) in &results {
            let rate = *n as f64 / secs;
            println!(
                "| {} | {n} | {secs:.2} | {:.2} | {:.2} | {rows} |",
                q.name(),
                rate / 1e6,
                rate / cores as f64 / 1e6
            );
        }
    }
    Ok(())
}

/// Writes events `0..n` as JSON lines to `path` (atomically: a temporary file renamed).
fn dump(path: &std::path::Path, config: GeneratorConfig, n: u64) -> flow_core::Result<()> {
    let err = |e: std::io::Error| {
        flow_core::Error::Config(format!("cannot write events to {}: {e}", path.display()))
    };
    let tmp = path.with_extension("jsonl.tmp");
    let file = std::fs::File::create(&tmp).map_err(err)?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let g = Generator::new(config);
    json::write_events(&mut w, (0..n).map(|i| g.event(i))).map_err(err)?;
    let file = w.into_inner().map_err(|e| err(e.into_error()))?;
    file.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)?;
    println!("wrote {n} events to {}", path.display());
    Ok(())
}

/// mimalloc: records and accumulators are allocated on one worker thread and freed on another
/// (after an exchange), which glibc's allocator serialises on its arena locks (q19 at
/// parallelism 2 spent a fifth of its time in malloc and free and did not scale).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
