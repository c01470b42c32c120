use flow_core::prelude::*;

fn main() {
    let tag = OutputTag::<String>::new("invalid");
    let mut env = Env::new(Config::default());
    let _ = env
        .from_iter([1u32, 2])
        .process(move |n: u32, ctx: &mut ProcessContext<'_, u32>| {
            // a `u32` cannot go to a tag of `String`s
            ctx.output(&tag, n);
        })
        .collect();
}
