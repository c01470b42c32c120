use flow_core::prelude::*;

#[process_fn]
fn first_word(key: &u8, line: String, ctx: &mut Context<'_, &str>) {
    let _ = (key, line, ctx);
}

fn main() {}
