//! Word count, the flagship example (Flink's `WordCount`): lowercase, split on every character
//! outside `[A-Za-z0-9_]`, count each word.
//!
//! ```text
//! cargo run --release --example word_count                      # built-in ~100 MB corpus, top 10
//! cargo run --release --example word_count -- --input big.txt --output counts/ --parallelism 2
//! ```
use flow_core::prelude::*;
use flow_examples::{tokenize, ZipfWords};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of the word count job.
#[derive(Args, Debug)]
struct WordCountArgs {
    /// Text file to read. Without it, a deterministic Zipf-distributed corpus is generated into
    /// a temporary file first
    #[arg(long, value_name = "PATH")]
    input: Option<PathBuf>,
    /// Directory for CSV part files with rows `word,count`. Without it, the most frequent
    /// words are printed
    #[arg(long, value_name = "DIR")]
    output: Option<PathBuf>,
    /// Size of the generated corpus in MB (when no --input is given)
    #[arg(long, value_name = "MB", default_value_t = 100)]
    generate_mb: u64,
    /// How many of the most frequent words to print (when no --output is given)
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
}

/// Counts the words of a text file and writes `word,count` rows.
#[stream_job]
fn word_count(env: &mut Env, args: WordCountArgs) -> flow_core::Result<()> {
    let generated = match &args.input {
        Some(_) => None,
        None => Some(generate_corpus(args.generate_mb)?),
    };
    let input = match (&args.input, &generated) {
        (Some(p), _) => p.clone(),
        (None, Some(g)) => g.path().to_path_buf(),
        (None, None) => unreachable!("a corpus is generated when no input is given"),
    };
    let counts = env
        .read_lines(&input)?
        .flat_map(tokenize)
        .key_by(|word| word.clone())
        .count();
    let collected = match &args.output {
        Some(dir) => {
            counts.write_csv(dir)?;
            None
        }
        None => Some(counts.collect()),
    };
    let start = Instant::now();
    let summary = env.execute()?;
    if summary.planned_only {
        return Ok(());
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let mb = summary.bytes_read() as f64 / 1e6;
    match collected {
        Some(c) => {
            let mut counts = c.take();
            let words: u64 = counts.iter().map(|(_, n)| n).sum();
            counts.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            println!(
                "top {} of {} distinct words:",
                args.top.min(counts.len()),
                counts.len()
            );
            for (w, n) in counts.iter().take(args.top) {
                println!("{n:>12}  {w}");
            }
            println!(
                "{words} words in {} lines, {mb:.1} MB in {secs:.2} s: {:.1} MB/s, {:.1} M words/s",
                summary.records_read(),
                mb / secs,
                words as f64 / secs / 1e6
            );
        }
        None => println!(
            "{} distinct words from {} lines, {mb:.1} MB in {secs:.2} s ({:.1} MB/s)",
            summary.records_written(),
            summary.records_read(),
            mb / secs
        ),
    }
    Ok(())
}

/// Writes the built-in corpus (100,000 words, Zipf s = 1.07) to a temporary file.
fn generate_corpus(mb: u64) -> flow_core::Result<tempfile::NamedTempFile> {
    let file = tempfile::Builder::new()
        .prefix("flow-word-count-")
        .suffix(".txt")
        .tempfile()
        .map_err(|e| flow_core::Error::Io {
            path: std::env::temp_dir(),
            source: e,
        })?;
    let start = Instant::now();
    let bytes = ZipfWords::new(100_000, 1.07)
        .write_corpus(file.path(), mb * 1_000_000)
        .map_err(|e| flow_core::Error::Io {
            path: file.path().to_path_buf(),
            source: e,
        })?;
    eprintln!(
        "generated a {:.1} MB corpus in {:.2} s at {}",
        bytes as f64 / 1e6,
        start.elapsed().as_secs_f64(),
        file.path().display()
    );
    Ok(file)
}
