use flow_core::prelude::*;

#[process_fn]
fn count(key: &u8, item: u32, count: &mut ValueState<u64>) {
    let _ = (key, item);
    *count.get_or_insert_with(|| 0) += 1;
}

fn main() {
    // The struct still exists, as a stand-in.
    let _ = Count;
}
