use flow_core::prelude::*;

/// Sums each key's values, emitting the sum when the key's timer fires.
#[process_fn(on_timer = emit_sum, name = SumPerKey)]
pub fn sum(
    _key: &u8,
    (_, ts, value): (u8, i64, u32),
    total: &mut ValueState<u32>,
    seen: &mut ListState<i64>,
    by_time: &mut flow_core::ops::process::state::MapState<i64, u32>,
    ctx: &mut Context<'_, (u8, u32)>,
) {
    *total.get_or_insert_with(|| 0) += value;
    seen.add(ts);
    by_time.put(ts, value);
    ctx.register_event_time_timer(1_000);
}

fn emit_sum(
    key: &u8,
    _timestamp: i64,
    total: &mut ValueState<u32>,
    _seen: &mut ListState<i64>,
    _by_time: &mut flow_core::ops::process::state::MapState<i64, u32>,
    ctx: &mut Context<'_, (u8, u32)>,
) {
    ctx.emit((*key, total.take().unwrap_or_default()));
}

/// An elided lifetime in the record type (keys are owned: checkpoints store them);
/// named like a parameter of the generated methods.
#[process_fn]
fn item(key: &String, item: (&str, u32), ctx: &mut Context<'_, u32>) {
    if *key == item.0 {
        ctx.emit(item.1);
    }
}

fn main() {
    assert_eq!(
        <SumPerKeyState as KeyedStateNames>::NAMES,
        ["total", "seen", "by_time"]
    );
    let mut env = Env::new(Config::default());
    let out = env
        .from_iter([(1u8, 10i64, 2u32), (2, 20, 3), (1, 30, 4)])
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .key_by(|e| e.0)
        .process(SumPerKey)
        .collect();
    env.execute().expect("the job runs");
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec![(1, 6), (2, 3)]);

    let mut env = Env::new(Config::default());
    let out = env
        .from_iter([("a", 1u32), ("b", 2)])
        .key_by(|e| e.0.to_string())
        .process(Item)
        .collect();
    env.execute().expect("the job runs");
    let mut got = out.take();
    got.sort();
    assert_eq!(got, vec![1, 2]);
}
