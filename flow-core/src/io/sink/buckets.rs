//! Bucketed part files (Flink's `FileSink` with a bucket assigner; Hive-style partitions):
//! each record goes to a bucket directory that a function of the record names, e.g.
//! `dt=2026-01-01/hm=10:15`, and each subtask writes its own part files in every bucket it
//! has records for, with the protocol of [`super::part_files`] — exactly-once with
//! checkpoints: the pre-commit blob of a subtask lists its files as `bucket/part-...`, and
//! publish and recovery work below the sink's directory.
//!
//! A new bucket directory is created, and its entry fsynced in its parent, before any file
//! in it can be published. Each subtask keeps one open file per bucket it wrote to since its
//! last pre-commit (without checkpoints: until its input ends).
use super::part_files::{
    decode_blob, encode_blob, prepare_output_dir, publish_part_files, recover_part_files, sync_dir,
    valid_bucket, Formatted, TextSink,
};
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
use rustc_hash::FxHashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How a bucketed sink's subtask makes the sink of a new bucket.
#[derive(Clone)]
struct Make<F> {
    root: PathBuf,
    subtask: usize,
    ext: &'static str,
    format: F,
    transactional: bool,
    metrics: Arc<StageMetrics>,
}

/// One subtask of a bucketed sink.
pub(crate) struct BucketedSink<F, B> {
    make: Make<F>,
    bucket: B,
    /// Each bucket's sink, by bucket path.
    buckets: FxHashMap<String, TextSink<F>>,
    /// The bucket of the last record and a scratch buffer for the next one's.
    last: String,
    scratch: String,
    /// The last checkpoint barrier, which a bucket's sink made after it must know.
    barrier: Option<u64>,
    error: Option<Error>,
}

impl<F: Clone, B> BucketedSink<F, B> {
    fn new(make: Make<F>, bucket: B) -> Self {
        BucketedSink {
            make,
            bucket,
            buckets: FxHashMap::default(),
            last: String::new(),
            scratch: String::new(),
            barrier: None,
            error: None,
        }
    }

    /// Creates the directory of a new bucket, makes its entry durable, and its sink.
    fn open(&mut self, bucket: &str) -> Result<TextSink<F>> {
        if !valid_bucket(bucket) || bucket.is_empty() {
            return Err(Error::io(
                &self.make.root,
                std::io::Error::other(format!(
                    "bucket `{bucket}` is not a relative path of plain names (no empty, `.` or \
                     `..` component, none starting with `.` or `_`)"
                )),
            ));
        }
        let dir = self.make.root.join(bucket);
        if !dir.is_dir() {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            // Every directory from the bucket's up to the sink's: its entry in its parent.
            let mut d = dir.as_path();
            while let Some(parent) = d.parent() {
                sync_dir(parent)?;
                if parent == self.make.root {
                    break;
                }
                d = parent;
            }
        }
        let m = &self.make;
        Ok(if m.transactional {
            TextSink::transactional(&dir, m.subtask, m.ext, m.format.clone(), m.metrics.clone())
        } else {
            TextSink::part(&dir, m.subtask, m.ext, m.format.clone(), m.metrics.clone())
        })
    }
}

impl<T, F, B> Downstream<T> for BucketedSink<F, B>
where
    F: FnMut(&T, &mut Vec<u8>) -> Formatted + Clone,
    B: FnMut(&T, &mut String),
{
    #[inline]
    fn emit(&mut self, item: T, ts: Timestamp) {
        self.scratch.clear();
        (self.bucket)(&item, &mut self.scratch);
        if self.scratch != self.last {
            std::mem::swap(&mut self.scratch, &mut self.last);
        }
        let sink = match self.buckets.get_mut(&self.last) {
            Some(sink) => sink,
            None => {
                let bucket = self.last.clone();
                let mut sink = match self.open(&bucket) {
                    Ok(sink) => sink,
                    Err(e) => {
                        self.error.get_or_insert(e);
                        return;
                    }
                };
                if let Some(n) = self.barrier {
                    // Its files belong to the checkpoints after the last barrier.
                    Downstream::<T>::event(&mut sink, Event::Barrier(n));
                }
                self.buckets.entry(bucket).or_insert(sink)
            }
        };
        sink.emit(item, ts);
    }

    fn event(&mut self, event: Event) {
        if let Event::Barrier(n) = event {
            self.barrier = Some(n);
        }
        for sink in self.buckets.values_mut() {
            Downstream::<T>::event(sink, event);
        }
    }
}

impl<T, F, B> Terminal<T> for BucketedSink<F, B>
where
    T: Send,
    F: FnMut(&T, &mut Vec<u8>) -> Formatted + Clone + Send,
    B: FnMut(&T, &mut String) + Send,
{
    fn drain(&mut self, cx: &TaskCx<'_>) -> Result<bool> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        for sink in self.buckets.values_mut() {
            Terminal::<T>::drain(sink, cx)?;
        }
        Ok(true)
    }

    fn pre_commit(&mut self) -> Result<Option<Vec<u8>>> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut files = Vec::new();
        for (bucket, sink) in &mut self.buckets {
            if let Some(blob) = Terminal::<T>::pre_commit(sink)? {
                let dir = self.make.root.join(bucket);
                for (name, len) in decode_blob(&dir, &blob)? {
                    files.push((format!("{bucket}/{name}"), len));
                }
            }
        }
        files.sort();
        Ok((!files.is_empty()).then(|| encode_blob(&files)))
    }
}

impl<C: Chain> Stream<C> {
    /// Writes each record as a CSV row ([`Stream::write_csv`]) into a bucket directory of
    /// `dir` that `bucket` names from the record, Hive-style partitions for instance
    /// (`dt=2026-01-01/hm=10:15`). `bucket` writes the bucket's relative path into the
    /// empty string it is given. Each subtask writes its own part files in each bucket; with
    /// checkpoints they are published exactly once, as `write_csv`'s are.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// use flow_core::io::sink::part_files::read_part_files_by_bucket;
    /// use std::fmt::Write;
    /// let dir = tempfile::tempdir()?;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// env.from_vec(vec![("2026-01-01", 1), ("2026-01-02", 2), ("2026-01-01", 3)])
    ///     .write_csv_bucketed(dir.path(), |(day, _), b| {
    ///         let _ = write!(b, "dt={day}");
    ///     })?;
    /// env.execute()?;
    /// assert_eq!(
    ///     read_part_files_by_bucket(dir.path())?,
    ///     [
    ///         ("dt=2026-01-01".to_string(), "2026-01-01,1".to_string()),
    ///         ("dt=2026-01-01".into(), "2026-01-01,3".into()),
    ///         ("dt=2026-01-02".into(), "2026-01-02,2".into()),
    ///     ]
    /// );
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn write_csv_bucketed<B>(self, dir: impl AsRef<Path>, bucket: B) -> Result<()>
    where
        C::Out: CsvRow,
        B: FnMut(&C::Out, &mut String) + Clone + Send + 'static,
    {
        self.write_bucketed(
            dir.as_ref(),
            "csv",
            "write_csv_bucketed",
            |x: &C::Out, b: &mut Vec<u8>| {
                x.write_row(b);
                Ok(())
            },
            bucket,
        )
    }

    pub(crate) fn write_bucketed<F, B>(
        self,
        dir: &Path,
        ext: &'static str,
        kind: &str,
        format: F,
        bucket: B,
    ) -> Result<()>
    where
        F: FnMut(&C::Out, &mut Vec<u8>) -> Formatted + Clone + Send + 'static,
        B: FnMut(&C::Out, &mut String) + Clone + Send + 'static,
    {
        if dir.exists() && !dir.is_dir() {
            return Err(Error::io(
                dir,
                std::io::Error::other("exists and is not a directory"),
            ));
        }
        let ending = Ending::Sink(format!("{kind}({})", dir.display()));
        let transactional = self.g.borrow().config.checkpoint_dir.is_some();
        let root = dir.to_path_buf();
        let make = move |i: usize, m: &Arc<StageMetrics>| Make {
            root: root.clone(),
            subtask: i,
            ext,
            format: format.clone(),
            transactional,
            metrics: m.clone(),
        };
        if !transactional {
            let d = dir.to_path_buf();
            self.g
                .borrow_mut()
                .prepare
                .push(Box::new(move || prepare_output_dir(&d)));
            self.finish(ending, move |i, m| {
                BucketedSink::new(make(i, m), bucket.clone())
            });
            return Ok(());
        }
        let g = self.g.clone();
        let stage = self.input.slot.stage;
        self.finish(ending, move |i, m| {
            BucketedSink::new(make(i, m), bucket.clone())
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
    use crate::io::sink::read_part_files_by_bucket;

    type Fmt = fn(&(String, u32), &mut Vec<u8>) -> Formatted;
    type Bucket = fn(&(String, u32), &mut String);
    type BoxedBucket = Box<dyn FnMut(&(String, u32), &mut String) + Send>;

    fn row(x: &(String, u32), b: &mut Vec<u8>) -> Formatted {
        b.extend_from_slice(format!("{},{}", x.0, x.1).as_bytes());
        Ok(())
    }

    fn bucket(x: &(String, u32), b: &mut String) {
        b.push_str("k=");
        b.push_str(&x.0);
    }

    fn sink(root: &Path, subtask: usize) -> BucketedSink<Fmt, Bucket> {
        BucketedSink::new(
            Make {
                root: root.to_path_buf(),
                subtask,
                ext: "csv",
                format: row as Fmt,
                transactional: true,
                metrics: Arc::new(StageMetrics::default()),
            },
            bucket as Bucket,
        )
    }

    fn rows(root: &Path) -> Vec<(String, String)> {
        read_part_files_by_bucket(root).unwrap()
    }

    #[test]
    fn buckets_publish_with_their_checkpoint_and_roll_back_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut s = sink(root, 0);
        for (k, v) in [("a", 1), ("b", 2), ("a", 3)] {
            s.emit((k.to_string(), v), 0);
        }
        Downstream::<(String, u32)>::event(&mut s, Event::Barrier(1));
        let one = Terminal::<(String, u32)>::pre_commit(&mut s)
            .unwrap()
            .unwrap();
        let listed = String::from_utf8(one.clone()).unwrap();
        assert!(
            listed.contains(" k=a/part-0000000001-00000-0.csv"),
            "{listed}"
        );
        assert!(
            listed.contains(" k=b/part-0000000001-00000-0.csv"),
            "{listed}"
        );
        // Pre-committed: invisible until published.
        assert!(rows(root).is_empty());
        publish_part_files(root, 1, &[&one]).unwrap();
        let after_one = vec![
            ("k=a".to_string(), "a,1".to_string()),
            ("k=a".into(), "a,3".into()),
            ("k=b".into(), "b,2".into()),
        ];
        assert_eq!(rows(root), after_one);
        // Publishing again is harmless.
        publish_part_files(root, 1, &[&one]).unwrap();

        // A bucket first seen after barrier 1 belongs to checkpoint 2.
        s.emit(("c".to_string(), 4), 0);
        s.emit(("a".to_string(), 5), 0);
        Downstream::<(String, u32)>::event(&mut s, Event::Barrier(2));
        let two = Terminal::<(String, u32)>::pre_commit(&mut s)
            .unwrap()
            .unwrap();
        let listed = String::from_utf8(two.clone()).unwrap();
        assert!(listed.contains(" k=c/part-0000000002-00000-"), "{listed}");
        publish_part_files(root, 2, &[&two]).unwrap();
        assert_eq!(rows(root).len(), 5);

        // Restoring checkpoint 1 removes checkpoint 2's files and the bucket left empty.
        recover_part_files(root, Some((1, vec![one]))).unwrap();
        assert_eq!(rows(root), after_one);
        assert!(!root.join("k=c").exists());
    }

    #[test]
    fn a_bucket_that_is_not_a_plain_relative_path_fails_the_job() {
        let dir = tempfile::tempdir().unwrap();
        for bad in ["", "../up", "a//b", ".hidden", "_meta", "a/./b"] {
            let mut s: BucketedSink<Fmt, BoxedBucket> = BucketedSink::new(
                sink(dir.path(), 0).make,
                Box::new(move |_, b| b.push_str(bad)),
            );
            s.emit(("x".to_string(), 1), 0);
            let err = Terminal::<(String, u32)>::pre_commit(&mut s).unwrap_err();
            assert!(
                err.to_string().contains("is not a relative path"),
                "{bad}: {err}"
            );
        }
    }
}
