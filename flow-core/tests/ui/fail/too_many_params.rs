use flow_core::prelude::*;

#[derive(Args, Debug)]
struct MyArgs {}

#[stream_job]
fn job(env: &mut Env, args: MyArgs, parallelism: usize) -> flow_core::Result<()> {
    let _ = (env, args, parallelism);
    Ok(())
}
