use flow_core::prelude::*;

struct Reading {
    sensor: u32,
}

fn main() -> flow_core::Result<()> {
    let mut env = Env::new(Config::default());
    env.from_iter([Reading { sensor: 1 }])
        .filter(|r| r.sensor > 0)
        .write_csv("/tmp/out")?;
    Ok(())
}
