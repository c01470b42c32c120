//! Text sinks: `print`, and part files (`write_csv`, `write_lines`; the serde formats of
//! [`super::rows`] too) made visible only once
//! complete: written as `.part-NNNNN.EXT.inprogress`, fsynced, renamed, directory fsynced.
use crate::api::stream::Stream;
use crate::error::{Error, Result};
use crate::graph::Ending;
use crate::io::csv::CsvRow;
use crate::record::{Event, Timestamp};
use crate::runtime::metrics::StageMetrics;
use crate::runtime::operator::{Chain, Downstream};
use crate::runtime::stage::Terminal;
use crate::runtime::task::TaskCx;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Where a text sink's bytes go.
pub(crate) enum TextTarget {
    /// Standard output, written in whole lines.
    Stdout,
    /// A part file in a directory: written under a name starting with `.` and renamed to
    /// `part-NNNNN.EXT` once complete, so readers never see a partial file.
    Part {
        dir: PathBuf,
        tmp: PathBuf,
        done: PathBuf,
        file: Option<File>,
    },
}

/// Formats each record as one line of text and writes the lines out in large blocks.
pub(crate) struct TextSink<F> {
    pub(crate) format: F,
    pub(crate) buf: Vec<u8>,
    pub(crate) target: TextTarget,
    pub(crate) error: Option<Error>,
    pub(crate) count: u64,
    pub(crate) metrics: Arc<StageMetrics>,
}

const TEXT_BLOCK: usize = 1 << 16;

impl<F> TextSink<F> {
    pub(crate) fn part(
        dir: &Path,
        subtask: usize,
        ext: &str,
        format: F,
        metrics: Arc<StageMetrics>,
    ) -> Self {
        let name = format!("part-{subtask:05}.{ext}");
        TextSink {
            format,
            buf: Vec::new(),
            target: TextTarget::Part {
                dir: dir.to_path_buf(),
                tmp: dir.join(format!(".{name}.inprogress")),
                done: dir.join(name),
                file: None,
            },
            error: None,
            count: 0,
            metrics,
        }
    }

    pub(crate) fn stdout(format: F, metrics: Arc<StageMetrics>) -> Self {
        TextSink {
            format,
            buf: Vec::new(),
            target: TextTarget::Stdout,
            error: None,
            count: 0,
            metrics,
        }
    }

    fn write_out(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        match &mut self.target {
            TextTarget::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(&self.buf)
                    .and_then(|_| out.flush())
                    .map_err(|e| Error::io("<stdout>", e))?;
            }
            TextTarget::Part { tmp, file, .. } => {
                if file.is_none() {
                    *file = Some(File::create(&*tmp).map_err(|e| Error::io(&*tmp, e))?);
                }
                if let Some(f) = file.as_mut() {
                    f.write_all(&self.buf).map_err(|e| Error::io(&*tmp, e))?;
                }
            }
        }
        self.buf.clear();
        Ok(())
    }

    /// Makes the part file durable and visible: write, fsync, rename, fsync the directory.
    fn commit(&mut self) -> Result<()> {
        self.write_out()?;
        if let TextTarget::Part {
            dir,
            tmp,
            done,
            file,
        } = &mut self.target
        {
            let f = match file.take() {
                Some(f) => f,
                None => File::create(&*tmp).map_err(|e| Error::io(&*tmp, e))?,
            };
            f.sync_all().map_err(|e| Error::io(&*tmp, e))?;
            drop(f);
            std::fs::rename(&*tmp, &*done).map_err(|e| Error::io(&*done, e))?;
            sync_dir(dir)?;
        }
        Ok(())
    }

    fn record_error(&mut self, r: Result<()>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }
}

/// Makes a directory's entries (a rename) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// What formatting one record gives: `Err` says why the record cannot be written.
pub(crate) type Formatted = std::result::Result<(), String>;

impl<T, F: FnMut(&T, &mut Vec<u8>) -> Formatted> Downstream<T> for TextSink<F> {
    #[inline]
    fn emit(&mut self, item: T, _ts: Timestamp) {
        let len = self.buf.len();
        if let Err(message) = (self.format)(&item, &mut self.buf) {
            self.buf.truncate(len);
            if self.error.is_none() {
                let what = match &self.target {
                    TextTarget::Stdout => PathBuf::from("<stdout>"),
                    TextTarget::Part { done, .. } => done.clone(),
                };
                self.error = Some(Error::io(
                    what,
                    std::io::Error::other(format!("cannot write a record: {message}")),
                ));
            }
            return;
        }
        self.buf.push(b'\n');
        self.count += 1;
        if self.buf.len() >= TEXT_BLOCK && self.error.is_none() {
            let r = self.write_out();
            self.record_error(r);
        }
    }

    fn event(&mut self, event: Event) {
        if self.error.is_some() {
            return;
        }
        let r = match event {
            Event::End => self.commit(),
            Event::Flush if matches!(self.target, TextTarget::Stdout) => self.write_out(),
            _ => Ok(()),
        };
        self.metrics
            .records_out
            .fetch_add(std::mem::take(&mut self.count), Ordering::Relaxed);
        self.record_error(r);
    }
}

impl<T, F: FnMut(&T, &mut Vec<u8>) -> Formatted + Send> Terminal<T> for TextSink<F> {
    fn drain(&mut self, _cx: &TaskCx<'_>) -> Result<bool> {
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(true),
        }
    }
}

/// Prepares an output directory: creates it and removes the part files of an earlier run, so
/// that the directory holds exactly this run's output.
pub(crate) fn prepare_output_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("part-")
            || (name.starts_with(".part-") && name.ends_with(".inprogress"))
        {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        }
    }
    Ok(())
}

/// Reads the rows of a part-file directory as the output convention says: every file whose
/// name does not begin with `.` or `_` (in-progress and metadata files), concatenated; rows
/// are returned sorted, since row order across part files is free.
pub fn read_part_files(dir: &Path) -> Result<Vec<String>> {
    let mut rows = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name.starts_with('_') {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
        rows.extend(text.lines().map(str::to_string));
    }
    rows.sort();
    Ok(rows)
}

impl<C: Chain> Stream<C> {
    /// Prints each record as a CSV row on standard output.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(1));
    /// env.from_iter([("a", 1), ("b", 2)]).print(); // prints `a,1` and `b,2`
    /// let summary = env.execute()?;
    /// assert_eq!(summary.records_written(), 2);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn print(self)
    where
        C::Out: CsvRow,
    {
        self.finish(Ending::Sink("print".into()), |_, m| {
            TextSink::stdout(
                |x: &C::Out, b: &mut Vec<u8>| {
                    x.write_row(b);
                    Ok(())
                },
                m.clone(),
            )
        })
    }

    /// Writes the records as CSV rows to part files `part-NNNNN.csv` in `dir`, one per
    /// subtask. A part file appears under its final name only once complete (it is written
    /// as `.part-NNNNN.csv.inprogress`, synced and renamed). Part files of an earlier run in
    /// `dir` are removed when the job starts.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// use flow_core::io::sink::read_part_files;
    /// let dir = tempfile::tempdir()?;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// env.from_vec(vec![("a", 1), ("b", 2), ("c", 3)]).write_csv(dir.path())?;
    /// env.execute()?;
    /// assert!(dir.path().join("part-00000.csv").exists());
    /// // the rows of all part files, sorted
    /// assert_eq!(read_part_files(dir.path())?, vec!["a,1", "b,2", "c,3"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_csv(self, dir: impl AsRef<Path>) -> Result<()>
    where
        C::Out: CsvRow,
    {
        self.write_text(
            dir.as_ref(),
            "csv",
            "write_csv",
            |x: &C::Out, b: &mut Vec<u8>| {
                x.write_row(b);
                Ok(())
            },
        )
    }

    /// Writes each record's `Display` form as a line to part files `part-NNNNN.txt` in `dir`
    /// (same protocol as [`Stream::write_csv`]).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let dir = tempfile::tempdir()?;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// env.generate_n(3, |i| format!("line {i}")).write_lines(dir.path())?;
    /// env.execute()?;
    /// let rows = flow_core::io::sink::read_part_files(dir.path())?; // sorted
    /// assert_eq!(rows, vec!["line 0", "line 1", "line 2"]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_lines(self, dir: impl AsRef<Path>) -> Result<()>
    where
        C::Out: std::fmt::Display,
    {
        self.write_text(
            dir.as_ref(),
            "txt",
            "write_lines",
            |x: &C::Out, b: &mut Vec<u8>| {
                use std::io::Write;
                let _ = write!(b, "{x}");
                Ok(())
            },
        )
    }

    pub(crate) fn write_text<F>(
        self,
        dir: &Path,
        ext: &'static str,
        kind: &str,
        format: F,
    ) -> Result<()>
    where
        F: FnMut(&C::Out, &mut Vec<u8>) -> Formatted + Clone + Send + 'static,
    {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::other("exists and is not a directory"),
            ));
        }
        let d = dir.to_path_buf();
        self.g
            .borrow_mut()
            .prepare
            .push(Box::new(move || prepare_output_dir(&d)));
        let d = dir.to_path_buf();
        self.finish(
            Ending::Sink(format!("{kind}({})", dir.display())),
            move |i, m| TextSink::part(&d, i, ext, format.clone(), m.clone()),
        );
        Ok(())
    }
}
