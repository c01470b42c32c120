use flow_core::prelude::*;

#[process_fn(on_timer = expire)]
fn remember(
    key: &u8,
    item: u32,
    last: &mut ValueState<u32>,
    seen: &mut ListState<u32>,
    ctx: &mut Context<'_, u32>,
) {
    let _ = (key, seen);
    last.set(item);
    ctx.register_event_time_timer(100);
}

// The two state parameters are swapped.
fn expire(
    key: &u8,
    timestamp: i64,
    seen: &mut ListState<u32>,
    last: &mut ValueState<u32>,
    ctx: &mut Context<'_, u32>,
) {
    let _ = (key, timestamp, seen, last, ctx);
}

fn main() {
    let mut env = Env::new(Config::default());
    let _ = env
        .from_iter([1u32])
        .key_by(|_| 0u8)
        .process(Remember)
        .collect();
}
