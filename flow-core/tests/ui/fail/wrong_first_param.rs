use flow_core::prelude::*;

#[derive(Args, Debug)]
struct MyArgs {}

#[stream_job]
fn job(env: &Env, args: MyArgs) -> flow_core::Result<()> {
    let _ = (env, args);
    Ok(())
}
