use std::rc::Rc;

use flow_core::prelude::*;

// Not `Send`: a process function's configuration moves to its subtasks' threads.
#[derive(Clone)]
struct DedupConfig {
    interval: Rc<i64>,
}

#[process_fn(config = DedupConfig)]
fn dedup(cfg: &DedupConfig, key: &u8, item: u32, ctx: &mut Context<'_, u32>) {
    let _ = (cfg.interval.clone(), key);
    ctx.emit(item);
}

fn main() {
    let mut env = Env::new(Config::default());
    let _ = env
        .from_iter([1u32])
        .key_by(|_| 0u8)
        .process(Dedup::new(DedupConfig {
            interval: Rc::new(10),
        }))
        .collect();
}
