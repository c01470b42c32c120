use flow_core::prelude::*;

fn main() {
    let mut env = Env::new(Config::default());
    let _ = env
        .from_iter([(1u32, 2u64)])
        .key_by(|e| e.0)
        .process(|_k: &u32, e: (u32, u64)| e.1)
        .collect();
}
