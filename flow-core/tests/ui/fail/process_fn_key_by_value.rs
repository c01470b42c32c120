use flow_core::prelude::*;

#[process_fn]
fn tag(key: String, item: u32, ctx: &mut Context<'_, (String, u32)>) {
    ctx.emit((key, item));
}

fn main() {
    let mut env = Env::new(Config::default());
    let _ = env
        .from_iter([1u32])
        .key_by(|i| i.to_string())
        .process(Tag)
        .collect();
}
