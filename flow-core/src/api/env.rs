//! The job environment: creates sources, holds the graph under construction and runs it.
use super::stream::Stream;
use super::summary::JobSummary;
use crate::config::{Config, PlanFormat};
use crate::error::{Error, Result};
use crate::graph::plan::Plan;
use crate::graph::{Graph, GraphRef, InputSpec};
use crate::runtime::checkpoint::Coordinator;
use crate::runtime::metrics::StageMetrics;
use crate::runtime::operator::Identity;
use crate::runtime::stage::Input;
use crate::runtime::task::{JobShared, TaskBody};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Stops a running job from another thread. Without persisted checkpoints, sources end and
/// the job drains and finishes (windows fire, bounded aggregates emit). With them
/// (`--checkpoint-dir`), the job stops at a checkpoint instead, as Flink's stop with savepoint
/// does: sources inject one more barrier and read no further, and once that checkpoint is
/// durable every task is cancelled without draining, so `--restore` resumes exactly there and
/// the output of the two runs together is that of a run never stopped.
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
    observers: Vec<Arc<dyn super::monitor::JobObserver>>,
}

impl Env {
    /// An environment with the given configuration.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2).name("squares"));
    /// let squares = env.from_iter(1..=3).map(|x| x * x).collect();
    /// env.execute()?;
    /// assert_eq!(squares.take(), vec![1, 4, 9]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn new(config: Config) -> Self {
        Env {
            g: Rc::new(RefCell::new(Graph::new(config))),
            stop: StopHandle::default(),
            observers: Vec::new(),
        }
    }

    /// Tells `observer` about every job this environment runs from now on, as it starts
    /// (the web dashboard is one; see [`super::monitor`]).
    pub fn observe(&mut self, observer: Arc<dyn super::monitor::JobObserver>) {
        self.observers.push(observer);
    }

    /// The job's configuration.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(3));
    /// assert_eq!(env.config().get_parallelism(), 3);
    /// let items = env.from_vec(vec![1, 2, 3, 4]).collect();
    /// assert_eq!(env.plan().stages[0].parallelism, 3); // `from_vec` runs that many subtasks
    /// env.execute()?;
    /// let mut got = items.take();
    /// got.sort();
    /// assert_eq!(got, vec![1, 2, 3, 4]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn config(&self) -> Config {
        self.g.borrow().config.clone()
    }

    /// A handle that stops the job (what Ctrl-C does for a job binary). A stop requested
    /// before [`Env::execute`] stops the job as soon as it starts.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// # use std::time::Duration;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let small = env.generate(|i| i).filter(|i| *i < 3).collect(); // unbounded
    /// let stop = env.stop_handle();
    /// let stopper = std::thread::spawn(move || {
    ///     std::thread::sleep(Duration::from_millis(100));
    ///     stop.stop();
    /// });
    /// env.execute()?; // returns once stopped
    /// stopper.join().expect("stopper thread");
    /// let mut got = small.take();
    /// got.sort();
    /// assert_eq!(got, vec![0, 1, 2]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Adds a source stage of `parallelism` subtasks whose inputs `make` creates.
    #[track_caller]
    pub(crate) fn source<T: Send + 'static>(
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

    /// Whether operators were added since the last [`Env::execute`].
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default());
    /// assert!(!env.has_pending_job());
    /// let out = env.from_iter([1, 2]).collect();
    /// assert!(env.has_pending_job());
    /// env.execute()?;
    /// assert!(!env.has_pending_job()); // the job ran: nothing is pending
    /// assert_eq!(out.take(), vec![1, 2]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn has_pending_job(&self) -> bool {
        !self.g.borrow().stages.is_empty()
    }

    /// The job's plan: which operators are fused into which stage and where the exchanges
    /// are. `Display` renders it as `--plan` prints it; [`Plan::to_json`] as JSON.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let counts = env
    ///     .from_iter(["a", "b", "a"])
    ///     .map(str::to_uppercase)
    ///     .key_by(|w| w.clone())
    ///     .count()
    ///     .collect();
    /// let plan = env.plan(); // the job built so far, without running it
    /// assert_eq!(plan.stages.len(), 2); // from_iter + map, then count after the exchange by key
    /// assert_eq!(plan.edges[0].partitioning, Partitioning::Hash { key_groups: 128 });
    /// assert!(plan.to_string().contains("count"));
    /// env.execute()?;
    /// let mut got = counts.take();
    /// got.sort();
    /// assert_eq!(got, vec![("A".to_string(), 2), ("B".to_string(), 1)]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn plan(&self) -> Plan {
        self.g.borrow().plan()
    }

    /// Runs the job built so far and waits for it to finish (a bounded job when its sources
    /// are exhausted, an unbounded one when stopped). The environment can then build and run
    /// another job.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// env.generate_n(100, |i| i).discard();
    /// let summary = env.execute()?;
    /// assert_eq!((summary.records_read(), summary.records_written()), (100, 100));
    /// // the same environment runs a second job
    /// let out = env.from_iter(["again"]).collect();
    /// env.execute()?;
    /// assert_eq!(out.take(), vec!["again"]);
    /// // a stream that ends in no sink is an error
    /// let _unfinished = env.from_iter([1]).map(|x| x + 1);
    /// assert!(env.execute().is_err());
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    pub fn execute(&mut self) -> Result<JobSummary> {
        let state_memory = self.g.borrow_mut().state_memory();
        let (config, bodies, stages, prepare, coordinator, sources, metrics, plan) = {
            let mut g = self.g.borrow_mut();
            if let Some(e) = g.deferred_error.take() {
                g.clear();
                return Err(e);
            }
            if let Some((uid, a, b)) = g.duplicate_uid() {
                let e = Error::Config(format!(
                    "the uid `{uid}` names two operators, {a} and {b}: uids must be unique"
                ));
                g.clear();
                return Err(e);
            }
            if let Some(st) = g.stages.iter().find(|s| s.terminal.is_none()) {
                let e = Error::Config(format!(
                    "the stream created at {} ({}) has no sink: end it with collect, print, \
                     write_csv, write_lines or discard",
                    st.created_at, st.head
                ));
                g.clear();
                return Err(e);
            }
            if let Some(format) = g.config.plan_only {
                match format {
                    PlanFormat::Text => print!("{}", g.plan()),
                    PlanFormat::Json => println!("{}", g.plan().to_json()),
                }
                g.clear();
                return Ok(JobSummary {
                    planned_only: true,
                    ..JobSummary::default()
                });
            }
            // Source tasks, by task id: they inject checkpoint barriers.
            let mut sources = Vec::new();
            let mut next = 0;
            for st in &g.stages {
                if st.is_source() {
                    sources.extend(next..next + st.parallelism);
                }
                next += st.parallelism;
            }
            let plan = (!self.observers.is_empty()).then(|| g.plan());
            let coordinator = Coordinator::new(g.config.barrier_interval, g.sink_subtasks);
            g.sink_subtasks = 0;
            let bodies: Vec<Box<dyn TaskBody>> = g.tasks.drain(..).flatten().collect();
            let stages = std::mem::take(&mut g.stages);
            let prepare = std::mem::take(&mut g.prepare);
            let metrics = std::mem::take(&mut g.user_metrics);
            (
                g.config.clone(),
                bodies,
                stages,
                prepare,
                coordinator,
                sources,
                metrics,
                plan,
            )
        };
        for p in prepare {
            p()?;
        }
        let mut stages = stages;
        let mut bodies = bodies;
        let checkpointing = super::recovery::start(&config, &mut stages, bodies.len())?;
        let coordinator = match &checkpointing {
            None => coordinator,
            Some(c) => {
                if let Some(view) = &c.view {
                    for b in &mut bodies {
                        b.set_restore(view.clone());
                    }
                }
                Coordinator::persisting(
                    config.barrier_interval,
                    coordinator.sinks(),
                    c.after,
                    Some((c.writer.tx.clone(), c.writer.shared.clone())),
                )
            }
        };
        let start = Instant::now();
        tracing::info!(job = %config.name, tasks = bodies.len(), parallelism = config.parallelism, "job started");
        let progress = (config.progress && std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .then(|| {
                let sources = stages
                    .iter()
                    .filter(|s| s.is_source())
                    .map(|s| s.metrics.clone())
                    .collect();
                crate::runtime::progress::Progress::start(&config.name, sources)
            });
        let shared = JobShared::with_checkpoints(
            bodies,
            config.parallelism,
            self.stop.0.clone(),
            coordinator,
            sources,
        )?;
        let live = plan.map(|plan| {
            let job = Arc::new(super::monitor::LiveJob::new(
                &config.name,
                plan,
                config.parallelism,
                stages.iter().map(|s| s.metrics.clone()).collect(),
                self.stop.0.clone(),
                config.barrier_interval,
                metrics.clone(),
                state_memory.clone(),
            ));
            job.attach(&shared);
            for o in &self.observers {
                o.job_started(job.clone());
            }
            job
        });
        let mut result = shared.run_to_completion();
        drop(progress);
        let mut savepoint = None;
        if let Some(c) = checkpointing {
            // A job that ended well takes a last checkpoint: its final positions and state. A
            // job stopped at a checkpoint has it already.
            let stopped_at = shared.stopped_at();
            let last =
                (result.is_ok() && stopped_at.is_none()).then(|| shared.last_requested() + 1);
            let saved = c.writer.shared.clone();
            let r = c.writer.shutdown(last, stopped_at);
            if result.is_ok() {
                result = r;
            }
            savepoint = saved.savepoint.lock().take();
        }
        if let Some(job) = &live {
            job.finish(&shared, result.as_ref().err().map(|e| e.to_string()));
        }
        // The stop (if any) was for this job: the next one starts afresh.
        self.stop.0.store(false, Ordering::SeqCst);
        let mut summary = JobSummary::new(&config.name, start.elapsed(), &stages);
        summary.checkpoints = shared.completed_checkpoints();
        // The copy of changed state after a barrier pauses processing in steps: its longest.
        let steps = summary.checkpoints.iter().map(|c| c.pause).max();
        summary.snapshot_pause = summary.snapshot_pause.max(steps.unwrap_or_default());
        summary.savepoint = savepoint;
        summary.stopped_at = shared.stopped_at();
        summary.state_spill = state_memory.totals();
        summary.metrics = metrics
            .iter()
            .map(|(n, m)| (n.clone(), m.value()))
            .collect();
        tracing::info!(
            job = %config.name,
            elapsed_ms = summary.elapsed.as_millis() as u64,
            ok = result.is_ok(),
            records_read = summary.records_read(),
            records_written = summary.records_written(),
            bytes_read = summary.bytes_read(),
            checkpoints = summary.checkpoints.len(),
            "job finished"
        );
        result?;
        if config.report {
            eprint!("{summary}");
        }
        Ok(summary)
    }
}
