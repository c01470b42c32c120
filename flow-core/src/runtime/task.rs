//! Subtasks as rayon tasks.
//!
//! Every parallel instance of a stage is a [`TaskBody`]. A body is never run by two threads at
//! once: its [`Task`] moves through the states below, and only the thread that moved it to
//! `SCHEDULED` spawns it on the pool.
//!
//! The states and their transitions are [`TaskState`]'s (see `task_state`).
//!
//! A step runs a bounded budget of batches and then yields, so that a source which always has
//! input cannot monopolise a worker. A step never blocks: a subtask with nothing to read, or
//! whose output channel is full, returns `Idle`, and whoever frees it (a producer that sends,
//! a consumer that receives) notifies it. A notification that arrives while the task runs sets
//! `NOTIFIED`, so the task runs once more instead of sleeping through it: no wakeup is lost.
//! Idle pool threads sleep in rayon, so an idle job uses no CPU.
//!
//! Memory ordering: see `task_state`, whose protocol is model-checked with loom.
use super::checkpoint::Coordinator;
use super::panic::take_panicked_op;
use super::task_state::TaskState;
use crate::error::{Error, Result};
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How soon a due checkpoint is asked for again while the previous one is still being written.
const IN_FLIGHT_RECHECK: Duration = Duration::from_millis(5);

/// Index of a task in its job.
pub(crate) type TaskId = usize;

/// What a step asks the scheduler to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// More work is ready: run again after other tasks had their turn.
    Yield,
    /// Nothing to do until notified (no input, or output channels full).
    Idle,
    /// Finished: never run again.
    Done,
}

/// The code of one subtask.
pub(crate) trait TaskBody: Send {
    /// Runs a bounded amount of work.
    fn step(&mut self, cx: &TaskCx<'_>) -> Result<Step>;
    /// The subtask's display name, used when a panic cannot be traced to an operator.
    fn name(&self) -> String;
    /// Hands the subtask the checkpoint it restores before its first record.
    fn set_restore(&mut self, _view: super::snapshot::Restore) {}
}

struct Task {
    state: TaskState,
    body: Mutex<Option<Box<dyn TaskBody>>>,
}

/// The running job: its tasks, its pool and how it ends.
pub(crate) struct JobShared {
    tasks: Vec<Task>,
    pool: rayon::ThreadPool,
    cancelled: AtomicBool,
    error: Mutex<Option<Error>>,
    remaining: AtomicUsize,
    finished: (Mutex<bool>, Condvar),
    stop: Arc<AtomicBool>,
    /// With persisted checkpoints, a stop ends at a checkpoint rather than by draining: its
    /// id once requested (0: none). Sources inject barriers up to it, then read no more.
    stop_at: AtomicU64,
    /// Whether the job ended at `stop_at` (cancelled once that checkpoint was durable).
    stopped: AtomicBool,
    timers: super::timer::TimerService,
    checkpoints: Coordinator,
    /// The tasks that read sources: they inject checkpoint barriers.
    sources: Vec<TaskId>,
}

/// What a step may do besides its own work.
pub(crate) struct TaskCx<'a> {
    pub(crate) shared: &'a Arc<JobShared>,
    pub(crate) id: TaskId,
}

impl TaskCx<'_> {
    /// Schedules task `id` if it is idle.
    pub(crate) fn notify(&self, id: TaskId) {
        self.shared.notify(id)
    }
    /// Notifies this task at `at` (wall clock).
    pub(crate) fn wake_at(&self, at: std::time::Instant) {
        self.shared.timers.wake_at(self.shared, at, self.id)
    }
    /// Whether the job was asked to stop (Ctrl-C) and drains: sources end early. A job with
    /// persisted checkpoints does not drain; it stops at a checkpoint ([`TaskCx::stop_at`]).
    pub(crate) fn stop_requested(&self) -> bool {
        self.shared.stop.load(Ordering::Relaxed) && self.shared.checkpoints.writer().is_none()
    }
    /// The checkpoint a stop of a job with persisted checkpoints ends at, once requested:
    /// sources inject barriers up to it and then read nothing more.
    pub(crate) fn stop_at(&self) -> Option<u64> {
        Some(self.shared.stop_at.load(Ordering::Acquire)).filter(|&s| s != 0)
    }
    /// The job's checkpoint coordinator.
    pub(crate) fn checkpoints(&self) -> &Coordinator {
        &self.shared.checkpoints
    }
}

impl JobShared {
    #[cfg(test)]
    pub(crate) fn new(
        bodies: Vec<Box<dyn TaskBody>>,
        threads: usize,
        stop: Arc<AtomicBool>,
    ) -> Result<Arc<Self>> {
        Self::with_checkpoints(bodies, threads, stop, Coordinator::new(None, 0), vec![])
    }

    /// A job whose `sources` inject the barriers `checkpoints` asks for.
    pub(crate) fn with_checkpoints(
        bodies: Vec<Box<dyn TaskBody>>,
        threads: usize,
        stop: Arc<AtomicBool>,
        checkpoints: Coordinator,
        sources: Vec<TaskId>,
    ) -> Result<Arc<Self>> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("flow-worker-{i}"))
            .build()
            .map_err(|e| Error::Spawn {
                what: "worker pool",
                source: std::io::Error::other(e),
            })?;
        let n = bodies.len();
        Ok(Arc::new(JobShared {
            tasks: bodies
                .into_iter()
                .map(|b| Task {
                    state: TaskState::new(),
                    body: Mutex::new(Some(b)),
                })
                .collect(),
            pool,
            cancelled: AtomicBool::new(false),
            stop_at: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
            error: Mutex::new(None),
            remaining: AtomicUsize::new(n),
            finished: (Mutex::new(n == 0), Condvar::new()),
            stop,
            timers: Default::default(),
            checkpoints,
            sources,
        }))
    }

    /// Schedules every task once and blocks the calling (non-pool) thread until all are done.
    pub(crate) fn run_to_completion(self: &Arc<Self>) -> Result<()> {
        for id in 0..self.tasks.len() {
            self.notify(id);
        }
        let (lock, cv) = &self.finished;
        let mut done = lock.lock();
        // This thread is the checkpoint coordinator's clock while it waits for the end.
        let mut next = self.checkpoints.interval.map(|d| (d, Instant::now() + d));
        let persisting = self.checkpoints.writer().is_some();
        while !*done {
            if persisting && self.stop.load(Ordering::Relaxed) {
                drop(done);
                self.stop_at_checkpoint();
                done = lock.lock();
                if *done {
                    break;
                }
                if self.stop_at.load(Ordering::Acquire) != 0 {
                    // No more periodic checkpoints: the job ends at this one.
                    next = None;
                }
            }
            match next {
                None if !persisting => cv.wait(&mut done),
                None => {
                    cv.wait_for(&mut done, super::persist::POLL);
                }
                Some((every, at)) => {
                    let at = if persisting {
                        at.min(Instant::now() + super::persist::POLL)
                    } else {
                        at
                    };
                    if cv.wait_until(&mut done, at).timed_out()
                        && !*done
                        && next.is_some_and(|(_, t)| Instant::now() >= t)
                    {
                        if self.checkpoints.in_flight() {
                            // Due, but the last one is not durable yet: look again shortly.
                            next = Some((every, Instant::now() + IN_FLIGHT_RECHECK));
                            continue;
                        }
                        self.checkpoints.request();
                        for &id in &self.sources {
                            self.notify(id);
                        }
                        next = Some((every, Instant::now() + every));
                    }
                }
            }
            if let Some(e) = self.checkpoints.writer_failed() {
                drop(done);
                self.fail(e);
                done = lock.lock();
            }
        }
        drop(done);
        self.timers.shutdown();
        match self.error.lock().take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(crate) fn notify(self: &Arc<Self>, id: TaskId) {
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        if task.state.notify() {
            self.spawn(id);
        }
    }

    fn spawn(self: &Arc<Self>, id: TaskId) {
        let me = Arc::clone(self);
        // FIFO: a task that yields goes behind the tasks notified meanwhile (fairness; keeps
        // parallel sources close together in event time).
        self.pool.spawn_fifo(move || me.run(id));
    }

    fn run(self: &Arc<Self>, id: TaskId) {
        let task = &self.tasks[id];
        task.state.start_running();
        let mut slot = task.body.lock();
        let outcome = match slot.as_mut() {
            None => Ok(Step::Done),
            Some(_) if self.cancelled.load(Ordering::Acquire) => Ok(Step::Done),
            Some(body) => {
                let cx = TaskCx { shared: self, id };
                match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| body.step(&cx))) {
                    Ok(r) => r,
                    Err(payload) => {
                        let operator = take_panicked_op()
                            .map(|s| s.to_string())
                            .unwrap_or_else(|| body.name());
                        Err(Error::OperatorPanic {
                            operator,
                            message: panic_message(&*payload),
                        })
                    }
                }
            }
        };
        let step = match outcome {
            Ok(s) => s,
            Err(e) => {
                self.fail(e);
                Step::Done
            }
        };
        match step {
            Step::Yield => {
                drop(slot);
                task.state.finish_yield();
                self.spawn(id);
            }
            Step::Idle => {
                drop(slot);
                if task.state.finish_idle() {
                    // NOTIFIED while running: run again.
                    self.spawn(id);
                }
            }
            Step::Done => {
                // Dropping the body drops its channel ends, which wakes nobody by itself, so
                // consumers are told through End events sent before a body finishes.
                let body = slot.take();
                drop(slot);
                drop(body);
                task.state.finish_done();
                if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                    let (lock, cv) = &self.finished;
                    *lock.lock() = true;
                    cv.notify_all();
                }
            }
        }
    }

    /// A stop of a job with persisted checkpoints (Flink's stop with savepoint, without
    /// drain): requests a checkpoint for sources to end at, and once it is durable cancels
    /// every task. Nothing after that checkpoint is committed, so a restore resumes exactly
    /// where the job stopped, with the operators' state as it was (not drained: windows did
    /// not fire early, bounded aggregates did not emit).
    fn stop_at_checkpoint(self: &Arc<Self>) {
        let s = self.stop_at.load(Ordering::Acquire);
        if s == 0 {
            let id = self.checkpoints.request();
            tracing::warn!("stopping at checkpoint {id}");
            self.stop_at.store(id, Ordering::Release);
            for &t in &self.sources {
                self.notify(t);
            }
            return;
        }
        match self.checkpoints.durable(s) {
            None => {}
            Some(Ok(())) => {
                self.stopped.store(true, Ordering::Release);
                if !self.cancelled.swap(true, Ordering::AcqRel) {
                    for id in 0..self.tasks.len() {
                        self.notify(id);
                    }
                }
            }
            Some(Err(e)) => self.fail(e),
        }
    }

    /// The checkpoint the job stopped at, if it was stopped at one (and not drained).
    pub(crate) fn stopped_at(&self) -> Option<u64> {
        self.stopped
            .load(Ordering::Acquire)
            .then(|| self.stop_at.load(Ordering::Acquire))
    }

    /// Whether the job is stopping (asked to stop, or cancelled after an error).
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.cancelled.load(Ordering::Relaxed)
    }

    /// The highest checkpoint id requested.
    pub(crate) fn last_requested(&self) -> u64 {
        self.checkpoints.requested()
    }

    /// The checkpoints that failed, in order.
    pub(crate) fn failed_checkpoints(&self) -> Vec<super::checkpoint::FailedCheckpoint> {
        self.checkpoints.failed()
    }

    /// The checkpoint being taken, if any.
    pub(crate) fn pending_checkpoint(&self) -> Option<u64> {
        self.checkpoints.pending()
    }

    /// The checkpoints that completed, in order.
    pub(crate) fn completed_checkpoints(&self) -> Vec<super::checkpoint::CheckpointStats> {
        self.checkpoints.completed()
    }

    /// Records the job's first error and cancels every task.
    pub(crate) fn fail(self: &Arc<Self>, e: Error) {
        {
            let mut slot = self.error.lock();
            if slot.is_none() {
                // Returned to the caller of `execute`, which reports it: log it only for
                // those who trace the runtime.
                tracing::debug!(error = %e, "job failed");
                *slot = Some(e);
            }
        }
        if !self.cancelled.swap(true, Ordering::AcqRel) {
            for id in 0..self.tasks.len() {
                self.notify(id);
            }
        }
    }
}

impl super::timer::Wake for JobShared {
    fn wake(self: &Arc<Self>, id: usize) {
        self.notify(id)
    }
    fn spawn_failed(self: &Arc<Self>, source: std::io::Error) {
        self.fail(Error::Spawn {
            what: "timer",
            source,
        })
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(non-string panic payload)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts down, yielding after every step; the last one to finish records the order.
    struct Countdown(u32, Arc<Mutex<Vec<usize>>>, usize);
    impl TaskBody for Countdown {
        fn step(&mut self, _cx: &TaskCx<'_>) -> Result<Step> {
            if self.0 == 0 {
                self.1.lock().push(self.2);
                return Ok(Step::Done);
            }
            self.0 -= 1;
            Ok(Step::Yield)
        }
        fn name(&self) -> String {
            "countdown".into()
        }
    }

    struct Panics;
    impl TaskBody for Panics {
        fn step(&mut self, _cx: &TaskCx<'_>) -> Result<Step> {
            panic!("user code failed")
        }
        fn name(&self) -> String {
            "panics".into()
        }
    }

    /// Goes idle until another task notifies it.
    struct Waiter(Arc<AtomicBool>);
    impl TaskBody for Waiter {
        fn step(&mut self, _cx: &TaskCx<'_>) -> Result<Step> {
            Ok(if self.0.load(Ordering::Acquire) {
                Step::Done
            } else {
                Step::Idle
            })
        }
        fn name(&self) -> String {
            "waiter".into()
        }
    }
    struct Waker(Arc<AtomicBool>, TaskId);
    impl TaskBody for Waker {
        fn step(&mut self, cx: &TaskCx<'_>) -> Result<Step> {
            self.0.store(true, Ordering::Release);
            cx.notify(self.1);
            Ok(Step::Done)
        }
        fn name(&self) -> String {
            "waker".into()
        }
    }

    #[test]
    fn all_tasks_run_to_completion_on_one_thread() {
        let order = Arc::new(Mutex::new(vec![]));
        let bodies: Vec<Box<dyn TaskBody>> = (0..8)
            .map(|i| Box::new(Countdown(100, order.clone(), i)) as Box<dyn TaskBody>)
            .collect();
        let job = JobShared::new(bodies, 1, Arc::default()).unwrap();
        job.run_to_completion().unwrap();
        assert_eq!(order.lock().len(), 8);
    }

    #[test]
    fn a_panic_becomes_an_error_and_cancels_the_rest() {
        let flag = Arc::new(AtomicBool::new(false));
        let bodies: Vec<Box<dyn TaskBody>> = vec![Box::new(Waiter(flag)), Box::new(Panics)];
        let job = JobShared::new(bodies, 2, Arc::default()).unwrap();
        let err = job.run_to_completion().unwrap_err();
        assert!(
            matches!(&err, Error::OperatorPanic { operator, message } if operator == "panics" && message == "user code failed"),
            "{err}"
        );
    }

    #[test]
    fn an_idle_task_runs_again_when_notified() {
        // A lost wakeup leaves the waiter idle for ever: run the jobs on a thread of their own
        // and fail (instead of hanging the test run) if they do not all finish.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for _ in 0..200 {
                let flag = Arc::new(AtomicBool::new(false));
                let bodies: Vec<Box<dyn TaskBody>> =
                    vec![Box::new(Waiter(flag.clone())), Box::new(Waker(flag, 0))];
                let job = JobShared::new(bodies, 2, Arc::default()).unwrap();
                job.run_to_completion().unwrap();
            }
            done.send(()).unwrap();
        });
        finished
            .recv_timeout(std::time::Duration::from_secs(120))
            .expect("a notified task was never run again (lost wakeup)");
    }
}
