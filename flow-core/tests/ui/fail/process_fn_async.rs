use flow_core::prelude::*;

#[process_fn]
async fn forward(key: &u8, item: u32, ctx: &mut Context<'_, u32>) {
    let _ = key;
    ctx.emit(item);
}

fn main() {
    let mut env = Env::new(Config::default());
    let _ = env
        .from_iter([1u32])
        .key_by(|_| 0u8)
        .process(Forward)
        .collect();
}
