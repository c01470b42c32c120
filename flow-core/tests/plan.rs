//! The typed plan of a job: stages, fused operators with their stable names, exchanges with
//! their partitioning. Snapshots (insta) of the text `--plan` prints and of the JSON a
//! dashboard reads; a change to either is a reviewed change of the snapshot.
#![allow(clippy::unwrap_used)]
use flow_core::prelude::*;
use std::time::Duration;

fn word_count_plan() -> Plan {
    let mut env = Env::new(Config::default().parallelism(2).name("planned"));
    env.from_iter(["a b"])
        .flat_map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|w| !w.is_empty())
        .key_by(|w| w.clone())
        .count()
        .print();
    env.plan()
}

#[test]
fn a_keyed_aggregate_pre_aggregates_before_a_hash_exchange() {
    let plan = word_count_plan();
    insta::assert_snapshot!(plan.to_string());
    insta::assert_json_snapshot!(plan);
}

#[test]
fn windows_side_outputs_and_joins_show_their_edges() {
    let mut env = Env::new(Config::default().parallelism(2).name("events"));
    let events = env
        .from_iter([(1u32, 1_000i64, 5u64)])
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous());
    let mut windowed = events
        .key_by(|e| e.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(1)))
        .allowed_lateness(Duration::from_secs(2));
    windowed.late_records().discard();
    let (small, big) = windowed
        .sum(|e| e.2)
        .map(|w| {
            if w.value < 10 {
                Either::Left(w.value)
            } else {
                Either::Right(w.value)
            }
        })
        .split();
    small.discard();
    big.discard();
    let a = env.from_iter([(1u32, 10i64)]).key_by(|e| e.0);
    let b = env.from_iter([(1u32, 20i64)]).key_by(|e| e.0);
    a.interval_join_signed(b, -5, 5, |_, x, y| x.1 + y.1)
        .rebalance()
        .discard();
    let plan = env.plan();
    insta::assert_snapshot!(plan.to_string());
    insta::assert_json_snapshot!(plan);
}

#[test]
fn a_stream_without_a_sink_is_named_in_the_plan_and_rejected_by_execute() {
    let mut env = Env::new(Config::default().parallelism(1).name("dangling"));
    let _unused = env.from_iter([1, 2, 3]).map(|x| x + 1);
    let plan = env.plan();
    assert_eq!(plan.stages[0].terminal, None);
    assert!(plan
        .to_string()
        .contains("(no sink: the stream created at flow-core/tests/plan.rs:"));
    let err = env.execute().unwrap_err().to_string();
    assert!(err.contains("has no sink"), "{err}");
}

#[test]
fn names_and_uids_set_by_the_job_reach_the_plan_and_the_summary() {
    let mut env = Env::new(Config::default().parallelism(2).name("named"));
    let out = env
        .from_iter(["a b", "b"])
        .name("lines")
        .flat_map(|l| l.split(' ').map(str::to_string).collect::<Vec<_>>())
        .name("words")
        .key_by(|w| w.clone())
        .count()
        .uid("word-counts")
        .name("counts")
        .collect();
    let plan = env.plan();
    assert_eq!(plan.stages[0].head, "lines");
    assert_eq!(plan.stages[1].operators[0].uid, "word-counts");
    assert!(
        plan.to_string()
            .contains("-> counts (count, flow-core/tests/plan.rs:"),
        "{plan}"
    );
    let summary = env.execute().unwrap();
    assert!(
        summary.stages[0]
            .name
            .starts_with("lines -> words -> count (pre-aggregate)"),
        "{}",
        summary.stages[0].name
    );
    assert_eq!(
        summary.stages[1].name,
        "from stage 0 by key -> counts => collect"
    );
    assert_eq!(out.take().len(), 2);
}

#[test]
fn two_operators_with_one_uid_are_rejected() {
    let mut env = Env::new(Config::default().parallelism(1));
    env.from_iter([1]).map(|x| x + 1).uid("same").discard();
    env.from_iter([2]).map(|x| x * 2).uid("same").discard();
    let err = env.execute().unwrap_err().to_string();
    assert!(
        err.contains("the uid `same` names two operators, map (flow-core/tests/plan.rs:"),
        "{err}"
    );
}

#[test]
fn a_fan_out_ends_its_stage_in_one_forward_edge_per_consumer() {
    let mut env = Env::new(Config::default().parallelism(2).name("fanned"));
    let [all, evens] = env.from_iter(0..10u32).map(|x| x + 1).fan_out();
    all.discard();
    evens
        .filter(|x| x % 2 == 0)
        .key_by(|x| *x)
        .count()
        .discard();
    let plan = env.plan();
    assert_eq!(
        plan.stages[0].terminal.as_deref(),
        Some("exchange by fan-out to stages 1, 2")
    );
    insta::assert_snapshot!(plan.to_string());
}
