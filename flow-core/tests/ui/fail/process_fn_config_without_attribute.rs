use flow_core::prelude::*;

#[derive(Clone)]
struct DedupConfig {
    interval: i64,
}

// A configuration parameter, but no `config = DedupConfig`.
#[process_fn]
fn dedup(
    cfg: &DedupConfig,
    key: &u8,
    item: u32,
    last: &mut ValueState<i64>,
    ctx: &mut Context<'_, u32>,
) {
    let _ = (cfg.interval, key, last);
    ctx.emit(item);
}

fn main() {
    let mut env = Env::new(Config::default());
    let _ = env
        .from_iter([1u32])
        .key_by(|_| 0u8)
        .process(Dedup)
        .collect();
}
