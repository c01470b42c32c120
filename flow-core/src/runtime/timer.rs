//! Wall-clock wake-ups for tasks (processing-time timers, idleness), served by one thread
//! per job that sleeps until the earliest deadline and then wakes the task. Pool threads
//! never sleep on a timer.
use parking_lot::{Condvar, Mutex};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Instant;

/// What the timer thread calls when a deadline passes (the scheduler).
pub(crate) trait Wake: Send + Sync + 'static {
    /// Wakes task `id`.
    fn wake(self: &Arc<Self>, id: usize);
    /// The timer thread could not be started: fail the job.
    fn spawn_failed(self: &Arc<Self>, source: std::io::Error);
}

#[derive(Default)]
struct Inner {
    heap: BinaryHeap<Reverse<(Instant, usize)>>,
    started: bool,
    shutdown: bool,
}

#[derive(Default)]
struct Shared {
    inner: Mutex<Inner>,
    cv: Condvar,
}

/// The job's timer thread and its queue of deadlines.
#[derive(Default)]
pub(crate) struct TimerService {
    shared: Arc<Shared>,
}

impl TimerService {
    /// Wakes task `id` through `waker` at `at` (or soon after). The first call starts the
    /// timer thread.
    pub(crate) fn wake_at<W: Wake>(&self, waker: &Arc<W>, at: Instant, id: usize) {
        let mut g = self.shared.inner.lock();
        if g.shutdown {
            return;
        }
        g.heap.push(Reverse((at, id)));
        if !g.started {
            g.started = true;
            let (shared, w) = (self.shared.clone(), waker.clone());
            let spawned = std::thread::Builder::new()
                .name("flow-timers".into())
                .spawn(move || run(&shared, &w));
            if let Err(source) = spawned {
                g.started = false;
                drop(g);
                waker.spawn_failed(source);
                return;
            }
        }
        self.shared.cv.notify_one();
    }

    /// Ends the timer thread (the job is over).
    pub(crate) fn shutdown(&self) {
        self.shared.inner.lock().shutdown = true;
        self.shared.cv.notify_all();
    }
}

fn run<W: Wake>(shared: &Shared, waker: &Arc<W>) {
    let mut g = shared.inner.lock();
    loop {
        if g.shutdown {
            return;
        }
        let now = Instant::now();
        match g.heap.peek() {
            None => shared.cv.wait(&mut g),
            Some(Reverse((at, _))) if *at <= now => {
                let Some(Reverse((_, id))) = g.heap.pop() else {
                    continue;
                };
                drop(g);
                waker.wake(id);
                g = shared.inner.lock();
            }
            Some(Reverse((at, _))) => {
                let wait = *at - now;
                shared.cv.wait_for(&mut g, wait);
            }
        }
    }
}
