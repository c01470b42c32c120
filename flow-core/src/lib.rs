//! # flow: stream and batch processing for Rust
//!
//! flow follows Apache Flink's model — typed data streams, keyed state, exchanges by key
//! group, watermarks travelling with the data — and compiles each chain of operators between
//! two exchanges into one monomorphised function over batches of records, run by subtasks on
//! a work-stealing thread pool.
//!
//! ```
//! use flow_core::prelude::*;
//!
//! let mut env = Env::new(Config::default().parallelism(2));
//! let counts = env
//!     .from_iter(["to be or not", "to be"])
//!     .flat_map(|line| line.split(' ').map(str::to_string).collect::<Vec<_>>())
//!     .key_by(|word| word.clone())
//!     .count()
//!     .collect();
//! env.execute()?;
//!
//! let mut counts = counts.take();
//! counts.sort();
//! assert_eq!(counts, [("be".into(), 2), ("not".into(), 1), ("or".into(), 1), ("to".into(), 2)]);
//! # Ok::<(), flow_core::Error>(())
//! ```
//!
//! A job binary is an ordinary function marked `#[stream_job]`; the macro adds a `main` with
//! a command line built from the job's argument struct plus the common flags
//! (`--parallelism`, `--plan`, ...):
//!
//! ```no_run
//! use flow_core::prelude::*;
//! use std::path::PathBuf;
//!
//! #[derive(Args, Debug)]
//! struct WordCountArgs {
//!     /// Text file to read
//!     #[arg(long)]
//!     input: PathBuf,
//!     /// Directory for the CSV part files
//!     #[arg(long)]
//!     output: PathBuf,
//! }
//!
//! /// Counts the words of a text file.
//! #[stream_job]
//! fn word_count(env: &mut Env, args: WordCountArgs) -> flow_core::Result<()> {
//!     env.read_lines(&args.input)?
//!         .flat_map(|line| line.split(' ').map(str::to_lowercase).collect::<Vec<_>>())
//!         .key_by(|word| word.clone())
//!         .count()
//!         .write_csv(&args.output)?;
//!     Ok(())
//! }
//! # let _ = word_count; // rustdoc nests the example in a `main` of its own: use the job
//! ```
//!
//! ## How a job runs
//! * **Sources** are split: a file into chunks that the parallel readers take in file order,
//!   a generator into index ranges.
//! * **Fused chains**: `map`, `filter`, `flat_map`, `filter_map`, `inspect` and the
//!   pre-aggregation of a following keyed aggregate run inside one function per batch.
//! * **Exchanges** route each key to a key group (`hash % max_parallelism`) and each key group
//!   to the subtask that owns it, in batches over bounded channels; a full channel is
//!   backpressure.
//! * **Subtasks** are tasks on a rayon pool of `parallelism` threads; they run a budget of
//!   batches and yield, and sleep (no CPU) when they have nothing to do.
//!
//! ## Event time
//! [`Stream::assign_timestamps`] with a [`time::WatermarkStrategy`] stamps records and derives
//! watermarks per source split, after every batch; they flow through exchanges with the data.
//! On keyed streams: windows ([`ops::window`]) with allowed lateness and a late side output,
//! keyed process functions with state and timers ([`ops::process`], `#[process_fn]`), side
//! outputs ([`ops::split`]), and two-input operators ([`ops::join`]): `connect`, interval and
//! window joins. Processing time is available for windows and timers.
//!
//! ## Where things live
//! The modules follow a record's way through a job, each layer importing only those below it:
//! * [`record`], [`time`], [`text`], [`config`], [`error`]: the data model and settings.
//! * [`runtime`]: how a job runs — the [`runtime::operator::Operator`] abstraction and fused
//!   chains, subtasks on the pool, exchanges, watermark combination, timers, metrics.
//! * [`graph`]: the job graph under construction and its typed [`graph::plan::Plan`].
//! * [`api`]: [`Env`], [`Stream`], [`KeyedStream`] and the exchange builder.
//! * [`ops`]: the operators, each with the methods it adds to the stream types.
//! * [`io`]: sources, sinks and the CSV row format.
//! * `cli` (feature `cli`, on by default): the command line of `#[stream_job]` binaries.
//! * `web` (feature `web`, on by default): the dashboard, REST API and Prometheus endpoint a
//!   job binary serves (`--web-port`), reading jobs through [`api::monitor`].
//!
//! Coming from Apache Flink? [`flink`] maps its API to flow's.
#![warn(missing_docs)]
#![doc(test(attr(deny(warnings))))]
#![deny(clippy::undocumented_unsafe_blocks)]
#![warn(unreachable_pub)]

// Lets the crate's own unit tests use the macros, whose code names `::flow_core`.
#[cfg(test)]
extern crate self as flow_core;

pub mod api;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod error;
pub mod flink;
pub mod graph;
pub mod io;
pub mod ops;
pub mod record;
pub mod runtime;
pub mod text;
pub mod time;
#[cfg(feature = "web")]
pub mod web;

pub use api::env::{Env, StopHandle};
pub use api::stream::{KeyedStream, Stream};
pub use api::summary::{JobSummary, StageSummary};
pub use config::{CheckpointMode, Config, Restore};
pub use error::{Error, Result};
pub use flow_macros::{process_fn, stream_job};
pub use io::sink::Collected;
pub use io::source::{OnBadRecord, ReadOptions};
pub use ops::aggregate::Aggregate;

/// Re-exported so that job argument structs can `#[derive(Args)]` without depending on clap.
#[cfg(feature = "cli")]
pub use clap;
/// Re-exported for tokenizers that produce small inline strings.
pub use compact_str;

/// Everything a job needs: `use flow_core::prelude::*;`.
pub mod prelude {
    pub use crate::api::metrics::{Counter, Gauge, Histogram, MetricValue};
    pub use crate::graph::plan::{Partitioning, Plan};
    pub use crate::io::csv::{CsvField, CsvRow, FromCsv};
    pub use crate::io::sink::WriteOptions;
    pub use crate::ops::aggregate::Aggregate;
    pub use crate::ops::async_io::AsyncOptions;
    pub use crate::ops::join::broadcast::{
        BroadcastProcessFunction, KeyedBroadcastProcessFunction,
    };
    pub use crate::ops::join::connect::{ConnectedStreams, KeyedCoProcessFunction};
    pub use crate::ops::process::keyed::{Context, KeyedProcessFunction};
    pub use crate::ops::process::non_keyed::ProcessContext;
    pub use crate::ops::process::state::{KeyedStateNames, ListState, MapState, ValueState};
    pub use crate::ops::side_output::OutputTag;
    pub use crate::ops::split::Either;
    pub use crate::ops::window::{
        ContinuousEventTimeTrigger, CountEvictor, CountTrigger, CountWindows,
        EventTimeSessionWindows, EventTimeTrigger, GlobalWindowedStream, PurgingTrigger,
        SlidingEventTimeWindows, SlidingProcessingTimeWindows, StatefulWindowContext, TimeEvictor,
        Trigger, TriggerContext, TriggerResult, TumblingEventTimeWindows,
        TumblingProcessingTimeWindows, Window, WindowContext, WindowInfo, WindowTrigger, Windowed,
        WindowedStream,
    };
    pub use crate::ops::{StateKey, StateValue};
    pub use crate::runtime::operator::Chain;
    pub use crate::text::Word;
    pub use crate::time::WatermarkStrategy;
    pub use crate::{process_fn, stream_job};
    pub use crate::{
        CheckpointMode, Config, Env, JobSummary, KeyedStream, ReadOptions, Restore, Stream,
    };
    #[cfg(feature = "cli")]
    pub use clap::{self, Args};
    pub use compact_str::CompactString;
    pub use serde::{Deserialize, Serialize};
}

/// Paths named by the code that flow's macros generate. Not an API.
#[doc(hidden)]
pub mod __private {
    #[cfg(feature = "cli")]
    pub use crate::cli::{job_main, JobInfo};
    pub use crate::ops::process::keyed::{Context, KeyedProcessFunction};
    pub use crate::ops::process::state::{KeyedStateNames, ListState, MapState, ValueState};
    pub use crate::record::Timestamp;
    pub use serde;
}

/// Keyed state with change tracking, as stateful operators keep it.
pub mod state {
    pub use crate::runtime::keyed_table::{
        Change, Fold, FoldWith, KeyedTable, OwnedTimedChange, TimedChange,
    };
    pub use crate::runtime::snapshot::{StateKey, StateValue};
}

/// The lock-free protocols of the runtime, for the loom models in `tests/loom.rs`. Only in a
/// build with `RUSTFLAGS="--cfg loom"` (see `runtime::sync`). Not an API.
#[cfg(loom)]
#[doc(hidden)]
pub mod __loom {
    pub use crate::runtime::exchange::waiters::Waiters;
    pub use crate::runtime::task_state::TaskState;
}
