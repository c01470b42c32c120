//! Generators: `generate`, `generate_n` and `generate_paced`, parallel over index ranges.
use crate::api::env::Env;
use crate::api::stream::Stream;
use crate::error::Result;
use crate::record::Batch;
use crate::runtime::operator::Identity;
use crate::runtime::panic::{OpName, PanicGuard};
use crate::runtime::stage::{Input, Poll};
use crate::runtime::task::TaskCx;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Shared position of a generator's parallel instances.
pub(crate) struct GeneratorRange {
    pub(crate) next: AtomicU64,
    pub(crate) limit: Option<u64>,
}

/// Generates record `f(i)` for every index `i`, taking index ranges in order.
pub(crate) struct GeneratorInput<F> {
    pub(crate) range: Arc<GeneratorRange>,
    pub(crate) f: F,
    pub(crate) batch: u64,
    pub(crate) name: OpName,
    pub(crate) pace: Option<Pace>,
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
        let from = self.range.next.fetch_add(take, Ordering::Relaxed);
        let to = match self.range.limit {
            Some(l) if from >= l => return Ok(Poll::End),
            Some(l) => (from + take).min(l),
            None => from.saturating_add(take),
        };
        out.data.reserve(self.batch as usize);
        let guard = PanicGuard(&self.name);
        for i in from..to {
            out.data.push((self.f)(i));
        }
        std::mem::forget(guard);
        Ok(Poll::Data)
    }
}

impl Env {
    /// An unbounded parallel source of `f(0), f(1), f(2), ...`; it runs until the job is
    /// stopped (Ctrl-C). Indices are handed out in ranges, in order, across subtasks.
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
        let range = Arc::new(GeneratorRange {
            next: AtomicU64::new(0),
            limit,
        });
        let name = OpName::new("generate", std::panic::Location::caller());
        let desc = match limit {
            Some(n) => format!("generate({n} records)"),
            None => "generate(unbounded)".to_string(),
        };
        let batch = cfg.batch_size as u64;
        self.source(cfg.parallelism, desc, limit.is_some(), move |_, _| {
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
            }) as Box<dyn Input<T>>
        })
    }
}
