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
//! On keyed streams: windows ([`window`], [`windowed`], [`global`]) with allowed lateness and a
//! late side output, keyed process functions with state and timers ([`process`], [`state`],
//! `#[process_fn]`), side outputs ([`split`]), and two-input operators ([`join`]): `connect`,
//! interval and window joins. Processing time is available for windows and timers.
#![warn(missing_docs)]

pub mod chain;
pub mod cli;
pub mod csv;
pub mod env;
pub mod error;
pub mod global;
pub mod join;
pub mod keyed;
pub mod process;
pub mod record;
pub mod runtime;
pub mod sink;
pub mod source;
pub mod split;
pub mod state;
pub mod stream;
pub mod text;
pub mod time;
pub mod window;
pub mod windowed;

pub use env::{Config, Env, JobSummary, ReadOptions, StageSummary, StopHandle};
pub use error::{Error, Result};
pub use flow_macros::{process_fn, stream_job};
pub use keyed::Aggregate;
pub use sink::Collected;
pub use source::OnBadRecord;
pub use stream::{KeyedStream, Stream};

/// Re-exported so that job argument structs can `#[derive(Args)]` without depending on clap.
pub use clap;
/// Re-exported for tokenizers that produce small inline strings.
pub use compact_str;

/// Everything a job needs: `use flow_core::prelude::*;`.
pub mod prelude {
    pub use crate::chain::Chain;
    pub use crate::csv::{CsvField, CsvRow, FromCsv};
    pub use crate::env::{Config, Env, JobSummary, ReadOptions};
    pub use crate::global::{GlobalWindowedStream, Trigger, TriggerResult};
    pub use crate::join::{ConnectedStreams, Either, KeyedCoProcessFunction};
    pub use crate::keyed::Aggregate;
    pub use crate::process::{Context, KeyedProcessFunction};
    pub use crate::split::ProcessContext;
    pub use crate::state::{KeyedStateNames, ListState, MapState, ValueState};
    pub use crate::stream::{KeyedStream, Stream};
    pub use crate::text::Word;
    pub use crate::time::WatermarkStrategy;
    pub use crate::window::{
        CountWindows, EventTimeSessionWindows, SlidingEventTimeWindows,
        SlidingProcessingTimeWindows, TumblingEventTimeWindows, TumblingProcessingTimeWindows,
        Window, WindowInfo, Windowed,
    };
    pub use crate::windowed::WindowedStream;
    pub use crate::{clap, process_fn, stream_job};
    pub use clap::Args;
    pub use compact_str::CompactString;
}

#[doc(hidden)]
pub mod __private {
    pub use crate::cli::{job_main, JobInfo};
    pub use crate::process::{Context, KeyedProcessFunction};
    pub use crate::record::Timestamp;
    pub use crate::state::{KeyedStateNames, ListState, MapState, ValueState};
}
