use flow_core::prelude::*;

#[stream_job]
#[derive(Args, Debug)]
struct MyArgs {}

fn main() {}
