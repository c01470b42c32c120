//! # The Nexmark benchmark on flow
//!
//! A seeded, reproducible Nexmark generator as a flow source, the benchmark's queries as
//! typed flow jobs, and the `nexmark` job binary that runs and times them.
//!
//! ```
//! use flow_core::prelude::*;
//! use flow_nexmark::{queries, GeneratorConfig, Output, Query};
//!
//! let mut env = Env::new(Config::default().parallelism(2));
//! let events = flow_nexmark::events(&mut env, GeneratorConfig::default(), Some(10_000));
//! let rows = queries::build(Query::Q2, events, &Output::Collect)?.expect("collected rows");
//! env.execute()?;
//! // q2: bids on auctions whose id is a multiple of 123, as `auction,price` CSV rows
//! for row in rows.take() {
//!     let auction: u64 = row.split(',').next().unwrap().parse().unwrap();
//!     assert_eq!(auction % 123, 0);
//! }
//! # Ok::<(), flow_core::Error>(())
//! ```
//!
//! ## The generator
//! Flink's rules (`nexmark-flink`'s `generator` package): 1 person, 3 auctions and 46 bids in
//! every 50 events, hot sellers, bidders and auctions, log-uniform prices, hot and cold
//! channels with cached urls, `extra` padding to average sizes, event times spaced by
//! `--rate`. Two departures, both for reproducibility: every event's random numbers are
//! seeded from `(seed, event id)` (as Beam's and the original generator were), and event
//! times follow the global event number, so the events do not depend on the parallelism;
//! and the base time is fixed (2026-01-01 00:00 UTC unless set) instead of the wall clock.
//! Flink's bidder ids are offset by 2000 (its `BidGenerator` adds the first person id
//! twice); this generator does the same, so figures compare.
//!
//! ## Queries
//! [`queries`] holds q0–q22 — q10 writes Hive-style partition directories with `--output`
//! — and q6, which Flink cannot run; each query's doc gives its SQL and how the flow job computes it. Every query
//! but q12 (processing time) is checked against DuckDB running its SQL (`nexmark/sql/`).
#![warn(missing_docs)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod generator;
pub mod json;
pub mod model;
pub mod queries;
pub mod time;

pub use generator::{Generator, GeneratorConfig};
pub use model::{Auction, Bid, Event, Millis, Person, Str};
pub use queries::{Output, Query};

use flow_core::prelude::*;
use std::time::Duration;

/// How far event time may run ahead of the watermark: Flink's Nexmark source declares
/// `WATERMARK FOR dateTime AS dateTime - INTERVAL '4' SECOND`.
pub const WATERMARK_DELAY: Duration = Duration::from_secs(4);

/// A parallel Nexmark source: events `0..limit` (unbounded without a limit), stamped with
/// their event times and watermarks 4 s behind.
#[track_caller]
pub fn events(
    env: &mut Env,
    config: GeneratorConfig,
    limit: Option<u64>,
) -> Stream<impl Chain<Out = Event>> {
    let g = Generator::new(config);
    let source = match limit {
        Some(n) => env.generate_n(n, move |i| g.event(i)),
        None => env.generate(move |i| g.event(i)),
    };
    source.name("nexmark").assign_timestamps(
        Event::date_time,
        WatermarkStrategy::bounded_out_of_orderness(WATERMARK_DELAY),
    )
}
