//! Text sinks: `print`, and part files (`write_csv`, `write_lines`; the serde formats of
//! [`super::rows`] too).
//!
//! # Part files
//!
//! Readers of an output directory take every file whose name does not begin with `.` or `_`
//! ([`read_part_files`]). A part file is written under a name starting with `.` and becomes
//! visible by a rename once complete: write, fsync the file, rename, fsync the directory.
//!
//! **Without a checkpoint directory**, each subtask writes one file,
//! `.part-SSSSS.EXT.inprogress` (subtask `SSSSS`), renamed to `part-SSSSS.EXT` when its input
//! ends. The part files of an earlier run are removed when the job starts.
//!
//! **With a checkpoint directory** ([`Config::checkpoint_dir`](crate::Config::checkpoint_dir)),
//! the sink is transactional, a two-phase commit tied to checkpoints (Flink's exactly-once
//! file sink), so that after a restore the output holds every record exactly once:
//!
//! - Records go to an in-progress file `.part-SSSSS-Q.EXT.inprogress` (`Q` counts the
//!   subtask's files in this run).
//! - *Pre-commit*, at checkpoint barrier `n` and once more at the end of input: the file is
//!   written out, fsynced, closed and renamed to the pending `.part-C-SSSSS-Q.EXT.pending`
//!   (the directory is fsynced), where `C` (ten digits) is the checkpoint the file belongs to:
//!   `n`, or at the end the first checkpoint after the last barrier. Nothing written since the
//!   last pre-commit: no file. The subtask's blob for the checkpoint (metadata
//!   `sink/{stage}/{subtask}`) lists the files it pre-committed that it has not seen published
//!   yet — those of earlier checkpoints that failed too — as lines `LENGTH NAME` under a
//!   first line `flow-part-files 1`, `NAME` being the final name.
//! - *Publish*, once checkpoint `n` is durable: every pending file its blobs list is renamed to
//!   its final name `part-C-SSSSS-Q.EXT`, then the directory is fsynced. A file already
//!   published (pending name gone, final name present with the recorded length) is skipped,
//!   so publishing again is harmless; a length that differs from the recorded one is an error.
//! - *Recover*, before a job restored from checkpoint `r` starts: publishes what `r` lists,
//!   removes the published files with `C > r` (output of checkpoints being rolled back) and
//!   every other pending and in-progress file. Output of checkpoints up to `r` stays. A job
//!   that does not restore starts with an empty directory, as without checkpoints.
//!
//! `C` is at most the id of the checkpoint that publishes the file, and every record of the
//! file follows barrier `C - 1`: a restore of `r` keeps exactly the files whose records `r`
//! covers. Final names are unique across checkpoints, subtasks and runs: a run's checkpoint
//! ids follow every id already in the checkpoint directory, and its recovery removed the files
//! of checkpoints after the one it restored.
use crate::api::stream::Stream;
use crate::error::{Error, Result};
use crate::graph::Ending;
use crate::io::csv::CsvRow;
use crate::record::{Event, Timestamp};
use crate::runtime::metrics::StageMetrics;
use crate::runtime::operator::{Chain, Downstream};
use crate::runtime::persist::SinkCommit;
use crate::runtime::stage::Terminal;
use crate::runtime::task::TaskCx;
use std::fs::File;
use std::io::{ErrorKind, Write};
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
    /// Part files committed with checkpoints (see the module documentation).
    Transactional(Box<TxnFiles>),
}

/// A subtask's transactional part files.
pub(crate) struct TxnFiles {
    dir: PathBuf,
    ext: &'static str,
    subtask: usize,
    /// The number of the subtask's next file in this run.
    seq: u64,
    /// The in-progress file: its path, the file, the bytes written to it.
    open: Option<(PathBuf, File, u64)>,
    /// Files pre-committed and not seen published yet: final name and length.
    unpublished: Vec<(String, u64)>,
    /// The last checkpoint barrier that reached the sink.
    barrier: u64,
    /// The id before this run's first checkpoint.
    base: u64,
    /// Whether the input ended.
    ended: bool,
}

impl TxnFiles {
    fn write(&mut self, buf: &[u8]) -> Result<()> {
        let (path, file, len) = match &mut self.open {
            Some(open) => open,
            None => {
                let path = self.dir.join(format!(
                    ".part-{:05}-{}.{}.inprogress",
                    self.subtask, self.seq, self.ext
                ));
                let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
                self.open.insert((path, file, 0))
            }
        };
        file.write_all(buf).map_err(|e| Error::io(&*path, e))?;
        *len += buf.len() as u64;
        Ok(())
    }

    /// Pre-commits the in-progress file (written out already), if any; returns whether there
    /// was one, and the blob of the files to publish.
    fn pre_commit(&mut self) -> Result<(bool, Option<Vec<u8>>)> {
        // Files published since the last pre-commit no longer have their pending name. (In
        // doubt, keep listing a file: publishing it again is harmless.)
        let dir = &self.dir;
        self.unpublished
            .retain(|(name, _)| !matches!(pending_path(dir, name).try_exists(), Ok(false)));
        let rolled = match self.open.take() {
            None => false,
            Some((tmp, file, len)) => {
                file.sync_all().map_err(|e| Error::io(&tmp, e))?;
                drop(file);
                let checkpoint = if self.ended {
                    // The first checkpoint after the last barrier holds this file.
                    self.barrier.max(self.base) + 1
                } else {
                    self.barrier.max(self.base + 1)
                };
                let name = format!(
                    "part-{checkpoint:010}-{:05}-{}.{}",
                    self.subtask, self.seq, self.ext
                );
                let pending = pending_path(&self.dir, &name);
                std::fs::rename(&tmp, &pending).map_err(|e| Error::io(&pending, e))?;
                sync_dir(&self.dir)?;
                self.seq += 1;
                self.unpublished.push((name, len));
                true
            }
        };
        let blob = (!self.unpublished.is_empty()).then(|| encode_blob(&self.unpublished));
        Ok((rolled, blob))
    }
}

/// Formats each record as one line of text and writes the lines out in large blocks.
pub(crate) struct TextSink<F> {
    pub(crate) format: F,
    /// A formatter that has not written anything, for the next file (transactional part
    /// files: a CSV header at the top of each).
    pub(crate) fresh: Option<F>,
    pub(crate) buf: Vec<u8>,
    pub(crate) target: TextTarget,
    pub(crate) error: Option<Error>,
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
            fresh: None,
            buf: Vec::new(),
            target: TextTarget::Part {
                dir: dir.to_path_buf(),
                tmp: dir.join(format!(".{name}.inprogress")),
                done: dir.join(name),
                file: None,
            },
            error: None,
            metrics,
        }
    }

    /// Part files committed with checkpoints (see the module documentation).
    pub(crate) fn transactional(
        dir: &Path,
        subtask: usize,
        ext: &'static str,
        format: F,
        metrics: Arc<StageMetrics>,
    ) -> Self
    where
        F: Clone,
    {
        TextSink {
            fresh: Some(format.clone()),
            format,
            buf: Vec::new(),
            target: TextTarget::Transactional(Box::new(TxnFiles {
                dir: dir.to_path_buf(),
                ext,
                subtask,
                seq: 0,
                open: None,
                unpublished: Vec::new(),
                barrier: 0,
                base: 0,
                ended: false,
            })),
            error: None,
            metrics,
        }
    }

    pub(crate) fn stdout(format: F, metrics: Arc<StageMetrics>) -> Self {
        TextSink {
            format,
            fresh: None,
            buf: Vec::new(),
            target: TextTarget::Stdout,
            error: None,
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
            TextTarget::Transactional(t) => t.write(&self.buf)?,
        }
        self.metrics
            .bytes_written
            .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
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
                    TextTarget::Transactional(t) => t.dir.clone(),
                };
                self.error = Some(Error::io(
                    what,
                    std::io::Error::other(format!("cannot write a record: {message}")),
                ));
            }
            return;
        }
        self.buf.push(b'\n');
        if self.buf.len() >= TEXT_BLOCK && self.error.is_none() {
            let r = self.write_out();
            self.record_error(r);
        }
    }

    fn event(&mut self, event: Event) {
        if let TextTarget::Transactional(t) = &mut self.target {
            match event {
                Event::Barrier(n) => t.barrier = n,
                Event::End => t.ended = true,
                _ => {}
            }
        }
        if self.error.is_some() {
            return;
        }
        let r = match event {
            // Transactional part files are committed by `pre_commit`, which follows the end.
            Event::End if !matches!(self.target, TextTarget::Transactional(_)) => self.commit(),
            Event::Flush if matches!(self.target, TextTarget::Stdout) => self.write_out(),
            _ => Ok(()),
        };
        self.record_error(r);
    }
}

impl<T, F: FnMut(&T, &mut Vec<u8>) -> Formatted + Clone + Send> Terminal<T> for TextSink<F> {
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        if let TextTarget::Transactional(t) = &mut self.target {
            t.base = cx.checkpoints().base();
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(true),
        }
    }

    fn pre_commit(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        if !matches!(self.target, TextTarget::Transactional(_)) {
            return Ok(None);
        }
        self.write_out()?;
        let TextTarget::Transactional(t) = &mut self.target else {
            return Ok(None);
        };
        let (rolled, blob) = t.pre_commit()?;
        if rolled {
            if let Some(f) = &self.fresh {
                self.format = f.clone();
            }
        }
        Ok(blob)
    }
}

/// The first line of a transactional sink's pre-commit blob.
const BLOB_HEADER: &str = "flow-part-files 1";

/// The blob of pre-committed files: a header line, then `LENGTH NAME` per file.
pub(crate) fn encode_blob(files: &[(String, u64)]) -> Vec<u8> {
    let mut s = format!("{BLOB_HEADER}\n");
    for (name, len) in files {
        s.push_str(&format!("{len} {name}\n"));
    }
    s.into_bytes()
}

/// The files a pre-commit blob lists: final name and length.
pub(crate) fn decode_blob(dir: &Path, blob: &[u8]) -> Result<Vec<(String, u64)>> {
    let bad = |why: &str| {
        Error::Checkpoint(format!(
            "the pre-commit record of a sink writing to {} is malformed: {why}",
            dir.display()
        ))
    };
    let text = std::str::from_utf8(blob).map_err(|_| bad("not UTF-8"))?;
    let mut lines = text.lines();
    if lines.next() != Some(BLOB_HEADER) {
        return Err(bad("unknown format"));
    }
    lines
        .map(|line| {
            let (len, name) = line
                .split_once(' ')
                .ok_or_else(|| bad(&format!("line `{line}`")))?;
            let len = len
                .parse::<u64>()
                .map_err(|_| bad(&format!("line `{line}`")))?;
            let (bucket, file) = split_name(name);
            if part_checkpoint(file).is_none() || !valid_bucket(bucket) {
                return Err(bad(&format!("`{name}` is not a part file name")));
            }
            Ok((name.to_string(), len))
        })
        .collect()
}

/// A final name's bucket (its directory under the sink's, `""` for none) and file name.
pub(crate) fn split_name(name: &str) -> (&str, &str) {
    name.rsplit_once('/').unwrap_or(("", name))
}

/// Whether `bucket` is a relative path of plain names that readers do not skip: no empty,
/// `.` or `..` component, none starting with `.` or `_`. The empty bucket is the sink's
/// directory itself.
pub(crate) fn valid_bucket(bucket: &str) -> bool {
    bucket.is_empty()
        || bucket.split('/').all(|c| {
            !c.is_empty() && !c.starts_with('.') && !c.starts_with('_') && !c.contains('\\')
        })
}

/// The pending name of the part file with final name `name` (`bucket/file` or `file`).
fn pending_path(dir: &Path, name: &str) -> PathBuf {
    let (bucket, file) = split_name(name);
    dir.join(bucket).join(format!(".{file}.pending"))
}

/// The checkpoint a transactional part file `part-C-SSSSS-Q.EXT` belongs to; `None` for
/// other names (a part file written without checkpoints, `part-SSSSS.EXT`, among them).
fn part_checkpoint(name: &str) -> Option<u64> {
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let rest = name.strip_prefix("part-")?;
    let (checkpoint, rest) = rest.split_once('-')?;
    let (subtask, rest) = rest.split_once('-')?;
    let (seq, ext) = rest.split_once('.')?;
    let ok = checkpoint.len() >= 10
        && digits(checkpoint)
        && digits(subtask)
        && digits(seq)
        && !ext.is_empty()
        && !ext.contains(['/', '\\']);
    if ok {
        checkpoint.parse().ok()
    } else {
        None
    }
}

/// Publishes the part files that checkpoint `id`'s blobs list: renames each pending file to
/// its final name, then fsyncs the directory. Files published already are skipped.
pub(crate) fn publish_part_files(dir: &Path, id: u64, blobs: &[&[u8]]) -> Result<()> {
    // The directories that files were renamed in (buckets), each fsynced once.
    let mut renamed = std::collections::BTreeSet::new();
    for blob in blobs {
        for (name, len) in decode_blob(dir, blob)? {
            if publish_file(dir, id, &name, len)? {
                renamed.insert(split_name(&name).0.to_string());
            }
        }
    }
    for bucket in renamed {
        sync_dir(&dir.join(bucket))?;
    }
    Ok(())
}

/// Publishes one pre-committed file of `len` bytes; returns whether it renamed it.
fn publish_file(dir: &Path, id: u64, name: &str, len: u64) -> Result<bool> {
    let pending = pending_path(dir, name);
    let done = dir.join(name);
    let damaged = |path: &Path, what: &str, has: u64| {
        Error::io(
            path,
            std::io::Error::other(format!(
                "{what} with {len} bytes for checkpoint {id}, the file has {has}: it was \
                 changed after it was written"
            )),
        )
    };
    match std::fs::metadata(&pending) {
        Ok(m) if m.len() != len => Err(damaged(&pending, "pre-committed", m.len())),
        Ok(_) => {
            std::fs::rename(&pending, &done).map_err(|e| Error::io(&done, e))?;
            Ok(true)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => match std::fs::metadata(&done) {
            Ok(m) if m.len() == len => Ok(false),
            Ok(m) => Err(damaged(&done, "published", m.len())),
            Err(e) if e.kind() == ErrorKind::NotFound => Err(Error::io(
                &pending,
                std::io::Error::other(format!(
                    "checkpoint {id} pre-committed this file ({len} bytes), but neither it nor \
                     {} exists: was the output directory changed, or the checkpoint's output \
                     rolled back by restoring an earlier checkpoint?",
                    done.display()
                )),
            )),
            Err(e) => Err(Error::io(&done, e)),
        },
        Err(e) => Err(Error::io(&pending, e)),
    }
}

/// Brings the part files of `dir` to the restored checkpoint `(id, blobs)`: publishes what it
/// pre-committed, removes the files of later checkpoints and every other pending or
/// in-progress file. `None` (a fresh start): removes every part file.
pub(crate) fn recover_part_files(dir: &Path, restored: Option<(u64, Vec<Vec<u8>>)>) -> Result<()> {
    let Some((id, blobs)) = restored else {
        prepare_output_dir(dir)?;
        return sync_dir(dir);
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let blobs: Vec<&[u8]> = blobs.iter().map(Vec::as_slice).collect();
    publish_part_files(dir, id, &blobs)?;
    remove_part_files(dir, &|name| match part_checkpoint(name) {
        Some(c) => c > id,
        None => is_unfinished(name),
    })
}

/// Removes the files `remove` names in `dir` and its bucket directories (those a reader
/// reads: not starting with `.` or `_`), then bucket directories left empty; fsyncs each
/// directory it changed.
fn remove_part_files(dir: &Path, remove: &dyn Fn(&str) -> bool) -> Result<()> {
    let mut changed = false;
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
        if kind.is_dir() {
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let sub = entry.path();
            remove_part_files(&sub, remove)?;
            let empty = std::fs::read_dir(&sub)
                .map_err(|e| Error::io(&sub, e))?
                .next()
                .is_none();
            if empty {
                std::fs::remove_dir(&sub).map_err(|e| Error::io(&sub, e))?;
                changed = true;
            }
        } else if remove(&name) {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            changed = true;
        }
    }
    if changed {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Whether `name` is an in-progress or pending part file.
fn is_unfinished(name: &str) -> bool {
    name.starts_with(".part-") && (name.ends_with(".inprogress") || name.ends_with(".pending"))
}

/// Prepares an output directory: creates it and removes the part files of an earlier run, so
/// that the directory holds exactly this run's output.
pub(crate) fn prepare_output_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    remove_part_files(dir, &|name| {
        name.starts_with("part-") || is_unfinished(name)
    })
}

/// Reads the rows of a part-file directory as the output convention says: every file whose
/// name does not begin with `.` or `_` (in-progress, pending and metadata files), concatenated;
/// rows are returned sorted, since row order across part files is free.
///
/// Bucketed output ([`Stream::write_csv_bucketed`]) is read from the bucket directories too;
/// use [`read_part_files_by_bucket`] to keep each row's bucket.
pub fn read_part_files(dir: &Path) -> Result<Vec<String>> {
    let mut rows: Vec<String> = read_part_files_by_bucket(dir)?
        .into_iter()
        .map(|(_, row)| row)
        .collect();
    rows.sort();
    Ok(rows)
}

/// Reads the rows of a part-file directory and of its bucket directories (every directory
/// whose name does not begin with `.` or `_`), each with its bucket: the path of its file's
/// directory relative to `dir` (`""` for `dir` itself). Sorted.
pub fn read_part_files_by_bucket(dir: &Path) -> Result<Vec<(String, String)>> {
    fn walk(dir: &Path, bucket: &str, rows: &mut Vec<(String, String)>) -> Result<()> {
        for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
            let entry = entry.map_err(|e| Error::io(dir, e))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            let kind = entry.file_type().map_err(|e| Error::io(entry.path(), e))?;
            if kind.is_dir() {
                let sub = if bucket.is_empty() {
                    name.to_string()
                } else {
                    format!("{bucket}/{name}")
                };
                walk(&entry.path(), &sub, rows)?;
                continue;
            }
            let text =
                std::fs::read_to_string(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            rows.extend(text.lines().map(|l| (bucket.to_string(), l.to_string())));
        }
        Ok(())
    }
    let mut rows = Vec::new();
    walk(dir, "", &mut rows)?;
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
    /// With a [checkpoint directory](crate::Config::checkpoint_dir) the output is
    /// exactly-once: each subtask writes a part file per checkpoint,
    /// `part-CCCCCCCCCC-NNNNN-Q.csv`, published when checkpoint `C` is durable, and a restored
    /// job's output is that of the checkpoint it restored (see
    /// [`part_files`](crate::io::sink::part_files)).
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
        let ending = Ending::Sink(format!("{kind}({})", dir.display()));
        let transactional = self.g.borrow().config.checkpoint_dir.is_some();
        if !transactional {
            let d = dir.to_path_buf();
            self.g
                .borrow_mut()
                .prepare
                .push(Box::new(move || prepare_output_dir(&d)));
            let d = dir.to_path_buf();
            self.finish(ending, move |i, m| {
                TextSink::part(&d, i, ext, format.clone(), m.clone())
            });
            return Ok(());
        }
        // Exactly-once: files are published with checkpoints, and the directory is brought
        // to the restored checkpoint (or emptied) when the job starts.
        let g = self.g.clone();
        let stage = self.input.slot.stage;
        let d = dir.to_path_buf();
        self.finish(ending, move |i, m| {
            TextSink::transactional(&d, i, ext, format.clone(), m.clone())
        });
        let (d, d2) = (dir.to_path_buf(), dir.to_path_buf());
        g.borrow_mut().stages[stage].sink_commit = Some(SinkCommit {
            publish: Box::new(move |id, blobs| publish_part_files(&d, id, blobs)),
            recover: Box::new(move |restored| recover_part_files(&d2, restored)),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Fmt = fn(&String, &mut Vec<u8>) -> Formatted;

    fn line(x: &String, b: &mut Vec<u8>) -> Formatted {
        b.extend_from_slice(x.as_bytes());
        Ok(())
    }

    fn sink(dir: &Path, subtask: usize) -> TextSink<Fmt> {
        TextSink::transactional(
            dir,
            subtask,
            "csv",
            line as Fmt,
            Arc::new(StageMetrics::default()),
        )
    }

    fn emit<F: FnMut(&String, &mut Vec<u8>) -> Formatted>(s: &mut TextSink<F>, rows: &[&str]) {
        for r in rows {
            s.emit(r.to_string(), 0);
        }
    }

    /// Barrier `n` reaches the sink, which pre-commits.
    fn barrier<F>(s: &mut TextSink<F>, n: u64) -> Option<Vec<u8>>
    where
        F: FnMut(&String, &mut Vec<u8>) -> Formatted + Clone + Send,
    {
        Downstream::<String>::event(s, Event::Barrier(n));
        Terminal::<String>::pre_commit(s).unwrap()
    }

    /// The input ends; the sink pre-commits a last time.
    fn end(s: &mut TextSink<Fmt>) -> Option<Vec<u8>> {
        Downstream::<String>::event(s, Event::End);
        Terminal::<String>::pre_commit(s).unwrap()
    }

    fn set_base(s: &mut TextSink<Fmt>, base: u64) {
        if let TextTarget::Transactional(t) = &mut s.target {
            t.base = base;
        }
    }

    fn publish(dir: &Path, id: u64, blobs: &[&Option<Vec<u8>>]) -> Result<()> {
        let blobs: Vec<&[u8]> = blobs.iter().filter_map(|b| b.as_deref()).collect();
        publish_part_files(dir, id, &blobs)
    }

    fn recover(dir: &Path, id: u64, blobs: &[&Option<Vec<u8>>]) -> Result<()> {
        let blobs = blobs.iter().filter_map(|b| (*b).clone()).collect();
        recover_part_files(dir, Some((id, blobs)))
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn rows(dir: &Path) -> Vec<String> {
        read_part_files(dir).unwrap()
    }

    #[test]
    fn nothing_is_visible_before_publish() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), 0);
        emit(&mut s, &["a", "b"]);
        s.write_out().unwrap();
        assert_eq!(files(dir.path()), vec![".part-00000-0.csv.inprogress"]);
        let blob = barrier(&mut s, 1);
        assert!(blob.is_some());
        assert_eq!(
            files(dir.path()),
            vec![".part-0000000001-00000-0.csv.pending"]
        );
        assert!(rows(dir.path()).is_empty());
        let text = String::from_utf8(blob.unwrap()).unwrap();
        assert_eq!(text, "flow-part-files 1\n4 part-0000000001-00000-0.csv\n");
    }

    #[test]
    fn published_rows_appear_once() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s0, mut s1) = (sink(dir.path(), 0), sink(dir.path(), 1));
        emit(&mut s0, &["a", "b"]);
        emit(&mut s1, &["c"]);
        let (b0, b1) = (barrier(&mut s0, 1), barrier(&mut s1, 1));
        publish(dir.path(), 1, &[&b0, &b1]).unwrap();
        assert_eq!(rows(dir.path()), vec!["a", "b", "c"]);
        assert_eq!(
            files(dir.path()),
            vec!["part-0000000001-00000-0.csv", "part-0000000001-00001-0.csv"]
        );
        // The next checkpoint lists only the new file: the first one is published.
        emit(&mut s0, &["d"]);
        let b0 = barrier(&mut s0, 2);
        let listed = decode_blob(dir.path(), b0.as_deref().unwrap()).unwrap();
        assert_eq!(listed, vec![("part-0000000002-00000-1.csv".to_string(), 2)]);
        // Subtask 1 had nothing new and nothing unpublished: no blob.
        assert!(barrier(&mut s1, 2).is_none());
        publish(dir.path(), 2, &[&b0]).unwrap();
        assert_eq!(rows(dir.path()), vec!["a", "b", "c", "d"]);
        assert!(files(dir.path()).iter().all(|f| !f.starts_with('.')));
    }

    #[test]
    fn publishing_twice_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), 0);
        emit(&mut s, &["a", "b"]);
        let b = barrier(&mut s, 1);
        publish(dir.path(), 1, &[&b]).unwrap();
        publish(dir.path(), 1, &[&b]).unwrap();
        recover(dir.path(), 1, &[&b]).unwrap();
        assert_eq!(rows(dir.path()), vec!["a", "b"]);
        assert_eq!(files(dir.path()), vec!["part-0000000001-00000-0.csv"]);
    }

    #[test]
    fn empty_pre_commits_create_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), 0);
        assert!(barrier(&mut s, 1).is_none());
        assert!(end(&mut s).is_none());
        assert!(files(dir.path()).is_empty());
    }

    #[test]
    fn files_of_a_failed_checkpoint_are_published_with_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), 0);
        emit(&mut s, &["a"]);
        let _lost = barrier(&mut s, 1); // checkpoint 1 fails: never published
        emit(&mut s, &["b"]);
        let b2 = barrier(&mut s, 2);
        assert_eq!(
            decode_blob(dir.path(), b2.as_deref().unwrap())
                .unwrap()
                .len(),
            2
        );
        publish(dir.path(), 2, &[&b2]).unwrap();
        assert_eq!(rows(dir.path()), vec!["a", "b"]);
        // A restore of checkpoint 2 keeps both.
        recover(dir.path(), 2, &[&b2]).unwrap();
        assert_eq!(rows(dir.path()), vec!["a", "b"]);
    }

    #[test]
    fn recover_publishes_the_restored_checkpoint_and_removes_later_output() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), 0);
        emit(&mut s, &["a"]);
        let b1 = barrier(&mut s, 1); // durable, not published before the crash
        emit(&mut s, &["b"]);
        let b2 = barrier(&mut s, 2);
        publish(dir.path(), 1, &[&b1]).unwrap();
        publish(dir.path(), 2, &[&b2]).unwrap();
        emit(&mut s, &["c"]);
        let _b3 = barrier(&mut s, 3); // pre-committed, never published
        emit(&mut s, &["d"]);
        s.write_out().unwrap(); // in progress
        drop(s);
        assert_eq!(rows(dir.path()), vec!["a", "b"]);
        // Checkpoint 2 is damaged: the job falls back to 1.
        recover(dir.path(), 1, &[&b1]).unwrap();
        assert_eq!(rows(dir.path()), vec!["a"]);
        assert_eq!(files(dir.path()), vec!["part-0000000001-00000-0.csv"]);
    }

    #[test]
    fn recover_after_a_crash_before_publish_writes_rows_exactly_once() {
        let dir = tempfile::tempdir().unwrap();
        let input = ["a", "b", "c", "d"];
        // Run 1: checkpoint 1 after "a", "b" is durable; the crash comes before its publish,
        // with "c" in progress.
        let mut s = sink(dir.path(), 0);
        emit(&mut s, &input[..2]);
        let b1 = barrier(&mut s, 1);
        emit(&mut s, &input[2..3]);
        s.write_out().unwrap();
        drop(s);
        assert!(rows(dir.path()).is_empty());
        // Run 2 restores checkpoint 1 (the newest in the directory): its sources replay from
        // after "b".
        recover(dir.path(), 1, &[&b1]).unwrap();
        assert_eq!(rows(dir.path()), vec!["a", "b"]);
        let mut s = sink(dir.path(), 0);
        set_base(&mut s, 1);
        emit(&mut s, &input[2..]);
        let last = end(&mut s);
        publish(dir.path(), 2, &[&last]).unwrap();
        assert_eq!(rows(dir.path()), input);
        assert_eq!(
            files(dir.path()),
            vec!["part-0000000001-00000-0.csv", "part-0000000002-00000-0.csv"]
        );
    }

    #[test]
    fn a_file_pre_committed_at_the_end_belongs_to_the_next_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), 3);
        set_base(&mut s, 6);
        emit(&mut s, &["a"]);
        let b = end(&mut s);
        let listed = decode_blob(dir.path(), b.as_deref().unwrap()).unwrap();
        assert_eq!(listed, vec![("part-0000000007-00003-0.csv".to_string(), 2)]);
        let mut s = sink(dir.path(), 4);
        set_base(&mut s, 6);
        emit(&mut s, &["b"]);
        let _ = barrier(&mut s, 7);
        emit(&mut s, &["c"]);
        let b = end(&mut s);
        let listed = decode_blob(dir.path(), b.as_deref().unwrap()).unwrap();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[1].0, "part-0000000008-00004-1.csv");
    }

    #[test]
    fn fresh_start_clears_old_output() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "part-00000.csv",
            "part-0000000003-00001-0.csv",
            ".part-0000000004-00001-1.csv.pending",
            ".part-00001-2.csv.inprogress",
            "_SUCCESS",
            "notes.txt",
        ] {
            std::fs::write(dir.path().join(name), "x\n").unwrap();
        }
        recover_part_files(dir.path(), None).unwrap();
        assert_eq!(files(dir.path()), vec!["_SUCCESS", "notes.txt"]);
        // A missing directory is created.
        let out = dir.path().join("out");
        recover_part_files(&out, None).unwrap();
        assert!(out.is_dir());
    }

    #[test]
    fn a_damaged_pending_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = sink(dir.path(), 0);
        emit(&mut s, &["abc", "def"]);
        let b = barrier(&mut s, 1);
        let pending = dir.path().join(".part-0000000001-00000-0.csv.pending");
        std::fs::write(&pending, "abc\n").unwrap();
        let e = publish(dir.path(), 1, &[&b]).unwrap_err().to_string();
        assert!(e.contains(".part-0000000001-00000-0.csv.pending"), "{e}");
        assert!(e.contains("8 bytes"), "{e}");
        // Gone altogether (and not published): an error too.
        std::fs::remove_file(&pending).unwrap();
        let e = recover(dir.path(), 1, &[&b]).unwrap_err().to_string();
        assert!(e.contains(".part-0000000001-00000-0.csv.pending"), "{e}");
    }

    #[test]
    fn a_malformed_blob_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        for blob in [
            &b"garbage"[..],
            b"flow-part-files 1\nx part-0000000001-00000-0.csv\n",
            b"flow-part-files 1\n3 ../part-0000000001-00000-0.csv\n",
            b"flow-part-files 1\n3 part-0000000001-00000-0.csv/x\n",
        ] {
            assert!(publish_part_files(dir.path(), 1, &[blob]).is_err());
        }
    }

    #[test]
    fn each_file_gets_a_fresh_formatter() {
        let dir = tempfile::tempdir().unwrap();
        let mut started = false;
        let header = move |x: &String, b: &mut Vec<u8>| -> Formatted {
            if !started {
                b.extend_from_slice(b"name\n");
                started = true;
            }
            b.extend_from_slice(x.as_bytes());
            Ok(())
        };
        let mut s = TextSink::transactional(dir.path(), 0, "csv", header, Arc::default());
        emit(&mut s, &["a"]);
        let b1 = barrier(&mut s, 1);
        emit(&mut s, &["b"]);
        let b2 = barrier(&mut s, 2);
        publish(dir.path(), 1, &[&b1]).unwrap();
        publish(dir.path(), 2, &[&b2]).unwrap();
        for name in ["part-0000000001-00000-0.csv", "part-0000000002-00000-1.csv"] {
            let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
            assert!(text.starts_with("name\n"), "{name}: {text}");
        }
    }
}
