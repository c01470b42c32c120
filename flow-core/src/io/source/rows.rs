//! Files of records of any serde type: `read_csv_serde` and `read_json_lines`, read in
//! parallel chunks like [`Env::read_csv`] and [`Env::read_lines`].
use super::file::{CsvFraming, ParseFields, ParseLine};
use super::ReadOptions;
use crate::api::env::Env;
use crate::api::stream::Stream;
use crate::error::{Error, Result};
use crate::runtime::operator::Identity;
use serde::de::DeserializeOwned;
use std::path::Path;
use std::sync::Arc;

/// Reads the first record of a CSV file: its header. `None` for an empty file.
fn read_header(path: &Path) -> Result<Option<csv::StringRecord>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_path(path)
        .map_err(|e| csv_error(path, e))?;
    let mut record = csv::StringRecord::new();
    match rdr.read_record(&mut record) {
        Ok(true) => Ok(Some(record)),
        Ok(false) => Ok(None),
        Err(e) => Err(csv_error(path, e)),
    }
}

fn csv_error(path: &Path, e: csv::Error) -> Error {
    let line = e.position().map_or(1, |p| p.line());
    let message = format!("header: {e}");
    match e.into_kind() {
        csv::ErrorKind::Io(e) => Error::io(path, e),
        _ => Error::Parse {
            path: path.to_path_buf(),
            line,
            message,
        },
    }
}

/// Deserializes the fields of one record as a `T`, by name if there are `headers`.
fn deserialize<T: DeserializeOwned>(
    record: &mut csv::StringRecord,
    fields: &[&str],
    headers: Option<&csv::StringRecord>,
) -> std::result::Result<T, String> {
    record.clear();
    for f in fields {
        record.push_field(f);
    }
    record.deserialize(headers).map_err(|e| match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => match err.field() {
            // Numbered from 1 as `read_csv` does (csv's own message counts from 0).
            Some(i) => {
                let i = i as usize;
                let value = record.get(i).unwrap_or_default();
                match headers.and_then(|h| h.get(i)) {
                    Some(name) => format!("field {} `{name}` ({value:?}): {}", i + 1, err.kind()),
                    None => format!("field {} ({value:?}): {}", i + 1, err.kind()),
                }
            }
            None => err.kind().to_string(),
        },
        _ => e.to_string(),
    })
}

/// serde_json's message without its position (" at line 1 column 7"), which is within the
/// line: the column is kept, the file's line is added by the reader.
fn json_message(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let suffix = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&suffix) {
        Some(message) => format!("{message} (column {})", e.column()),
        None => text,
    }
}

impl Env {
    /// Reads a CSV file whose records deserialize as `T` (any [`DeserializeOwned`] type, such
    /// as a struct deriving `serde::Deserialize`), in parallel chunks, with the `csv` crate's
    /// conventions: an empty field is `None` for an `Option`, quoted fields may hold commas,
    /// doubled quotes and line breaks, blank lines are skipped.
    ///
    /// Without [`ReadOptions::header`], fields map to a struct's fields in declaration order.
    /// With it, the file's first record is its header and fields map by name (in any
    /// order; columns the struct does not name are ignored). The header is read once, when
    /// the job is built. A record that does not deserialize fails the job with an error
    /// naming the file, line and field, or is skipped and counted with
    /// [`ReadOptions::lenient`].
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// #[derive(serde::Deserialize, Debug, PartialEq)]
    /// struct Score {
    ///     name: String,
    ///     points: u32,
    ///     bonus: Option<u32>,
    /// }
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("scores.csv");
    /// std::fs::write(&path, "points,name,bonus\n3,\"ann, jr.\",\n5,bob,1\n")?;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let scores = env
    ///     .read_csv_serde::<Score>(&path, ReadOptions::default().with_header())?
    ///     .collect();
    /// env.execute()?;
    /// let mut got = scores.take();
    /// got.sort_by_key(|s| s.points);
    /// assert_eq!(got[0], Score { name: "ann, jr.".into(), points: 3, bonus: None });
    /// assert_eq!(got[1], Score { name: "bob".into(), points: 5, bonus: Some(1) });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn read_csv_serde<T: DeserializeOwned + Send + 'static>(
        &mut self,
        path: impl AsRef<Path>,
        options: ReadOptions,
    ) -> Result<Stream<Identity<T>>> {
        let path = path.as_ref();
        // A job that only prints its plan does not touch its inputs.
        let headers = match options.header && self.config().plan_only.is_none() {
            true => read_header(path)?.map(Arc::new),
            false => None,
        };
        self.read_parsed(path, "read_csv_serde", options, true, move || {
            let h = headers.clone();
            let mut record = csv::StringRecord::new();
            let lines: ParseLine<T> = Box::new(move |l: &str| {
                if l.is_empty() {
                    return Ok(None);
                }
                // The line path sees only lines without quotes: split at commas.
                let mut arr = [""; 32];
                let mut n = 0;
                for f in l.split(',') {
                    if n == arr.len() {
                        let fields: Vec<&str> = l.split(',').collect();
                        return deserialize(&mut record, &fields, h.as_deref()).map(Some);
                    }
                    arr[n] = f;
                    n += 1;
                }
                deserialize(&mut record, &arr[..n], h.as_deref()).map(Some)
            });
            let h = headers.clone();
            let mut record = csv::StringRecord::new();
            let fields: ParseFields<T> =
                Box::new(move |f: &[&str]| deserialize(&mut record, f, h.as_deref()));
            (lines, Some(CsvFraming::new(fields)))
        })
    }

    /// Reads a file of JSON lines, one value that deserializes as `T` per line (any
    /// [`DeserializeOwned`] type), in parallel chunks; blank lines are skipped. A line that
    /// is not valid JSON or not a `T` fails the job with an error naming the file and line,
    /// or is skipped and counted with [`ReadOptions::lenient`]. What
    /// [`Stream::write_json_lines`] writes reads back unchanged.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// #[derive(serde::Deserialize)]
    /// struct Click {
    ///     user: String,
    ///     page: String,
    /// }
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("clicks.jsonl");
    /// std::fs::write(&path, "{\"user\":\"ann\",\"page\":\"/\"}\nnot json\n{\"page\":\"/a\",\"user\":\"bob\"}\n")?;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let users = env
    ///     .read_json_lines::<Click>(&path, ReadOptions::lenient())?
    ///     .map(|c| format!("{} {}", c.user, c.page))
    ///     .collect();
    /// let summary = env.execute()?;
    /// let mut got = users.take();
    /// got.sort();
    /// assert_eq!(got, vec!["ann /", "bob /a"]);
    /// assert_eq!(summary.records_skipped(), 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn read_json_lines<T: DeserializeOwned + Send + 'static>(
        &mut self,
        path: impl AsRef<Path>,
        options: ReadOptions,
    ) -> Result<Stream<Identity<T>>> {
        self.read_parsed(path.as_ref(), "read_json_lines", options, false, || {
            let lines: ParseLine<T> = Box::new(|l: &str| {
                if l.trim_ascii().is_empty() {
                    return Ok(None);
                }
                serde_json::from_str(l)
                    .map(Some)
                    .map_err(|e| json_message(&e))
            });
            (lines, None)
        })
    }
}
