//! Loom models of the runtime's two lock-free protocols: the scheduler's per-task state
//! machine (`runtime::task_state`) and the exchange's full-channel handshake
//! (`runtime::exchange::waiters`). The types under test are the ones the runtime uses; only
//! their surroundings (the pool, the channel) are modelled here.
//!
//! loom runs each model under every interleaving of its threads and every value the memory
//! model lets each load return. Run with (a separate target directory, because `--cfg loom`
//! rebuilds every crate):
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p flow-core --test loom --release
//! ```
//!
//! (`.ci/run` runs it after the normal tests, with `CARGO_PROFILE_RELEASE_LTO=false` and
//! `CARGO_PROFILE_RELEASE_DEBUG=false`, which build it faster.)
//!
//! Without `--cfg loom` this file compiles to nothing. The models run in about ten seconds
//! (release); most of it is the two-notifier task model, which is bounded to a few
//! preemptions per execution (see [`task_model`]).
//!
//! Each model fails when the protocol is weakened: a plain store instead of a swap in any of
//! `TaskState`'s transitions, a notify that only loads when the task is already scheduled, or
//! either of the two fences of `Waiters`. (The task models found the first two in the
//! scheduler as it was; `task_state`'s docs tell the story.)
#![cfg(loom)]

use flow_core::__loom::{TaskState, Waiters};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;

// ---------------------------------------------------------------------------------------------
// (a) The task state machine.
//
// A consumer task reads an inbox; producers put a message in it and then notify the task.
// The inbox only synchronises its messages (a release store, an acquire load), which is all
// the scheduler may assume of a channel. `notify() == true` means "spawn": the notifying
// thread then runs the task itself, as a pool thread would, concurrently with whatever else
// is going on. Checked:
// - never two runs at once: a run asserts that no other run is in progress;
// - no lost wakeup: once every thread is done, every message was consumed (a message left in
//   the inbox of a task that is not scheduled would never be read).

struct Job {
    state: TaskState,
    /// Messages published into the inbox, one flag per producer.
    inbox: Vec<AtomicBool>,
    /// Messages the task consumed.
    consumed: AtomicUsize,
    /// Whether a run is in progress.
    running: AtomicBool,
    /// How a run ends when it found nothing new.
    yields_first: bool,
}

impl Job {
    fn new(producers: usize, yields_first: bool) -> Arc<Job> {
        Arc::new(Job {
            state: TaskState::new(),
            inbox: (0..producers).map(|_| AtomicBool::new(false)).collect(),
            consumed: AtomicUsize::new(0),
            running: AtomicBool::new(false),
            yields_first,
        })
    }

    /// What the pool does with a spawned task: run steps until one leaves it idle (or done).
    fn run(&self) {
        let mut yielded = false;
        loop {
            self.state.start_running();
            assert!(
                !self.running.swap(true, Ordering::Relaxed),
                "the task runs on two threads at once"
            );
            // The step: take whatever is in the inbox.
            for msg in &self.inbox {
                if msg.load(Ordering::Acquire) {
                    msg.store(false, Ordering::Relaxed);
                    self.consumed.fetch_add(1, Ordering::Relaxed);
                }
            }
            self.running.store(false, Ordering::Relaxed);
            if self.yields_first && !yielded {
                // Step::Yield: back to SCHEDULED, and the pool runs it again.
                yielded = true;
                self.state.finish_yield();
                continue;
            }
            // Step::Idle.
            if !self.state.finish_idle() {
                return;
            }
        }
    }

    /// A producer: publish message `i`, then notify (and run the task if told to spawn it).
    fn produce(&self, i: usize) {
        self.inbox[i].store(true, Ordering::Release);
        if self.state.notify() {
            self.run();
        }
    }

    /// After every thread is done: nothing left unread.
    fn check_no_lost_wakeup(&self) {
        assert_eq!(
            self.consumed.load(Ordering::Relaxed),
            self.inbox.len(),
            "a message was published and notified, but the task went idle without it"
        );
    }
}

/// The task is scheduled (its first notify) and starts running while a producer publishes and
/// notifies: the notify may land while it is `SCHEDULED`, `RUNNING`, or after it went `IDLE`.
///
/// With two producers, three threads each run the task's loop, and loom's exhaustive search
/// does not finish in minutes; it is bounded to `preemption_bound` preemptions per execution
/// (the usual loom practice: bugs seldom need more than two or three).
fn task_model(producers: usize, yields_first: bool, preemption_bound: Option<usize>) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = preemption_bound;
    builder.check(move || {
        let job = Job::new(producers, yields_first);
        assert!(
            job.state.notify(),
            "an idle task's first notify must spawn it"
        );
        assert!(
            !job.state.notify(),
            "a scheduled task must not be spawned twice"
        );
        let handles: Vec<_> = (0..producers)
            .map(|i| {
                let job = job.clone();
                thread::spawn(move || job.produce(i))
            })
            .collect();
        job.run(); // the pool thread running the first spawn
        for h in handles {
            h.join().expect("producer");
        }
        job.check_no_lost_wakeup();
    });
}

#[test]
fn task_one_notifier_no_lost_wakeup_no_double_run() {
    task_model(1, false, None);
}

#[test]
fn task_one_notifier_with_a_yield() {
    task_model(1, true, None);
}

const PREEMPTIONS: usize = 4;

#[test]
fn task_two_notifiers_no_lost_wakeup_no_double_run() {
    task_model(2, false, Some(PREEMPTIONS));
}

/// A task that finished ignores later notifications: nobody spawns it again.
#[test]
fn task_done_is_never_spawned() {
    loom::model(|| {
        let state = Arc::new(TaskState::new());
        assert!(state.notify());
        let notifier = {
            let state = state.clone();
            thread::spawn(move || state.notify())
        };
        state.start_running();
        state.finish_done();
        let spawned = notifier.join().expect("notifier");
        // The notify saw SCHEDULED or RUNNING (nothing to spawn) or DONE (ignored).
        assert!(
            !spawned,
            "a notify spawned a task that was scheduled or done"
        );
        assert!(!state.notify(), "a done task was spawned");
    });
}

// ---------------------------------------------------------------------------------------------
// (b) The exchange's full-channel handshake.
//
// A bounded channel of capacity one, as an atomic slot that only synchronises its message
// (release store, acquire load): all the handshake may assume of crossbeam. It starts full.
// The producer sends; if that finds the channel full, it registers as a waiter and retries
// once. The consumer receives (freeing the slot) and then takes the waiters. Checked: the producer's
// retry succeeded, or the consumer saw it waiting and notifies it; never both miss (which
// would leave the producer idle for ever with room in the channel).

const PRODUCER: usize = 7;

/// One-slot single-producer single-consumer channel.
struct Slot(AtomicBool);

impl Slot {
    fn try_send(&self) -> bool {
        if self.0.load(Ordering::Acquire) {
            return false; // full
        }
        self.0.store(true, Ordering::Release);
        true
    }

    fn try_recv(&self) -> bool {
        if !self.0.load(Ordering::Acquire) {
            return false; // empty
        }
        self.0.store(false, Ordering::Release);
        true
    }
}

#[test]
fn waiters_producer_retry_or_consumer_wake() {
    loom::model(|| {
        let slot = Arc::new(Slot(AtomicBool::new(true)));
        let waiters = Arc::new(Waiters::new());

        let producer = {
            let (slot, waiters) = (slot.clone(), waiters.clone());
            thread::spawn(move || {
                if slot.try_send() {
                    return true; // the consumer made room first: no handshake
                }
                waiters.register(PRODUCER);
                slot.try_send() // the retry
            })
        };
        assert!(slot.try_recv(), "the consumer has a message to take");
        let woken = waiters.take_if_any();
        assert!(woken.iter().all(|&id| id == PRODUCER));
        let woken = !woken.is_empty();

        let sent = producer.join().expect("producer");
        assert!(
            sent || woken,
            "lost wakeup: the producer's retry found the channel full and the consumer did \
             not see it waiting"
        );
        if !sent {
            // The notified producer runs again: its send now succeeds.
            assert!(slot.try_send(), "woken, but the channel is still full");
        }
    });
}

/// A producer that registers twice (two failed sends) is listed once per take, and after it
/// is done some take returns it.
#[test]
fn waiters_register_is_idempotent_and_take_empties() {
    loom::model(|| {
        let waiters = Arc::new(Waiters::new());
        let producer = {
            let waiters = waiters.clone();
            thread::spawn(move || {
                waiters.register(PRODUCER);
                waiters.register(PRODUCER);
            })
        };
        let first = waiters.take_if_any();
        producer.join().expect("producer");
        let second = waiters.take_if_any();
        for take in [&first, &second] {
            assert!(take.len() <= 1 && take.iter().all(|&id| id == PRODUCER));
        }
        assert!(
            !second.is_empty() || !first.is_empty(),
            "the waiter was lost"
        );
        assert!(
            waiters.take_if_any().is_empty(),
            "a take leaves the list empty"
        );
    });
}
