//! Generators: `generate`, `generate_n` and `generate_paced`, parallel over index ranges.
//!
//! With checkpoints, a job restored from a checkpoint generates exactly the indices the
//! checkpoint had not generated, at any parallelism.
use super::position::{decode_blob, encode_blob, union_of, Cursor, Progress, Resume, Todo};
use crate::api::env::Env;
use crate::api::stream::Stream;
use crate::error::{Error, Result};
use crate::record::Batch;
use crate::runtime::operator::Identity;
use crate::runtime::panic::{OpName, PanicGuard};
use crate::runtime::stage::{Input, Poll};
use crate::runtime::task::TaskCx;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// The kind byte of a generator's position blob.
///
/// A subtask's position is the set of indices it generated (see `super::position`); each
/// poll takes and emits a whole range. Blob header: the limit (`Option<u64>`, `None` when
/// unbounded).
const KIND: u8 = b'g';

/// Shared position of a generator's parallel instances.
pub(crate) struct GeneratorRange {
    /// The next index to hand out; after a restore, its position among the indices not
    /// generated yet.
    pub(crate) next: AtomicU64,
    pub(crate) limit: Option<u64>,
    /// The indices the subtasks generated, for checkpoints.
    pub(crate) progress: Progress,
    /// After a restore: the indices the checkpoint had not generated.
    pub(crate) resume: OnceLock<Resume>,
}

impl GeneratorRange {
    /// The shared range of a generator of `readers` subtasks, up to `limit` if bounded.
    pub(crate) fn new(limit: Option<u64>, readers: usize) -> Arc<Self> {
        Arc::new(GeneratorRange {
            next: AtomicU64::new(0),
            limit,
            progress: Progress::new(readers),
            resume: OnceLock::new(),
        })
    }
}

/// Generates record `f(i)` for every index `i`, taking index ranges in order.
pub(crate) struct GeneratorInput<F> {
    pub(crate) range: Arc<GeneratorRange>,
    pub(crate) f: F,
    pub(crate) batch: u64,
    pub(crate) name: OpName,
    pub(crate) pace: Option<Pace>,
    /// The indices this subtask generated, for checkpoints.
    pub(crate) cursor: Cursor,
}

/// Limits a generator subtask to `per_second` records per second of wall time. While it
/// waits, a ticker thread of its own (never a pool thread) wakes it every 10 ms.
pub(crate) struct Pace {
    pub(crate) per_second: f64,
    pub(crate) start: Option<std::time::Instant>,
    pub(crate) produced: u64,
    pub(crate) ticker: Option<Arc<std::sync::atomic::AtomicBool>>,
}

impl Pace {
    /// How many records may be produced now.
    fn allowance(&mut self, cx: &TaskCx<'_>) -> u64 {
        let start = *self.start.get_or_insert_with(std::time::Instant::now);
        let due = (start.elapsed().as_secs_f64() * self.per_second) as u64;
        let n = due.saturating_sub(self.produced);
        if n == 0 && self.ticker.is_none() {
            let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
            self.ticker = Some(done.clone());
            let (shared, id) = (cx.shared.clone(), cx.id);
            let spawned = std::thread::Builder::new()
                .name("flow-pace".into())
                .spawn(move || {
                    while !done.load(Ordering::Relaxed) && !shared.stopping() {
                        std::thread::sleep(std::time::Duration::from_millis(10));
                        shared.notify(id);
                    }
                    // Once more: a stop requested after the last wake-up was not seen by
                    // the generator, which waits for this thread to wake it (found as a hung
                    // test: the ticker ended, the generator never polled again).
                    shared.notify(id);
                });
            if spawned.is_err() {
                // Without a ticker, do not wait: run unpaced rather than never wake.
                self.per_second = f64::INFINITY;
                return u64::MAX;
            }
        }
        n
    }
}

impl Drop for Pace {
    fn drop(&mut self) {
        if let Some(t) = &self.ticker {
            t.store(true, Ordering::Relaxed);
        }
    }
}

impl<T, F> Input<T> for GeneratorInput<F>
where
    T: Send,
    F: FnMut(u64) -> T + Send,
{
    fn poll(&mut self, cx: &TaskCx<'_>, out: &mut Batch<T>) -> Result<Poll> {
        if cx.stop_requested() {
            self.cursor.ended = true;
            return Ok(Poll::End);
        }
        let mut take = self.batch;
        if let Some(p) = self.pace.as_mut() {
            take = take.min(p.allowance(cx));
            if take == 0 {
                return Ok(Poll::Pending);
            }
            p.produced += take;
        }
        let recording = cx.checkpoints().writer().is_some();
        let from = self.range.next.fetch_add(take, Ordering::Relaxed);
        if self.range.resume.get().is_some() {
            let range = self.range.clone();
            if let Some(resume) = range.resume.get() {
                return Ok(self.poll_restored(resume, &range, from, take, recording, out));
            }
        }
        let to = match self.range.limit {
            Some(l) if from >= l => {
                self.cursor.ended = true;
                return Ok(Poll::End);
            }
            Some(l) => (from + take).min(l),
            None => from.saturating_add(take),
        };
        out.data.reserve(self.batch as usize);
        self.generate(from, to, out);
        if recording {
            // Emitted: the records go downstream before the next barrier.
            self.range
                .progress
                .record(&mut self.cursor, from, to, false);
        }
        Ok(Poll::Data)
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        let done = self.range.progress.snapshot(&mut self.cursor);
        Ok(Some(encode_blob(KIND, &self.range.limit, &done)?))
    }

    fn restore(&mut self, positions: &[&[u8]]) -> Result<()> {
        let r = self.range.clone();
        let source = self.name.kind();
        let show = |l: Option<u64>| match l {
            Some(n) => format!("{n} records"),
            None => "an unbounded sequence".to_string(),
        };
        let done = union_of(positions, |blob| {
            let (limit, done): (Option<u64>, _) = decode_blob(KIND, blob, source)?;
            if limit != r.limit {
                return Err(Error::Checkpoint(format!(
                    "{source}: input changed since the checkpoint: it generated {}, this \
                     job generates {}",
                    show(limit),
                    show(r.limit)
                )));
            }
            Ok(done)
        })?;
        // Every subtask restores the same positions: the first one installs them.
        let resume = r.resume.get_or_init(|| {
            let done = Arc::new(done);
            r.progress.install(done.clone());
            Resume {
                todo: Todo::new(&done.set, r.limit.unwrap_or(u64::MAX)),
                done,
            }
        });
        self.cursor.set_base(resume.done.clone());
        Ok(())
    }
}

impl<F> GeneratorInput<F> {
    /// A poll of a restored generator: positions `[from, from + take)` number the indices the
    /// checkpoint had not generated.
    fn poll_restored<T>(
        &mut self,
        resume: &Resume,
        range: &GeneratorRange,
        from: u64,
        take: u64,
        recording: bool,
        out: &mut Batch<T>,
    ) -> Poll
    where
        F: FnMut(u64) -> T,
    {
        let mut any = false;
        for (a, b) in resume.todo.runs(from, take) {
            if !any {
                out.data.reserve(take as usize);
                any = true;
            }
            self.generate(a, b, out);
            if recording {
                range.progress.record(&mut self.cursor, a, b, false);
            }
        }
        if !any {
            self.cursor.ended = true;
            return Poll::End;
        }
        Poll::Data
    }

    /// Appends `f(i)` for `i` in `[from, to)`.
    fn generate<T>(&mut self, from: u64, to: u64, out: &mut Batch<T>)
    where
        F: FnMut(u64) -> T,
    {
        let guard = PanicGuard(&self.name);
        for i in from..to {
            out.data.push((self.f)(i));
        }
        std::mem::forget(guard);
    }
}

impl Env {
    /// An unbounded parallel source of `f(0), f(1), f(2), ...`; it runs until the job is
    /// stopped (Ctrl-C). Indices are handed out in ranges, in order, across subtasks.
    ///
    /// With checkpoints, a job restored from a checkpoint generates exactly the indices that
    /// the checkpoint had not generated, at any parallelism (so `f` should depend on its index
    /// only). The same holds for [`Env::generate_n`] and [`Env::generate_paced`]; a restore
    /// into a generator of another `count` or `limit` fails.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let firsts = env.generate(|i| i * 10).filter(|x| *x < 30).collect();
    /// let stop = env.stop_handle();
    /// let stopper = std::thread::spawn(move || {
    ///     std::thread::sleep(Duration::from_millis(50));
    ///     stop.stop(); // what Ctrl-C does
    /// });
    /// let summary = env.execute()?;
    /// stopper.join().expect("stopper thread");
    /// let mut got = firsts.take();
    /// got.sort();
    /// assert_eq!(got, vec![0, 10, 20]);
    /// assert!(summary.records_read() >= 3);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn generate<T, F>(&mut self, f: F) -> Stream<Identity<T>>
    where
        T: Send + 'static,
        F: FnMut(u64) -> T + Clone + Send + 'static,
    {
        self.generator(None, None, f)
    }

    /// A bounded parallel source of `f(0), ..., f(count - 1)`.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let squares = env.generate_n(5, |i| i * i).collect();
    /// env.execute()?;
    /// let mut got = squares.take();
    /// got.sort();
    /// assert_eq!(got, vec![0, 1, 4, 9, 16]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn generate_n<T, F>(&mut self, count: u64, f: F) -> Stream<Identity<T>>
    where
        T: Send + 'static,
        F: FnMut(u64) -> T + Clone + Send + 'static,
    {
        self.generator(Some(count), None, f)
    }

    /// A parallel generator paced to `per_second` records per second of wall time (over all
    /// subtasks): `f(0), f(1), ...`, unbounded when `limit` is `None`. For demos and soak runs
    /// of unbounded jobs; event time should still come from the records.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::{Duration, Instant};
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// // 20 records at 200 per second: about 100 ms
    /// let ticks = env.generate_paced(200, Some(20), |i| i).collect();
    /// let start = Instant::now();
    /// env.execute()?;
    /// assert!(start.elapsed() >= Duration::from_millis(50));
    /// let mut got = ticks.take();
    /// got.sort();
    /// assert_eq!(got, (0..20).collect::<Vec<u64>>());
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn generate_paced<T, F>(
        &mut self,
        per_second: u64,
        limit: Option<u64>,
        f: F,
    ) -> Stream<Identity<T>>
    where
        T: Send + 'static,
        F: FnMut(u64) -> T + Clone + Send + 'static,
    {
        let per_subtask = per_second.max(1) as f64 / self.config().parallelism as f64;
        self.generator(limit, Some(per_subtask), f)
    }

    #[track_caller]
    fn generator<T, F>(
        &mut self,
        limit: Option<u64>,
        pace: Option<f64>,
        f: F,
    ) -> Stream<Identity<T>>
    where
        T: Send + 'static,
        F: FnMut(u64) -> T + Clone + Send + 'static,
    {
        let cfg = self.config();
        let range = GeneratorRange::new(limit, cfg.parallelism);
        let name = OpName::new("generate", std::panic::Location::caller());
        let desc = match limit {
            Some(n) => format!("generate({n} records)"),
            None => "generate(unbounded)".to_string(),
        };
        let batch = cfg.batch_size as u64;
        self.source(
            cfg.parallelism,
            desc,
            limit.is_some(),
            move |index, metrics| {
                if let Some(n) = limit {
                    metrics
                        .records_total
                        .store(n, std::sync::atomic::Ordering::Relaxed);
                }
                let pace = pace.map(|per_second| Pace {
                    per_second,
                    start: None,
                    produced: 0,
                    ticker: None,
                });
                Box::new(GeneratorInput {
                    range: range.clone(),
                    f: f.clone(),
                    batch,
                    name: name.clone(),
                    pace,
                    cursor: range.progress.cursor(index),
                }) as Box<dyn Input<T>>
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::source::position::{decode_blob, sim, Done};
    use std::collections::BTreeMap;

    fn make(limit: Option<u64>, batch: u64) -> impl FnMut(usize) -> Vec<Box<dyn Input<u64>>> {
        move |p| {
            let range = GeneratorRange::new(limit, p);
            (0..p)
                .map(|i| {
                    Box::new(GeneratorInput {
                        range: range.clone(),
                        f: |x| x,
                        batch,
                        name: OpName::new("generate", std::panic::Location::caller()),
                        pace: None,
                        cursor: range.progress.cursor(i),
                    }) as Box<dyn Input<u64>>
                })
                .collect()
        }
    }

    /// The union of the positions of a checkpoint.
    fn union(blobs: &BTreeMap<usize, Vec<u8>>) -> Done {
        let mut d = Done::default();
        for b in blobs.values() {
            d.union_with(&decode_blob::<Option<u64>>(b'g', b, "generate").unwrap().1);
        }
        d
    }

    #[test]
    fn a_restored_bounded_generator_generates_the_rest_exactly_once() {
        let runs: [&[usize]; 6] = [
            &[1, 2],
            &[2, 3],
            &[3, 1],
            &[2, 2],
            &[1, 2, 3, 1],
            &[3, 2, 1],
        ];
        for runs in runs {
            for seed in 0..12 {
                for c in [1, 4] {
                    let mut got = sim::chain(make(Some(400), 7), runs, seed, c);
                    got.sort_unstable();
                    assert_eq!(got, (0..400).collect::<Vec<u64>>(), "{runs:?} seed {seed}");
                }
            }
        }
    }

    #[test]
    fn an_unbounded_generator_resumes_after_its_checkpoint() {
        for seed in 0..10 {
            let mut carried = BTreeMap::new();
            let mut kept = Vec::new();
            for (k, p) in [2, 3, 1, 2].into_iter().enumerate() {
                let restore = (k > 0).then_some(&carried);
                let mut r = sim::run(make(None, 5)(p), restore, seed * 7 + k as u64, Some(3));
                kept.append(&mut r.kept);
                carried.extend(r.blobs);
                // The checkpoint holds exactly the indices generated before it, once each.
                let mut sorted = kept.clone();
                sorted.sort_unstable();
                let before = sorted.len();
                sorted.dedup();
                assert_eq!(sorted.len(), before, "an index generated twice");
                let mut expect = crate::io::source::position::RangeSet::default();
                for &i in &sorted {
                    expect.insert(i, i + 1);
                }
                assert_eq!(union(&carried).set, expect, "seed {seed} run {k}");
            }
        }
    }

    #[test]
    fn generator_positions_stay_small() {
        // Four subtasks taking one index at a time: each one's own indices are all holes.
        let r = sim::run(make(None, 1)(4), None, 3, Some(300));
        assert!(r.kept.len() > 1000, "{}", r.kept.len());
        for b in r.blobs.values() {
            let (_, d) = decode_blob::<Option<u64>>(b'g', b, "generate").unwrap();
            assert!(d.set.len() < 40, "a position of {} ranges", d.set.len());
        }
    }

    #[test]
    fn a_finished_generator_restores_as_finished() {
        let r = sim::run(make(Some(100), 9)(2), None, 1, Some(1_000_000));
        assert_eq!(r.kept.len(), 100);
        let again = sim::run(make(Some(100), 9)(3), Some(&r.blobs), 2, None);
        assert!(again.kept.is_empty());
    }

    #[test]
    fn a_generator_of_another_length_does_not_restore() {
        let r = sim::run(make(Some(100), 9)(2), None, 1, Some(1));
        let positions: Vec<&[u8]> = r.blobs.values().map(Vec::as_slice).collect();
        let mut other = make(Some(200), 9)(1);
        let e = other[0].restore(&positions).unwrap_err();
        assert!(
            e.to_string().contains("input changed since the checkpoint"),
            "{e}"
        );
    }
}
