use flow_core::prelude::*;

#[process_fn]
fn dedup(key: &u8, item: u32, seen: &mut Vec<u32>, ctx: &mut Context<'_, u32>) {
    let _ = (key, seen);
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
