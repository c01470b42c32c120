//! The scheduling state of one task: who may spawn it, and how a notification that arrives
//! while it runs is kept.
//!
//! ```text
//!   IDLE --notify--> SCHEDULED --pool runs it--> RUNNING --step: Idle--> IDLE
//!                        ^                        |   \--notify--> NOTIFIED --step ends--> SCHEDULED
//!                        '--step: Yield-----------'
//!   RUNNING --step: Done / error / cancelled--> DONE
//! ```
//!
//! The transitions that return `true` are the only ones after which the caller spawns the task,
//! so a task is spawned once per `SCHEDULED` and never runs on two threads at once.
//!
//! Memory ordering: the state is one atomic whose transitions are `AcqRel` compare-exchanges.
//! A producer publishes a message and then notifies; the consumer's final `RUNNING -> IDLE`
//! exchange fails if a notify happened after its last look at its input, because that notify
//! turned `RUNNING` into `NOTIFIED`. The model of this protocol, with its two properties (no
//! lost wakeup, never two runs at once), is the `task_*` tests of `flow-core/tests/loom.rs`;
//! see [`super::sync`] for how to run it.
use super::sync::{AtomicU8, Ordering};

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const RUNNING: u8 = 2;
const NOTIFIED: u8 = 3;
const DONE: u8 = 4;

/// The scheduling state of one task (see the module docs).
#[derive(Debug)]
pub struct TaskState(AtomicU8);

impl Default for TaskState {
    fn default() -> Self {
        Self::new()
    }
}

impl TaskState {
    /// A task that has not been scheduled yet (`IDLE`).
    pub fn new() -> Self {
        TaskState(AtomicU8::new(IDLE))
    }

    /// Someone may have work for the task: `IDLE -> SCHEDULED`, or `RUNNING -> NOTIFIED` so
    /// that the running step does not go idle over it. Returns whether the caller must spawn
    /// the task (it moved it to `SCHEDULED`).
    #[inline]
    pub fn notify(&self) -> bool {
        let mut s = self.0.load(Ordering::Acquire);
        loop {
            let next = match s {
                IDLE => SCHEDULED,
                RUNNING => NOTIFIED,
                _ => return false,
            };
            match self
                .0
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return next == SCHEDULED,
                Err(actual) => s = actual,
            }
        }
    }

    /// The pool started the spawned task: `SCHEDULED -> RUNNING`. Its step looks at its input
    /// only after this.
    #[inline]
    pub fn start_running(&self) {
        self.0.store(RUNNING, Ordering::Release);
    }

    /// The step yielded with more work ready: back to `SCHEDULED`. The caller must spawn the
    /// task again.
    #[inline]
    pub fn finish_yield(&self) {
        self.0.store(SCHEDULED, Ordering::Release);
    }

    /// The step found nothing to do: `RUNNING -> IDLE`, unless a notify arrived while it ran
    /// (`NOTIFIED`), in which case the task goes back to `SCHEDULED` and this returns `true`:
    /// the caller must spawn it again.
    #[inline]
    pub fn finish_idle(&self) -> bool {
        if self
            .0
            .compare_exchange(RUNNING, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            return false;
        }
        self.0.store(SCHEDULED, Ordering::Release);
        true
    }

    /// The task finished (or failed, or was cancelled): `DONE`, and notifications are ignored
    /// from now on.
    #[inline]
    pub fn finish_done(&self) {
        self.0.store(DONE, Ordering::Release);
    }
}
