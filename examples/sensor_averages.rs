//! IoT sensors: sliding-window average temperature per sensor, and session windows that
//! show when each device was active, from an unbounded generator of readings.
//!
//! ```text
//! cargo run --release --example sensor_averages                        # 200,000 readings, summary
//! cargo run --release --example sensor_averages -- --events 0 --rate 2000   # until Ctrl-C, printing
//! ```
use flow_core::prelude::*;
use std::path::PathBuf;
use std::time::Duration;

/// Arguments of the sensor job.
#[derive(Args, Debug)]
struct SensorArgs {
    /// Readings to generate; 0 runs until Ctrl-C
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    events: u64,
    /// Readings per second of wall time; 0 generates as fast as possible
    #[arg(long, value_name = "N", default_value_t = 0)]
    rate: u64,
    /// Number of sensors
    #[arg(long, value_name = "N", default_value_t = 50)]
    sensors: u32,
    /// Sliding window size in seconds (the windows slide by half of it)
    #[arg(long, value_name = "S", default_value_t = 10)]
    window_s: u64,
    /// A device's session ends after this many seconds without a reading
    #[arg(long, value_name = "S", default_value_t = 5)]
    session_gap_s: u64,
    /// Directory for CSV part files `sensor,window_end_ms,average`. Without it (and with
    /// --events 0) averages are printed; with a bounded run a summary is printed
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Directory for CSV part files `sensor,session_start_ms,session_end_ms,readings`
    #[arg(long, value_name = "DIR")]
    sessions_output: Option<PathBuf>,
}

/// A reading: sensor, event time (ms), temperature.
type Reading = (u32, i64, f64);

/// Mean of the temperatures of a window.
#[derive(Clone)]
struct Mean;

impl Aggregate<Reading> for Mean {
    type Acc = (f64, u64);
    type Out = f64;
    fn create(&mut self, r: Reading) -> (f64, u64) {
        (r.2, 1)
    }
    fn add(&mut self, acc: &mut (f64, u64), r: Reading) {
        acc.0 += r.2;
        acc.1 += 1;
    }
    fn merge(&mut self, a: &mut (f64, u64), b: (f64, u64)) {
        a.0 += b.0;
        a.1 += b.1;
    }
    fn result(&mut self, (sum, n): (f64, u64)) -> f64 {
        sum / n as f64
    }
}

/// Sliding averages and activity sessions per sensor.
#[stream_job]
fn sensor_averages(env: &mut Env, args: SensorArgs) -> flow_core::Result<()> {
    let sensors = args.sensors.max(1);
    let reading = move |i: u64| reading(i, sensors);
    let source = |env: &mut Env| {
        let limit = (args.events > 0).then_some(args.events);
        let s = match (args.rate, limit) {
            (0, Some(n)) => env.generate_n(n, reading),
            (0, None) => env.generate(reading),
            (r, l) => env.generate_paced(r, l, reading),
        };
        // Devices report only while active (see `reading`), and clocks jitter a little.
        s.filter_map(|r| r).assign_timestamps(
            |r: &Reading| r.1,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(500)),
        )
    };
    let size = Duration::from_secs(args.window_s.max(1));
    let averages = source(env)
        .key_by(|r| r.0)
        .window(SlidingEventTimeWindows::of(size, size / 2))
        .aggregate(Mean)
        .map(|w| (w.key, w.window.end, (w.value * 100.0).round() / 100.0));
    let sessions = source(env)
        .key_by(|r| r.0)
        .window(EventTimeSessionWindows::with_gap(Duration::from_secs(
            args.session_gap_s.max(1),
        )))
        .count()
        .map(|w| (w.key, w.window.start, w.window.end, w.value));
    let bounded = args.events > 0;
    let collected_avg = match (&args.output, bounded) {
        (Some(dir), _) => {
            averages.write_csv(dir)?;
            None
        }
        (None, true) => Some(averages.collect()),
        (None, false) => {
            averages.print();
            None
        }
    };
    let collected_sessions = match (&args.sessions_output, bounded) {
        (Some(dir), _) => {
            sessions.write_csv(dir)?;
            None
        }
        (None, true) => Some(sessions.collect()),
        (None, false) => {
            sessions.print();
            None
        }
    };
    let summary = env.execute()?;
    if summary.planned_only {
        return Ok(());
    }
    if let Some(a) = collected_avg {
        let a = a.take();
        let hottest = a
            .iter()
            .cloned()
            .fold(None::<(u32, i64, f64)>, |m, x| match m {
                Some(m) if m.2 >= x.2 => Some(m),
                _ => Some(x),
            });
        println!("{} sliding-window averages", a.len());
        if let Some((s, end, t)) = hottest {
            println!("hottest window: sensor {s}, ending at {end} ms, {t:.2} °C");
        }
    }
    if let Some(s) = collected_sessions {
        let s = s.take();
        let mean_len =
            s.iter().map(|x| (x.2 - x.1) as f64).sum::<f64>() / s.len().max(1) as f64 / 1000.0;
        println!(
            "{} device sessions, {mean_len:.1} s long on average",
            s.len()
        );
    }
    println!(
        "{} readings generated, {} late",
        summary.records_read() / 2,
        summary.records_late()
    );
    Ok(())
}

/// Reading `i`: one reading every 10 ms of event time, round-robin over the sensors, with a
/// little clock jitter. Each sensor is active for 40 s of every minute (offset per sensor), and
/// reports nothing while inactive.
fn reading(i: u64, sensors: u32) -> Option<Reading> {
    let sensor = (i % sensors as u64) as u32;
    let z = flow_examples::SplitMix::for_index(i, 0xFEED).next_u64();
    let jitter = (z % 200) as i64;
    let ts = 1_700_000_000_000 + 10 * i as i64 - jitter;
    let active = ((ts / 1000) as u64 + 7 * sensor as u64) % 60 < 40;
    let base = 18.0 + (sensor % 10) as f64;
    let wave = ((ts / 1000) as f64 / 300.0 + sensor as f64).sin() * 3.0;
    active.then_some((sensor, ts, base + wave + ((z >> 8) % 100) as f64 / 100.0))
}
