//! The Flink guide's first DataStream job: read words, keep those longer than 3 characters,
//! uppercase them and print them.
//!
//! ```text
//! cargo run --release --example long_words                  # built-in text
//! cargo run --release --example long_words -- --input some.txt
//! ```
use flow_core::prelude::*;
use flow_examples::tokenize;
use std::path::PathBuf;

const BUILT_IN: &[&str] = &[
    "Apache Flink is a framework and distributed processing engine",
    "for stateful computations over unbounded and bounded data streams.",
    "flow brings the same model to Rust: typed streams, keyed state and event time.",
];

/// Arguments of the long-words job.
#[derive(Args, Debug)]
struct LongWordsArgs {
    /// Text file to read (default: a few built-in lines)
    #[arg(long, value_name = "PATH")]
    input: Option<PathBuf>,
    /// Keep words with more than this many characters
    #[arg(long, value_name = "N", default_value_t = 3)]
    min_len: usize,
}

/// Prints the words longer than --min-len characters, uppercased.
#[stream_job]
fn long_words(env: &mut Env, args: LongWordsArgs) -> flow_core::Result<()> {
    match &args.input {
        Some(path) => long_words_of(env.read_lines(path)?, args.min_len),
        None => long_words_of(
            env.from_iter(BUILT_IN.iter().map(|s| s.to_string())),
            args.min_len,
        ),
    }
    Ok(())
}

/// The pipeline, generic over where its lines come from: streams of different sources have
/// different types, so a function over `Stream<impl Chain<Out = String>>` serves both.
fn long_words_of(lines: Stream<impl Chain<Out = String>>, min_len: usize) {
    lines
        .flat_map(tokenize)
        .filter(move |w| w.len() > min_len)
        .map(|w| w.to_uppercase())
        .print();
}
