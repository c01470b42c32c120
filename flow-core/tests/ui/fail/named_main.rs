use flow_core::prelude::*;

#[derive(Args, Debug)]
struct MyArgs {}

#[stream_job]
fn main(env: &mut Env, args: MyArgs) -> flow_core::Result<()> {
    let _ = (env, args);
    Ok(())
}
