use flow_core::prelude::*;

#[derive(Clone)]
struct DedupConfig {
    interval: i64,
}

#[process_fn(config = DedupConfig, on_timer = forget)]
fn dedup(cfg: &DedupConfig, key: &u8, item: u32, ctx: &mut Context<'_, u32>) {
    let _ = key;
    ctx.register_event_time_timer(ctx.timestamp() + cfg.interval);
    ctx.emit(item);
}

// The configuration parameter is missing.
fn forget(key: &u8, timestamp: i64, ctx: &mut Context<'_, u32>) {
    let _ = (key, timestamp, ctx);
}

fn main() {
    let mut env = Env::new(Config::default());
    let _ = env
        .from_iter([1u32])
        .key_by(|_| 0u8)
        .process(Dedup::new(DedupConfig { interval: 10 }))
        .collect();
}
