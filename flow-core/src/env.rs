//! The job environment: builds the operator graph and runs it.
use crate::chain::{Identity, OpName};
use crate::error::{Error, Result};
use crate::runtime::metrics::StageMetrics;
use crate::runtime::stage::Input;
use crate::runtime::task::{JobShared, TaskBody};
use crate::source::{
    FileChunks, GeneratorInput, GeneratorRange, IterInput, LineReader, OnBadRecord, Pace,
    ParseLine, SocketInput,
};
use crate::stream::Stream;
use std::cell::RefCell;
use std::ops::Range;
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How a job runs. Build it with the chained setters.
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) name: String,
    pub(crate) parallelism: usize,
    pub(crate) max_parallelism: u32,
    pub(crate) batch_size: usize,
    pub(crate) chunk_bytes: u64,
    pub(crate) pre_aggregate_capacity: usize,
    pub(crate) progress: bool,
    pub(crate) report: bool,
    pub(crate) plan_only: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            name: "flow-job".into(),
            parallelism: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            max_parallelism: flow_state::DEFAULT_MAX_PARALLELISM,
            batch_size: 1024,
            chunk_bytes: 1 << 16,
            pre_aggregate_capacity: 1 << 17,
            progress: false,
            report: false,
            plan_only: false,
        }
    }
}

impl Config {
    /// The job's name, shown in plans, progress and logs.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Parallel subtasks per stage and threads in the pool (default: available cores).
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }
    /// Number of key groups, the upper bound for rescaling keyed state (default 128).
    pub fn max_parallelism(mut self, n: u32) -> Self {
        self.max_parallelism = n.max(1);
        self
    }
    /// Records per batch sent through an exchange (default 1024).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }
    /// Bytes per chunk that file readers take at a time (default 1 MiB).
    pub fn chunk_bytes(mut self, n: u64) -> Self {
        self.chunk_bytes = n.max(1);
        self
    }
    /// Keys held by a pre-aggregation table before it flushes (default 131072).
    pub fn pre_aggregate_capacity(mut self, n: usize) -> Self {
        self.pre_aggregate_capacity = n.max(1);
        self
    }
    /// Shows a progress line on a terminal while a bounded job runs.
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }
    /// Prints the job summary to stderr when the job ends.
    pub fn report(mut self, on: bool) -> Self {
        self.report = on;
        self
    }
    /// `execute` prints the plan instead of running the job.
    pub fn plan_only(mut self, on: bool) -> Self {
        self.plan_only = on;
        self
    }
    /// The configured parallelism.
    pub fn get_parallelism(&self) -> usize {
        self.parallelism
    }
}

/// Description of a stage, for the plan and the summary.
pub(crate) struct StageInfo {
    pub(crate) source: String,
    pub(crate) ops: Vec<String>,
    pub(crate) terminal: String,
    pub(crate) parallelism: usize,
    pub(crate) inputs: Vec<(usize, String)>,
    pub(crate) metrics: Arc<StageMetrics>,
    pub(crate) is_source: bool,
    pub(crate) created_at: String,
    pub(crate) built: bool,
}

/// The operator graph under construction.
pub(crate) struct Graph {
    pub(crate) config: Config,
    pub(crate) tasks: Vec<Option<Box<dyn TaskBody>>>,
    pub(crate) stages: Vec<StageInfo>,
    pub(crate) prepare: Vec<Box<dyn FnOnce() -> Result<()>>>,
    /// An error found while building that could not be returned where it happened.
    pub(crate) deferred_error: Option<Error>,
}

pub(crate) type GraphRef = Rc<RefCell<Graph>>;

/// A stage whose subtasks have task ids but no bodies yet.
#[derive(Clone)]
pub(crate) struct StageSlot {
    pub(crate) stage: usize,
    pub(crate) ids: Range<usize>,
    pub(crate) metrics: Arc<StageMetrics>,
}

impl Graph {
    pub(crate) fn reserve(
        &mut self,
        parallelism: usize,
        source: String,
        inputs: Vec<(usize, String)>,
        created_at: &std::panic::Location<'_>,
    ) -> StageSlot {
        let start = self.tasks.len();
        self.tasks.extend((0..parallelism).map(|_| None));
        let metrics = Arc::new(StageMetrics::default());
        let is_source = inputs.is_empty();
        self.stages.push(StageInfo {
            source,
            ops: vec![],
            terminal: String::new(),
            parallelism,
            inputs,
            metrics: metrics.clone(),
            is_source,
            created_at: format!("{}:{}", created_at.file(), created_at.line()),
            built: false,
        });
        StageSlot {
            stage: self.stages.len() - 1,
            ids: start..start + parallelism,
            metrics,
        }
    }
}

/// Makes the input of each subtask of a stage.
pub(crate) type MakeInput<T> = Box<dyn FnMut(usize) -> Box<dyn Input<T>>>;

/// A stage's input before the stage is built.
pub(crate) struct InputSpec<T> {
    pub(crate) slot: StageSlot,
    pub(crate) make: MakeInput<T>,
    pub(crate) bounded: bool,
}

/// Options of file sources.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReadOptions {
    /// What to do with a line that is not UTF-8 or not a valid record.
    pub on_bad_record: OnBadRecord,
}

impl ReadOptions {
    /// Skip (and count) bad records instead of failing.
    pub fn lenient() -> Self {
        ReadOptions {
            on_bad_record: OnBadRecord::Skip,
        }
    }
}

/// Stops a running job from another thread: sources end, and the job drains and finishes.
#[derive(Clone, Debug, Default)]
pub struct StopHandle(pub(crate) Arc<AtomicBool>);

impl StopHandle {
    /// Asks the job to stop.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst)
    }
    /// Whether a stop was asked for.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// The environment of a job: create sources from it, build the pipeline, then [`Env::execute`].
///
/// ```
/// use flow_core::prelude::*;
///
/// let mut env = Env::new(Config::default().parallelism(2));
/// let evens = env.from_iter(1..=10u32).filter(|x| x % 2 == 0).map(|x| x * x).collect();
/// env.execute()?;
/// let mut got = evens.take();
/// got.sort();
/// assert_eq!(got, vec![4, 16, 36, 64, 100]);
/// # Ok::<(), flow_core::Error>(())
/// ```
pub struct Env {
    pub(crate) g: GraphRef,
    stop: StopHandle,
}

impl Env {
    /// An environment with the given configuration.
    pub fn new(config: Config) -> Self {
        Env {
            g: Rc::new(RefCell::new(Graph {
                config,
                tasks: vec![],
                stages: vec![],
                prepare: vec![],
                deferred_error: None,
            })),
            stop: StopHandle::default(),
        }
    }

    /// The job's configuration.
    pub fn config(&self) -> Config {
        self.g.borrow().config.clone()
    }

    /// A handle that stops the job (what Ctrl-C does for a job binary).
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    #[track_caller]
    fn source<T: Send + 'static>(
        &mut self,
        parallelism: usize,
        desc: String,
        bounded: bool,
        make: impl FnMut(usize, &Arc<StageMetrics>) -> Box<dyn Input<T>> + 'static,
    ) -> Stream<Identity<T>> {
        let loc = std::panic::Location::caller();
        let slot = self.g.borrow_mut().reserve(parallelism, desc, vec![], loc);
        let metrics = slot.metrics.clone();
        let mut make = make;
        let input = InputSpec {
            slot,
            make: Box::new(move |i| make(i, &metrics)),
            bounded,
        };
        Stream::new(self.g.clone(), input)
    }

    /// A non-parallel source over an iterator (bounded when the iterator ends).
    #[track_caller]
    pub fn from_iter<I>(&mut self, iter: I) -> Stream<Identity<I::Item>>
    where
        I: IntoIterator,
        I::IntoIter: Send + 'static,
        I::Item: Send + 'static,
    {
        let mut iter = Some(iter.into_iter());
        let batch = self.config().batch_size;
        self.source(1, "from_iter".into(), true, move |_, _| {
            Box::new(IterInput {
                iter: iter.take(),
                batch,
            }) as Box<dyn Input<I::Item>>
        })
    }

    /// A parallel source over a vector: subtask `i` of `p` reads the `i`-th contiguous part.
    #[track_caller]
    pub fn from_vec<T: Send + 'static>(&mut self, items: Vec<T>) -> Stream<Identity<T>> {
        let cfg = self.config();
        let p = cfg.parallelism;
        let n = items.len();
        let mut parts: Vec<Option<Vec<T>>> = Vec::with_capacity(p);
        let mut rest = items;
        for i in (0..p).rev() {
            let cut = n * i / p;
            parts.push(Some(rest.split_off(cut.min(rest.len()))));
        }
        parts.reverse();
        let batch = cfg.batch_size;
        self.source(p, format!("from_vec({n} records)"), true, move |i, _| {
            let part = parts.get_mut(i).and_then(Option::take).unwrap_or_default();
            Box::new(IterInput {
                iter: Some(part.into_iter()),
                batch,
            }) as Box<dyn Input<T>>
        })
    }

    /// Reads a text file as lines (without line breaks), in parallel chunks.
    ///
    /// Fails when the file cannot be opened; a line that is not UTF-8 fails the job with an
    /// error naming the file and line.
    #[track_caller]
    pub fn read_lines(&mut self, path: impl AsRef<Path>) -> Result<Stream<Identity<String>>> {
        self.read_lines_with(path, ReadOptions::default())
    }

    /// [`Env::read_lines`] with options (e.g. skipping lines that are not UTF-8).
    #[track_caller]
    pub fn read_lines_with(
        &mut self,
        path: impl AsRef<Path>,
        options: ReadOptions,
    ) -> Result<Stream<Identity<String>>> {
        self.read_parsed(path.as_ref(), "read_lines", options, || {
            Box::new(|l: &str| Ok(Some(l.to_owned())))
        })
    }

    /// Reads a CSV file whose rows parse as `T` (a tuple of `FromStr` fields), in parallel
    /// chunks. A malformed row fails the job with an error naming the file, line and field,
    /// or is skipped and counted with [`ReadOptions::lenient`].
    #[track_caller]
    pub fn read_csv<T: crate::csv::FromCsv + Send + 'static>(
        &mut self,
        path: impl AsRef<Path>,
        options: ReadOptions,
    ) -> Result<Stream<Identity<T>>> {
        self.read_parsed(path.as_ref(), "read_csv", options, || {
            let mut scratch = Vec::new();
            Box::new(move |l: &str| {
                if l.is_empty() {
                    return Ok(None);
                }
                if !l.contains('"') {
                    // Common case: no quoting, at most 16 fields: split on the stack.
                    let mut arr = [""; 16];
                    let mut n = 0;
                    for f in l.split(',') {
                        if n == arr.len() {
                            n += 1;
                            break;
                        }
                        arr[n] = f;
                        n += 1;
                    }
                    if n <= arr.len() {
                        return T::from_fields(&arr[..n]).map(Some);
                    }
                }
                let fields = crate::csv::split_fields(l, &mut scratch)?;
                T::from_fields(&fields).map(Some)
            })
        })
    }

    #[track_caller]
    fn read_parsed<T: Send + 'static>(
        &mut self,
        path: &Path,
        kind: &str,
        options: ReadOptions,
        parser: impl Fn() -> ParseLine<T> + 'static,
    ) -> Result<Stream<Identity<T>>> {
        let cfg = self.config();
        let chunks = FileChunks::open(path, cfg.chunk_bytes, cfg.parallelism)?;
        let name = OpName::new(kind, std::panic::Location::caller());
        let desc = format!("{kind}({})", path.display());
        let total = chunks.len;
        Ok(
            self.source(cfg.parallelism, desc, true, move |index, metrics| {
                metrics.bytes_total.store(total, Ordering::Relaxed);
                Box::new(LineReader {
                    chunks: chunks.clone(),
                    index,
                    file: None,
                    buf: Vec::new(),
                    parse: parser(),
                    on_bad: options.on_bad_record,
                    metrics: metrics.clone(),
                    name: name.clone(),
                }) as Box<dyn Input<T>>
            }),
        )
    }

    /// An unbounded parallel source of `f(0), f(1), f(2), ...`; it runs until the job is
    /// stopped (Ctrl-C). Indices are handed out in ranges, in order, across subtasks.
    #[track_caller]
    pub fn generate<T, F>(&mut self, f: F) -> Stream<Identity<T>>
    where
        T: Send + 'static,
        F: FnMut(u64) -> T + Clone + Send + 'static,
    {
        self.generator(None, None, f)
    }

    /// A bounded parallel source of `f(0), ..., f(count - 1)`.
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

    /// Lines of text from a TCP server at `address` (`host:port`), as Flink's
    /// `socketTextStream`. Unbounded: it ends when the server closes the connection or the job
    /// is stopped. Non-parallel.
    #[track_caller]
    pub fn socket_lines(&mut self, address: impl Into<String>) -> Stream<Identity<String>> {
        let address = address.into();
        self.source(1, format!("socket_lines({address})"), false, move |_, _| {
            Box::new(SocketInput {
                address: address.clone(),
                rx: None,
                done: false,
            }) as Box<dyn Input<String>>
        })
    }

    /// Whether operators were added since the last [`Env::execute`].
    pub fn has_pending_job(&self) -> bool {
        !self.g.borrow().stages.is_empty()
    }

    /// The job's operator graph: which operators are fused into which stage and where the
    /// exchanges are.
    pub fn plan(&self) -> String {
        let g = self.g.borrow();
        let mut s = format!(
            "job `{}`: {} stage(s), parallelism {}, {} key groups\n",
            g.config.name,
            g.stages.len(),
            g.config.parallelism,
            g.config.max_parallelism
        );
        for (i, st) in g.stages.iter().enumerate() {
            for (from, how) in &st.inputs {
                s.push_str(&format!("  stage {from} ==[{how}]==> stage {i}\n"));
            }
            s.push_str(&format!(
                "stage {i} ({} subtask{}): {}\n",
                st.parallelism,
                plural(st.parallelism),
                st.source
            ));
            for op in &st.ops {
                s.push_str(&format!("    -> {op}\n"));
            }
            if st.built {
                s.push_str(&format!("    => {}\n", st.terminal));
            } else {
                s.push_str(&format!(
                    "    => (no sink: the stream created at {} is never consumed)\n",
                    st.created_at
                ));
            }
        }
        s
    }

    /// Runs the job built so far and waits for it to finish (a bounded job when its sources
    /// are exhausted, an unbounded one when stopped). The environment can then build and run
    /// another job.
    pub fn execute(&mut self) -> Result<JobSummary> {
        let (config, bodies, stages, prepare) = {
            let mut g = self.g.borrow_mut();
            if let Some(e) = g.deferred_error.take() {
                return Err(e);
            }
            if let Some(st) = g.stages.iter().find(|s| !s.built) {
                return Err(Error::Config(format!(
                    "the stream created at {} ({}) has no sink: end it with collect, print, write_csv, \
                     write_lines or discard",
                    st.created_at, st.source
                )));
            }
            if g.config.plan_only {
                drop(g);
                print!("{}", self.plan());
                let mut g = self.g.borrow_mut();
                g.tasks.clear();
                g.stages.clear();
                g.prepare.clear();
                return Ok(JobSummary {
                    planned_only: true,
                    ..JobSummary::default()
                });
            }
            let bodies: Vec<Box<dyn TaskBody>> = g.tasks.drain(..).flatten().collect();
            let stages = std::mem::take(&mut g.stages);
            let prepare = std::mem::take(&mut g.prepare);
            (g.config.clone(), bodies, stages, prepare)
        };
        for p in prepare {
            p()?;
        }
        self.stop.0.store(false, Ordering::SeqCst);
        let start = Instant::now();
        tracing::info!(job = %config.name, tasks = bodies.len(), parallelism = config.parallelism, "job started");
        let progress = (config.progress && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .then(|| crate::runtime::progress::Progress::start(&config.name, &stages));
        let shared = JobShared::new(bodies, config.parallelism, self.stop.0.clone())?;
        let result = shared.run_to_completion();
        drop(progress);
        let summary = JobSummary::new(&config.name, start.elapsed(), &stages);
        tracing::info!(job = %config.name, elapsed_ms = summary.elapsed.as_millis() as u64, ok = result.is_ok(), "job finished");
        result?;
        if config.report {
            eprint!("{summary}");
        }
        Ok(summary)
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// What one stage did.
#[derive(Clone, Debug, Default)]
pub struct StageSummary {
    /// The stage's source or upstream exchange and its operators.
    pub name: String,
    /// Number of subtasks.
    pub parallelism: usize,
    /// Records that entered the stage.
    pub records_in: u64,
    /// Records written by the stage's sink (0 when it ends in an exchange).
    pub records_out: u64,
    /// Bytes read by a file source.
    pub bytes_read: u64,
    /// Records skipped by a lenient source.
    pub skipped: u64,
    /// Records that arrived after their windows had closed (see the late side output).
    pub late: u64,
    /// Time the stage's subtasks were busy, summed.
    pub busy: Duration,
    /// How often a subtask waited for room downstream.
    pub backpressured: u64,
    /// Whether the stage reads a source.
    pub is_source: bool,
}

/// What a finished job did: per-stage counters and wall time.
#[derive(Clone, Debug, Default)]
pub struct JobSummary {
    /// The job's name.
    pub name: String,
    /// Wall time from start to end.
    pub elapsed: Duration,
    /// Per-stage counters, in stage order.
    pub stages: Vec<StageSummary>,
    /// True when the environment only printed its plan (`--plan`).
    pub planned_only: bool,
}

impl JobSummary {
    fn new(name: &str, elapsed: Duration, stages: &[StageInfo]) -> Self {
        let get = StageMetrics::get;
        JobSummary {
            name: name.to_string(),
            elapsed,
            planned_only: false,
            stages: stages
                .iter()
                .map(|s| {
                    let m = &s.metrics;
                    let mut name = s.source.clone();
                    for op in &s.ops {
                        name.push_str(" -> ");
                        name.push_str(op.split(" (").next().unwrap_or(op));
                    }
                    name.push_str(" => ");
                    name.push_str(&s.terminal);
                    StageSummary {
                        name,
                        parallelism: s.parallelism,
                        records_in: get(&m.records_in),
                        records_out: get(&m.records_out),
                        bytes_read: get(&m.bytes_read),
                        skipped: get(&m.skipped),
                        late: get(&m.late),
                        busy: Duration::from_nanos(get(&m.busy_ns)),
                        backpressured: get(&m.backpressured),
                        is_source: s.is_source,
                    }
                })
                .collect(),
        }
    }

    /// Records read by the job's sources.
    pub fn records_read(&self) -> u64 {
        self.stages
            .iter()
            .filter(|s| s.is_source)
            .map(|s| s.records_in)
            .sum()
    }

    /// Bytes read by the job's file sources.
    pub fn bytes_read(&self) -> u64 {
        self.stages.iter().map(|s| s.bytes_read).sum()
    }

    /// Records written by the job's sinks.
    pub fn records_written(&self) -> u64 {
        self.stages.iter().map(|s| s.records_out).sum()
    }

    /// Input records skipped by lenient sources.
    pub fn records_skipped(&self) -> u64 {
        self.stages.iter().map(|s| s.skipped).sum()
    }

    /// Records that arrived too late for their windows.
    pub fn records_late(&self) -> u64 {
        self.stages.iter().map(|s| s.late).sum()
    }
}

impl std::fmt::Display for JobSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        writeln!(f, "job `{}` finished in {:.3} s", self.name, secs)?;
        for (i, s) in self.stages.iter().enumerate() {
            writeln!(
                f,
                "  stage {i} x{}: {} in, {} out, busy {:.3} s, backpressured {}x  [{}]",
                s.parallelism,
                s.records_in,
                s.records_out,
                s.busy.as_secs_f64(),
                s.backpressured,
                s.name
            )?;
        }
        let bytes = self.bytes_read();
        if bytes > 0 {
            writeln!(
                f,
                "  read {:.1} MB at {:.1} MB/s",
                bytes as f64 / 1e6,
                bytes as f64 / 1e6 / secs
            )?;
        }
        let late = self.records_late();
        if late > 0 {
            writeln!(f, "  {late} record(s) arrived after their windows closed")?;
        }
        let skipped = self.records_skipped();
        if skipped > 0 {
            writeln!(
                f,
                "  skipped {skipped} bad input record(s); see the warnings above"
            )?;
        }
        Ok(())
    }
}
