use flow_core::prelude::*;

#[process_fn(on_timer = expire)]
fn remember(key: &u8, item: u32, last: &mut ValueState<u32>, ctx: &mut Context<'_, u32>) {
    let _ = key;
    last.set(item);
    ctx.register_event_time_timer(100);
}

// The context comes before the state parameter.
fn expire(key: &u8, timestamp: i64, ctx: &mut Context<'_, u32>, last: &mut ValueState<u32>) {
    let _ = (key, timestamp, ctx, last);
}

fn main() {
    let mut env = Env::new(Config::default());
    let _ = env
        .from_iter([1u32])
        .key_by(|_| 0u8)
        .process(Remember)
        .collect();
}
