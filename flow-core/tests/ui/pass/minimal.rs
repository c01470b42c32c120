use flow_core::prelude::*;

#[derive(Args, Debug)]
struct MyArgs {
    #[arg(long, default_value_t = 3)]
    n: u64,
}

/// Does nothing.
#[stream_job]
fn nothing(env: &mut Env, args: MyArgs) -> flow_core::Result<()> {
    let _ = (env, args.n);
    Ok(())
}
