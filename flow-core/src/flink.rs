//! # Coming from Flink
//!
//! flow follows Flink's DataStream model; most concepts carry over under the same or a
//! similar name. The table maps Flink's API to flow's; what flow lacks, and why, follows.
//!
//! | Flink | flow |
//! |---|---|
//! | `StreamExecutionEnvironment` | [`Env`](crate::Env), configured by [`Config`](crate::Config) (`parallelism`, `max_parallelism`, `batch_size`, ...) |
//! | `env.execute()` | [`Env::execute`](crate::Env::execute), returning a [`JobSummary`](crate::JobSummary) |
//! | a job's `main` with `ParameterTool` | a function marked `#[stream_job]` with a clap `Args` struct: `--parallelism`, `--plan`, ... |
//! | `DataStream<T>` | [`Stream<C>`](crate::Stream), whose chain type `C` produces `T`; operators up to the next exchange are fused |
//! | one `DataStream` used as the input of several operators | [`Stream::fan_out`](crate::Stream::fan_out): `let [a, b] = stream.fan_out();`, a stream per consumer, each getting every record (a clone) |
//! | `map`, `filter`, `flatMap` | `map`, `filter`, `flat_map`, plus `filter_map` and `inspect` |
//! | `ProcessFunction` | [`Stream::process`](crate::Stream::process) with a closure and a [`ProcessContext`](crate::ops::process::non_keyed::ProcessContext) |
//! | `keyBy` / `KeyedStream` | [`Stream::key_by`](crate::Stream::key_by) / [`KeyedStream`](crate::KeyedStream) |
//! | `sum`, `min`, `max`, `minBy`, `maxBy`, `reduce`, `aggregate` | the same names on `KeyedStream` (rolling); `fold` for non-associative folds; associative ones pre-aggregate before the exchange |
//! | `KeyedProcessFunction`, `ValueState`, `ListState`, `MapState` | [`KeyedProcessFunction`](crate::ops::process::keyed::KeyedProcessFunction) with a `State` type, a plain function marked `#[process_fn]` whose `&mut ValueState<_>` / `ListState` / `MapState` parameters are the state, or closures ([`KeyedStream::process_fn`](crate::KeyedStream::process_fn)) |
//! | `getMetricGroup().counter/gauge/histogram` | [`Env::counter`](crate::Env::counter), `gauge`, `histogram`, reported in the job summary |
//! | `TimerService.registerEventTimeTimer` / `ProcessingTime` | [`Context::register_event_time_timer`](crate::ops::process::keyed::Context::register_event_time_timer) / `register_processing_time_timer` |
//! | `WatermarkStrategy.forBoundedOutOfOrderness`, `forMonotonousTimestamps`, `withIdleness` | [`WatermarkStrategy`](crate::time::WatermarkStrategy)`::bounded_out_of_orderness`, `monotonous`, `with_idleness`, used by `assign_timestamps` |
//! | `TumblingEventTimeWindows`, `SlidingEventTimeWindows`, `EventTimeSessionWindows`, `countWindow` | the same names, and `CountWindows`; processing-time tumbling and sliding windows |
//! | `GlobalWindows` + `Trigger` | [`KeyedStream::global_window`](crate::KeyedStream::global_window) with a [`Trigger`](crate::ops::window::Trigger) |
//! | `windowAll` | [`Stream::window_all`](crate::Stream::window_all) (one subtask, as in Flink) |
//! | `allowedLateness`, `sideOutputLateData` | `allowed_lateness`, `late_records()` |
//! | `ProcessWindowFunction`, `aggregate(agg, pwf)` | window `process`, `aggregate_process` |
//! | `connect` + `KeyedCoProcessFunction` | [`KeyedStream::connect`](crate::KeyedStream::connect) + [`KeyedCoProcessFunction`](crate::ops::join::connect::KeyedCoProcessFunction) |
//! | non-keyed `connect` + `CoMapFunction` / `CoFlatMapFunction` | [`Stream::connect`](crate::Stream::connect) + [`CoStreams::map`](crate::ops::join::co::CoStreams::map) / `flat_map` |
//! | broadcast state: `connect(broadcastStream)` + `KeyedBroadcastProcessFunction` | [`KeyedStream::connect_broadcast`](crate::KeyedStream::connect_broadcast) + [`KeyedBroadcastProcessFunction`](crate::ops::join::broadcast::KeyedBroadcastProcessFunction) (no timers yet); on non-keyed streams [`Stream::connect_broadcast`](crate::Stream::connect_broadcast) + [`BroadcastProcessFunction`](crate::ops::join::broadcast::BroadcastProcessFunction) |
//! | `intervalJoin`, window `join` | `interval_join` (and `interval_join_signed`), `window_join` |
//! | `OutputTag` side outputs | [`OutputTag`](crate::ops::side_output::OutputTag) with `ctx.output(&tag, x)` in process functions (and window `process_with_context`), [`Stream::side_output`](crate::Stream::side_output); also `Either` + `split()`, and windows' `late_records()` |
//! | `AsyncDataStream.orderedWait` / `unorderedWait` | [`Stream::map_async`](crate::Stream::map_async) with `AsyncOptions::ordered` / `unordered` (capacity, timeout) |
//! | window `trigger(..)`, `evictor(..)`, `CountTrigger`, `ContinuousEventTimeTrigger`, `PurgingTrigger`, `CountEvictor`, `TimeEvictor` | the same names on tumbling and sliding windows; `process_with_state` for window and global state |
//! | `setParallelism(n)` | [`KeyedStream::parallelism`](crate::KeyedStream::parallelism) for a keyed operator, [`Stream::parallelism`](crate::Stream::parallelism) for what follows (a new stage) |
//! | POJO / case-class rows, JSON | serde structs: `write_csv_serde` / `read_csv_serde` (optional header), `write_json_lines` / `read_json_lines`, `print_debug` |
//! | `union`, `rebalance`, `shuffle`, `rescale`, `forward`, `global`, `broadcast`, `partitionCustom` | the same names (`partition_custom`) |
//! | `.name()`, `.uid()` | [`Stream::name`](crate::Stream::name), [`Stream::uid`](crate::Stream::uid) |
//! | `env.fromCollection`, `fromSequence`, `socketTextStream`, `readTextFile` | `from_iter` / `from_vec`, `generate_n` / `generate`, `socket_lines`, `read_lines`; `read_csv` for CSV |
//! | `print`, `FileSink` (row format) | `print`, `write_csv` / `write_lines` (part files made visible once complete) |
//! | web UI at :8081, `explain()` | the per-stage summary at the end of a job, `--plan` / [`Env::plan`](crate::Env::plan) (text or JSON) |
//! | `maxParallelism` and key groups | `--max-parallelism` / `Config::max_parallelism`; keys map to key groups as in Flink |
//! | `enableCheckpointing(interval)`, `state.checkpoints.dir`, `state.checkpoints.num-retained` | `--checkpoint-interval`, `--checkpoint-dir`, `--checkpoints-retained` ([`Config::checkpoint_dir`](crate::Config::checkpoint_dir), ...); always exactly-once (aligned barriers) and incremental |
//! | `flink run -s <savepoint>`, `flink stop --savepointPath` | `--restore` (latest checkpoint), `--restore ID`, `--restore PATH`; `--savepoint-dir` writes one when the job ends or is stopped with Ctrl-C |
//! | `TwoPhaseCommitSinkFunction` / `FileSink` exactly-once | `write_csv` / `write_lines` / serde sinks with a checkpoint directory: part files published when their checkpoint is durable |
//! | `TypeSerializer`s of state | serde (`Serialize` + `Deserialize`) on keys and state; the types are recorded and checked on restore |
//!
//! ## Differences in behaviour
//! * **Watermarks come from the data**, after each batch of a source split, not from a
//!   wall-clock timer (`autoWatermarkInterval`): what a job computes does not depend on how
//!   fast the machine runs. A source split advances its watermark after each batch and at least every
//!   `watermark_interval` records (`--watermark-interval`, default 4096).
//! * **Bounded jobs run in "batch" style for rolling aggregates**: a keyed `sum` over a file
//!   emits each key's final result once at the end instead of every update.
//! * **Stages, not operator chains**, are the unit of parallelism: everything between two
//!   exchanges is one monomorphised function; `union` and `rebalance` are exchanges.
//! * **A stream has one consumer**: an operator takes its stream by value. To feed several,
//!   say how many with `fan_out` (fixed when it is called); each consumer is a stage of its
//!   own, and the slowest one sets the pace for all.
//!
//! ## Not there yet, and why
//! * **Checkpoints of every operator.** Rolling aggregates, time, session, count and global
//!   windows, interval and window joins, broadcast state, keyed process and co-process
//!   functions checkpoint their state; triggers and evictors on time windows and sliding
//!   count windows of records without serde's traits do not yet, and a job with a checkpoint
//!   directory that uses them is refused at start rather than restored wrongly. State larger than memory, state TTL and
//!   unaligned checkpoints are not there yet either.
//! * **Triggers and evictors on session and count windows, timers in broadcast process
//!   functions, a REST API and web dashboard, Kafka, SQL**: planned; see the open issues.
//! * **A cluster.** flow runs a job in one process; scaling out is planned on Kafka
//!   partitions with instances of the same binary, not with a cluster manager.
