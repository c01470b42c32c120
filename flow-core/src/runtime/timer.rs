//! Wall-clock wake-ups for tasks (processing-time timers, idleness), served by one thread
//! per job that sleeps until the earliest deadline and then notifies the task. Pool threads
//! never sleep on a timer.
use super::task::{JobShared, TaskId};
use parking_lot::{Condvar, Mutex};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

#[derive(Default)]
struct Inner {
    heap: BinaryHeap<Reverse<(Instant, TaskId)>>,
    started: bool,
    shutdown: bool,
}

/// The job's timer thread and its queue of deadlines.
#[derive(Default)]
pub(crate) struct TimerService {
    inner: Mutex<Inner>,
    cv: Condvar,
}

impl TimerService {
    /// Notifies task `id` at `at` (or soon after).
    pub(crate) fn wake_at(&self, shared: &Arc<JobShared>, at: Instant, id: TaskId) {
        let mut g = self.inner.lock();
        if g.shutdown {
            return;
        }
        g.heap.push(Reverse((at, id)));
        if !g.started {
            g.started = true;
            let job = shared.clone();
            let spawned = std::thread::Builder::new()
                .name("flow-timers".into())
                .spawn(move || job.timers().run(&job));
            if let Err(source) = spawned {
                g.started = false;
                drop(g);
                shared.fail(crate::Error::Spawn {
                    what: "timer",
                    source,
                });
                return;
            }
        }
        self.cv.notify_one();
    }

    fn run(&self, shared: &Arc<JobShared>) {
        let mut g = self.inner.lock();
        loop {
            if g.shutdown {
                return;
            }
            let now = Instant::now();
            match g.heap.peek() {
                None => self.cv.wait(&mut g),
                Some(Reverse((at, _))) if *at <= now => {
                    let Some(Reverse((_, id))) = g.heap.pop() else {
                        continue;
                    };
                    drop(g);
                    shared.notify(id);
                    g = self.inner.lock();
                }
                Some(Reverse((at, _))) => {
                    let wait = *at - now;
                    self.cv.wait_for(&mut g, wait);
                }
            }
        }
    }

    /// Ends the timer thread (the job is over).
    pub(crate) fn shutdown(&self) {
        self.inner.lock().shutdown = true;
        self.cv.notify_all();
    }
}
