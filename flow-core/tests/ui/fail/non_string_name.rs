use flow_core::prelude::*;

#[derive(Args, Debug)]
struct MyArgs {}

#[stream_job(name = 42)]
fn job(env: &mut Env, args: MyArgs) -> flow_core::Result<()> {
    let _ = (env, args);
    Ok(())
}
