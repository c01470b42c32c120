use flow_core::prelude::*;

#[derive(Args, Debug)]
struct MyArgs {}

#[stream_job(name = "first", name = "second")]
fn job(env: &mut Env, args: MyArgs) -> flow_core::Result<()> {
    let _ = (env, args);
    Ok(())
}
