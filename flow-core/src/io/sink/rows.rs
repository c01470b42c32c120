//! Sinks for records of any type: CSV through serde (`write_csv_serde`), JSON lines
//! (`write_json_lines`) and `print_debug`.
use super::part_files::{Formatted, TextSink};
use crate::api::stream::Stream;
use crate::error::Result;
use crate::graph::Ending;
use crate::runtime::operator::Chain;
use serde::Serialize;
use std::path::Path;

/// Options of the serde CSV sink ([`Stream::write_csv_serde`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Start each part file with a header row: the field names of the record type (a struct;
    /// other types have no names and get no header). Off by default.
    pub header: bool,
}

impl WriteOptions {
    /// Write a header row at the top of each part file.
    pub fn with_header(mut self) -> Self {
        self.header = true;
        self
    }
}

/// How many bytes the CSV writer of one part file holds before it starts on a new buffer.
const RECYCLE: usize = 1 << 16;

/// Formats records as CSV rows with the `csv` crate's serializer. One per part file, so that
/// the header (written by `csv` before the first record) is at the top of each.
struct CsvSerde {
    header: bool,
    /// Whether a record was written (and with it the header, if any).
    started: bool,
    writer: Option<csv::Writer<Vec<u8>>>,
    /// How many bytes of the writer's buffer were handed on already.
    seen: usize,
}

impl Clone for CsvSerde {
    /// A fresh formatter, for another part file.
    fn clone(&self) -> Self {
        CsvSerde::new(self.header)
    }
}

impl CsvSerde {
    fn new(header: bool) -> Self {
        CsvSerde {
            header,
            started: false,
            writer: None,
            seen: 0,
        }
    }

    fn format<T: Serialize>(&mut self, x: &T, out: &mut Vec<u8>) -> Formatted {
        let header = self.header && !self.started;
        let w = self.writer.get_or_insert_with(|| {
            csv::WriterBuilder::new()
                .has_headers(header)
                .from_writer(Vec::with_capacity(RECYCLE))
        });
        w.serialize(x).map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())?;
        self.started = true;
        let all = w.get_ref();
        let new = &all[self.seen..];
        // The sink ends each record with a line break of its own.
        out.extend_from_slice(new.strip_suffix(b"\n").unwrap_or(new));
        self.seen = all.len();
        if self.seen >= RECYCLE {
            // `csv::Writer` cannot clear its output: start a new one (without a header).
            self.writer = None;
            self.seen = 0;
        }
        Ok(())
    }
}

impl<C: Chain> Stream<C> {
    /// Writes the records, of any [`Serialize`] type, as CSV rows to part files
    /// `part-NNNNN.csv` in `dir`, with the `csv` crate's conventions: a struct's fields in
    /// declaration order, nested tuples flattened, `None` as an empty field, fields quoted when
    /// needed. With [`WriteOptions::header`] each part file starts with a row of the struct's
    /// field names (a part file without records is empty). Part files are written as by
    /// [`Stream::write_csv`], which remains the faster choice for tuples. A record that
    /// `csv` cannot write (say, one with a nested struct or a map) fails the job.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// #[derive(serde::Serialize)]
    /// struct Score {
    ///     name: String,
    ///     points: u32,
    /// }
    /// let dir = tempfile::tempdir()?;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// env.from_iter([Score { name: "ann, jr.".into(), points: 3 }])
    ///     .write_csv_serde(dir.path(), WriteOptions::default().with_header())?;
    /// env.execute()?;
    /// let text = std::fs::read_to_string(dir.path().join("part-00000.csv"))?;
    /// assert_eq!(text, "name,points\n\"ann, jr.\",3\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_csv_serde(self, dir: impl AsRef<Path>, options: WriteOptions) -> Result<()>
    where
        C::Out: Serialize,
    {
        let mut f = CsvSerde::new(options.header);
        self.write_text(
            dir.as_ref(),
            "csv",
            "write_csv_serde",
            move |x: &C::Out, b: &mut Vec<u8>| f.format(x, b),
        )
    }

    /// Writes the records as [`Stream::write_csv_serde`] does, into the bucket directories of
    /// `dir` that `bucket` names from each record (see [`Stream::write_csv_bucketed`]).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// use flow_core::io::sink::read_part_files_by_bucket;
    /// let dir = tempfile::tempdir()?;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// env.from_iter([("a", 1), ("b", 2)])
    ///     .write_csv_serde_bucketed(dir.path(), WriteOptions::default(), |(k, _), b| {
    ///         b.push_str("key=");
    ///         b.push_str(k);
    ///     })?;
    /// env.execute()?;
    /// let rows = read_part_files_by_bucket(dir.path())?;
    /// assert_eq!(rows, [("key=a".to_string(), "a,1".to_string()), ("key=b".into(), "b,2".into())]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_csv_serde_bucketed<B>(
        self,
        dir: impl AsRef<Path>,
        options: WriteOptions,
        bucket: B,
    ) -> Result<()>
    where
        C::Out: Serialize,
        B: FnMut(&C::Out, &mut String) + Clone + Send + 'static,
    {
        let mut f = CsvSerde::new(options.header);
        self.write_bucketed(
            dir.as_ref(),
            "csv",
            "write_csv_serde_bucketed",
            move |x: &C::Out, b: &mut Vec<u8>| f.format(x, b),
            bucket,
        )
    }

    /// Writes each record, of any [`Serialize`] type, as one line of JSON to part files
    /// `part-NNNNN.jsonl` in `dir` (written as by [`Stream::write_csv`]); read them back
    /// with [`Env::read_json_lines`](crate::Env::read_json_lines). A record that
    /// `serde_json` cannot write (a map with keys that are not strings) fails the job.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// use flow_core::io::sink::read_part_files;
    /// #[derive(serde::Serialize)]
    /// struct Score {
    ///     name: String,
    ///     points: u32,
    /// }
    /// let dir = tempfile::tempdir()?;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// env.from_iter([Score { name: "ann".into(), points: 3 }, Score { name: "bob".into(), points: 5 }])
    ///     .write_json_lines(dir.path())?;
    /// env.execute()?;
    /// assert_eq!(
    ///     read_part_files(dir.path())?,
    ///     vec![r#"{"name":"ann","points":3}"#, r#"{"name":"bob","points":5}"#]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_json_lines(self, dir: impl AsRef<Path>) -> Result<()>
    where
        C::Out: Serialize,
    {
        self.write_text(
            dir.as_ref(),
            "jsonl",
            "write_json_lines",
            |x: &C::Out, b: &mut Vec<u8>| serde_json::to_writer(b, x).map_err(|e| e.to_string()),
        )
    }

    /// Prints each record's `Debug` form as a line on standard output (for records that are
    /// not CSV rows; see [`Stream::print`]).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// #[derive(Debug)]
    /// struct Score {
    ///     name: &'static str,
    ///     points: u32,
    /// }
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// // prints `Score { name: "ann", points: 3 }`
    /// env.from_iter([Score { name: "ann", points: 3 }])
    ///     .filter(|s| s.points > 0 && !s.name.is_empty())
    ///     .print_debug();
    /// let summary = env.execute()?;
    /// assert_eq!(summary.records_written(), 1);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn print_debug(self)
    where
        C::Out: std::fmt::Debug,
    {
        self.finish(Ending::Sink("print_debug".into()), |_, m| {
            TextSink::stdout(
                |x: &C::Out, b: &mut Vec<u8>| {
                    use std::io::Write;
                    let _ = write!(b, "{x:?}");
                    Ok(())
                },
                m.clone(),
            )
        })
    }
}
