use flow_core::prelude::*;

#[derive(Args, Debug)]
struct MyArgs {}

#[stream_job]
fn job(env: &mut Env, args: MyArgs) {
    let _ = (env, args);
}
