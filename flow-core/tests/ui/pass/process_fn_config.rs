use flow_core::prelude::*;

mod config {
    /// How long a repeated id is suppressed, in event time.
    #[derive(Clone, Debug)]
    pub struct DedupConfig {
        pub interval: i64,
    }
}

use config::DedupConfig;

/// Emits each id once per `interval` of event time; forgets it when its timer fires.
#[process_fn(config = config::DedupConfig, on_timer = forget, name = Dedup)]
pub fn dedup(
    &config::DedupConfig { interval }: &config::DedupConfig,
    _id: &u8,
    (id, ts): (u8, i64),
    seen_at: &mut ValueState<i64>,
    ctx: &mut Context<'_, u8>,
) {
    if seen_at.get().is_none() {
        seen_at.set(ts);
        ctx.emit(id);
        ctx.register_event_time_timer(ts + interval);
    }
}

fn forget(
    cfg: &config::DedupConfig,
    _id: &u8,
    timestamp: i64,
    seen_at: &mut ValueState<i64>,
    _ctx: &mut Context<'_, u8>,
) {
    assert!(seen_at
        .get()
        .is_some_and(|at| at + cfg.interval == timestamp));
    seen_at.clear();
}

/// Private, without timers, built with the tuple constructor.
#[process_fn(config = DedupConfig)]
fn scale(cfg: &DedupConfig, _key: &u8, item: (u8, i64), ctx: &mut Context<'_, i64>) {
    ctx.emit(item.1 * cfg.interval);
}

fn main() {
    let cfg = DedupConfig { interval: 10 };
    let dedup = Dedup::new(cfg.clone());
    assert_eq!(dedup.0.interval, 10);

    // A watermark follows each record: the one after `(3, 50)` fires the timers of 1 and 2.
    let mut env = Env::new(Config::default().parallelism(1).batch_size(1));
    let out = env
        .from_iter([(1u8, 0i64), (1, 5), (2, 6), (3, 50), (1, 100), (2, 200)])
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .key_by(|e| e.0)
        .process(dedup)
        .collect();
    env.execute().expect("the job runs");
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec![1, 1, 2, 2, 3]);

    let mut env = Env::new(Config::default());
    let out = env
        .from_iter([(1u8, 1i64), (2, 2)])
        .key_by(|e| e.0)
        .process(Scale(cfg))
        .collect();
    env.execute().expect("the job runs");
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec![10, 20]);
}
