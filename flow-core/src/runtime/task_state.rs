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
//! Memory ordering: every transition except the final `DONE` is an `AcqRel` read-modify-write
//! of the one state atomic, including a notify that finds the task already `SCHEDULED` or
//! `NOTIFIED` (it writes the same state back). A read-modify-write reads the latest state, and
//! an acquire one synchronises with the release one it reads, so the state's history is a
//! single chain of happens-before edges. A producer publishes a message and then notifies:
//! - if that notify comes before the task's `start_running` in the chain, the message
//!   happens-before the step's look at its input;
//! - if it comes after, it finds `RUNNING` (and leaves `NOTIFIED`, so the step's final
//!   `RUNNING -> IDLE` exchange fails and the task runs again), or `IDLE` (and spawns the
//!   task), or `SCHEDULED`/`NOTIFIED` (and the next run's transitions read it: first case).
//!
//! Plain loads and stores are not enough, even though the channel synchronises its messages.
//! A notify whose plain load sees `SCHEDULED` and returns, racing the task's plain store of
//! `RUNNING` and its look at the channel, is the store-buffering pattern: both sides may miss
//! each other, and the task goes idle with a message unread. loom found that in the first
//! version of this type (the plain-load notify and plain-store transitions the scheduler used
//! to have), and, once that was fixed, the same through a notify overwritten unseen by a
//! plain `SCHEDULED` store after a yield, or after a failed `RUNNING -> IDLE`. With crossbeam's
//! channel the hardware probably never showed it (its send is a `SeqCst` compare-exchange and
//! its empty check has a `SeqCst` fence), but that is no part of the channel's contract, and
//! the memory model allows the outcome.
//!
//! The model of this protocol, with its two properties (no lost wakeup, never two runs at
//! once), is the `task_*` tests of `flow-core/tests/loom.rs`; see [`super::sync`] for how to
//! run it.
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
                // Already going to run (again): write the state back all the same, so that the
                // run's next transition reads this notify (module docs).
                SCHEDULED | NOTIFIED => s,
                _ => return false,
            };
            match self
                .0
                .compare_exchange_weak(s, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return s == IDLE,
                Err(actual) => s = actual,
            }
        }
    }

    /// The pool started the spawned task: `SCHEDULED -> RUNNING`. Its step looks at its input
    /// only after this.
    #[inline]
    pub fn start_running(&self) {
        // A swap, not a store: it reads (and synchronises with) any notify since the spawn.
        self.0.swap(RUNNING, Ordering::AcqRel);
    }

    /// The step yielded with more work ready: back to `SCHEDULED`. The caller must spawn the
    /// task again.
    #[inline]
    pub fn finish_yield(&self) {
        // A swap: a notify that turned RUNNING into NOTIFIED is read, not overwritten unseen.
        self.0.swap(SCHEDULED, Ordering::AcqRel);
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
        // NOTIFIED. A swap: it reads any notify after the failed exchange.
        self.0.swap(SCHEDULED, Ordering::AcqRel);
        true
    }

    /// The task finished (or failed, or was cancelled): `DONE`, and notifications are ignored
    /// from now on.
    #[inline]
    pub fn finish_done(&self) {
        self.0.store(DONE, Ordering::Release);
    }
}
