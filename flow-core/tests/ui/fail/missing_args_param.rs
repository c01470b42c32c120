use flow_core::prelude::*;

#[stream_job]
fn job(env: &mut Env) -> flow_core::Result<()> {
    let _ = env;
    Ok(())
}
