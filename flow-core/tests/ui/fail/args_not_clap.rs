use flow_core::prelude::*;

// Missing `#[derive(Args)]`.
#[derive(Debug)]
struct MyArgs {
    n: u64,
}

#[stream_job]
fn job(env: &mut Env, args: MyArgs) -> flow_core::Result<()> {
    let _ = (env, args.n);
    Ok(())
}
