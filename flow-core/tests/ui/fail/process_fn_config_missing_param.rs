use flow_core::prelude::*;

#[derive(Clone)]
struct DedupConfig {
    interval: i64,
}

// `config = DedupConfig` but no `cfg: &DedupConfig` first.
#[process_fn(config = DedupConfig)]
fn dedup(key: &u8, item: u32, last: &mut ValueState<i64>, ctx: &mut Context<'_, u32>) {
    let _ = (key, last);
    ctx.emit(item);
}

fn main() {
    let mut env = Env::new(Config::default());
    let _ = env
        .from_iter([1u32])
        .key_by(|_| 0u8)
        .process(Dedup::new(DedupConfig { interval: 10 }))
        .collect();
}
