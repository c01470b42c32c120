//! Checkpoints of a large keyed state: a rolling sum over `--keys` keys, first filled once,
//! then updated on a hot set of `--hot-percent` of the keys, with checkpoints every
//! `--checkpoint-interval` (default 200ms). Prints per checkpoint what the job summary
//! measures — barrier to durable manifest, bytes written, the longest pause of a subtask to
//! freeze its changes — and the checkpoint directory's size beside an estimate of the live
//! state, so incremental checkpoints can be judged against the state they protect.
//!
//! ```text
//! cargo run --release --example checkpoint_state -- --checkpoint-dir /tmp/cp --keys 10000000
//! ```
use flow_core::prelude::*;
use std::time::Instant;

/// Arguments of the checkpoint benchmark job.
#[derive(Args, Debug)]
struct CheckpointArgs {
    /// Distinct keys in the state
    #[arg(long, value_name = "N", default_value_t = 2_000_000)]
    keys: u64,
    /// Updates after the fill, all on the hot keys
    #[arg(long, value_name = "N", default_value_t = 60_000_000)]
    updates: u64,
    /// Percent of the keys that the updates touch
    #[arg(long, value_name = "PERCENT", default_value_t = 1.0)]
    hot_percent: f64,
}

/// Fills `keys` keys, then updates a hot set of them, checkpointing all along.
#[stream_job]
fn checkpoint_state(env: &mut Env, args: CheckpointArgs) -> flow_core::Result<()> {
    let keys = args.keys.max(1);
    let hot = ((keys as f64 * args.hot_percent / 100.0) as u64).max(1);
    let total = keys + args.updates;
    env.generate_n(total, move |i| {
        // Spread keys over the key space; hot keys are every (keys / hot)-th one.
        let k = if i < keys {
            i
        } else {
            (i % hot) * (keys / hot)
        };
        (k.wrapping_mul(0x9E37_79B9_7F4A_7C15), 1u64)
    })
    .key_by(|e| e.0)
    .sum(|e| e.1)
    .discard();
    let start = Instant::now();
    let summary = env.execute()?;
    if summary.planned_only {
        return Ok(());
    }
    let secs = start.elapsed().as_secs_f64();
    let cps = &summary.checkpoints;
    let mut ms: Vec<f64> = cps.iter().map(|c| c.duration.as_secs_f64() * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| {
        ms.get(((ms.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    // Each entry of a (u64 key, u64 sum) state: the key and value encoded (varints, ~10 + ~2
    // bytes) plus 12 bytes of segment framing.
    let live_estimate = keys * 24;
    println!(
        "{total} events in {secs:.2} s ({:.1} M/s); {} keys, {hot} hot",
        total as f64 / secs / 1e6,
        keys
    );
    println!(
        "{} checkpoints: barrier to durable p50 {:.0} ms, p99 {:.0} ms; longest snapshot pause {:.2} ms",
        cps.len(),
        q(0.5),
        q(0.99),
        summary.snapshot_pause.as_secs_f64() * 1e3
    );
    // Steady state: the checkpoints after the fill (those that wrote more than twice the
    // median), but the last two: the final one, and the one whose copy the end of input
    // finished at once (listed below with the rest).
    let mut sizes: Vec<u64> = cps.iter().map(|c| c.bytes).collect();
    sizes.sort_unstable();
    let median = sizes.get(sizes.len() / 2).copied().unwrap_or(0);
    let fill = cps
        .iter()
        .rposition(|c| c.bytes > 2 * median)
        .map_or(0, |i| i + 1);
    let steady = cps.get(fill..cps.len().saturating_sub(2)).unwrap_or(&[]);
    let pct = |mut v: Vec<f64>, p: f64| {
        v.sort_by(f64::total_cmp);
        v.get(((v.len().max(1) - 1) as f64 * p).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let pauses: Vec<f64> = steady.iter().map(|c| c.pause.as_secs_f64() * 1e3).collect();
    let durable: Vec<f64> = steady
        .iter()
        .map(|c| c.duration.as_secs_f64() * 1e3)
        .collect();
    let bytes: Vec<f64> = steady.iter().map(|c| c.bytes as f64 / 1e3).collect();
    println!(
        "steady state ({} checkpoints after the fill): pause p50 {:.2} ms, p99 {:.2} ms; \
         barrier to durable p50 {:.0} ms, p99 {:.0} ms; written p50 {:.1} KB",
        steady.len(),
        pct(pauses.clone(), 0.5),
        pct(pauses, 0.99),
        pct(durable.clone(), 0.5),
        pct(durable, 0.99),
        pct(bytes, 0.5)
    );
    for c in cps {
        println!(
            "  checkpoint {:>4}: {:>8.1} KB written, {:>6.1} ms to durable (write {:.1} ms), pause {:.2} ms",
            c.id,
            c.bytes as f64 / 1e3,
            c.duration.as_secs_f64() * 1e3,
            c.write.as_secs_f64() * 1e3,
            c.pause.as_secs_f64() * 1e3
        );
    }
    println!(
        "live state, estimated: {:.1} MB",
        live_estimate as f64 / 1e6
    );
    Ok(())
}
