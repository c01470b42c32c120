//! Event-time tumbling window sums: reads `key,timestamp_ms,value` CSV lines and writes
//! `key,window_start_ms,sum,count` for every key and window, with bounded out-of-orderness
//! watermarks; records later than their window go to `--late-output` or are counted.
//!
//! ```text
//! cargo run --release --example window_sum                 # built-in generated stream
//! cargo run --release --example window_sum -- --input events.csv --output sums/ --window-ms 1000
//! ```
use flow_core::prelude::*;
use flow_examples::{generated_event, Event, SumCount};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of the window sum job.
#[derive(Args, Debug)]
struct WindowSumArgs {
    /// CSV file of `key,timestamp_ms,value` lines. Without it, a generated stream is used
    #[arg(long, value_name = "PATH")]
    input: Option<PathBuf>,
    /// Directory for CSV part files `key,window_start_ms,sum,count`. Without it, a summary
    /// of the windows is printed
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Directory for CSV part files of the late records (`key,timestamp_ms,value`). Without
    /// it, late records are counted in the summary
    #[arg(long, value_name = "DIR")]
    late_output: Option<PathBuf>,
    /// Window size in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    window_ms: u64,
    /// How late a record may be before the watermark passes it, in milliseconds
    #[arg(long, value_name = "MS", default_value_t = 100)]
    out_of_order_ms: u64,
    /// Events in the generated stream (when no --input is given)
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    events: u64,
    /// Treat malformed lines as skipped (counted) instead of failing
    #[arg(long)]
    lenient: bool,
}

/// Sums values per key in event-time tumbling windows.
#[stream_job]
fn window_sum(env: &mut Env, args: WindowSumArgs) -> flow_core::Result<()> {
    let collected = match &args.input {
        Some(path) => {
            let options = if args.lenient {
                ReadOptions::lenient()
            } else {
                ReadOptions::default()
            };
            sums(env.read_csv::<Event>(path, options)?, &args)?
        }
        None => sums(env.generate_n(args.events, generated_event), &args)?,
    };
    let start = Instant::now();
    let summary = env.execute()?;
    if summary.planned_only {
        return Ok(());
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let events = summary.records_read();
    if let Some(c) = collected {
        let rows = c.take();
        let windows: std::collections::BTreeSet<i64> = rows.iter().map(|r| r.1).collect();
        let total: u64 = rows.iter().map(|r| r.2).sum();
        println!(
            "{} key-window sums over {} windows of {} ms; values total {total}",
            rows.len(),
            windows.len(),
            args.window_ms
        );
    }
    println!(
        "{events} events in {secs:.2} s ({:.1} M events/s), {} late",
        events as f64 / secs / 1e6,
        summary.records_late()
    );
    Ok(())
}

type Row = (Word, i64, u64, u64);

/// The pipeline, for any source of events. Returns the collected rows when no --output.
fn sums(
    events: Stream<impl Chain<Out = Event>>,
    args: &WindowSumArgs,
) -> flow_core::Result<Option<flow_core::Collected<Row>>> {
    let bound = Duration::from_millis(args.out_of_order_ms);
    let mut windowed = events
        .assign_timestamps(|e| e.1, WatermarkStrategy::bounded_out_of_orderness(bound))
        .key_by(|e| e.0.clone())
        .window(TumblingEventTimeWindows::of(Duration::from_millis(
            args.window_ms,
        )));
    if let Some(dir) = &args.late_output {
        windowed.late_records().write_csv(dir)?;
    }
    let rows = windowed
        .aggregate(SumCount)
        .map(|w| (w.key, w.window.start, w.value.0, w.value.1));
    Ok(match &args.output {
        Some(dir) => {
            rows.write_csv(dir)?;
            None
        }
        None => Some(rows.collect()),
    })
}
