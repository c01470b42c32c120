use flow_core::prelude::*;

#[derive(Args, Debug)]
struct MyArgs {}

#[stream_job]
fn job(env: &mut Env, args: MyArgs) -> Result<(), String> {
    let _ = (env, args);
    Ok(())
}
