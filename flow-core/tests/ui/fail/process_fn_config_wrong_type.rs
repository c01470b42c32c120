use flow_core::prelude::*;

#[derive(Clone)]
struct DedupConfig {
    interval: i64,
}

#[derive(Clone)]
struct OtherConfig;

// By mutable reference.
#[process_fn(config = DedupConfig)]
fn by_mut(cfg: &mut DedupConfig, key: &u8, item: u32, ctx: &mut Context<'_, u32>) {
    let _ = (cfg.interval, key);
    ctx.emit(item);
}

// A reference to another type.
#[process_fn(config = DedupConfig)]
fn other(cfg: &OtherConfig, key: &u8, item: u32, ctx: &mut Context<'_, u32>) {
    let _ = (cfg, key);
    ctx.emit(item);
}

// By value.
#[process_fn(config = DedupConfig, name = Owned)]
fn by_value(cfg: DedupConfig, key: &u8, item: u32, ctx: &mut Context<'_, u32>) {
    let _ = (cfg.interval, key);
    ctx.emit(item);
}

fn main() {
    let config = DedupConfig { interval: 10 };
    let mut env = Env::new(Config::default());
    let _ = env
        .from_iter([1u32])
        .key_by(|_| 0u8)
        .process(ByMut::new(config.clone()))
        .collect();
    let _ = env
        .from_iter([1u32])
        .key_by(|_| 0u8)
        .process(Other(config.clone()))
        .collect();
    let _ = env
        .from_iter([1u32])
        .key_by(|_| 0u8)
        .process(Owned::new(config))
        .collect();
}
