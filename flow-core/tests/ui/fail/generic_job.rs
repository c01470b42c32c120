use flow_core::prelude::*;

#[stream_job]
fn job<A: Args>(env: &mut Env, args: A) -> flow_core::Result<()> {
    let _ = (env, args);
    Ok(())
}
