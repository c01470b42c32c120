//! `collect`: gathers records in memory, for tests and small results.
use crate::api::stream::Stream;
use crate::error::Result;
use crate::graph::Ending;
use crate::record::{Event, Timestamp};
use crate::runtime::operator::{Chain, Downstream};
use crate::runtime::stage::Terminal;
use crate::runtime::task::TaskCx;
use parking_lot::Mutex;
use std::sync::Arc;

/// The records of a sink's subtasks, for the caller of [`crate::Env::execute`].
type SharedVec<T> = Arc<Mutex<Vec<T>>>;

/// The records a `collect` sink gathered; read them after [`crate::Env::execute`].
pub struct Collected<T> {
    pub(crate) items: SharedVec<T>,
}

impl<T> Collected<T> {
    /// Takes the collected records (in no particular order across subtasks).
    pub fn take(&self) -> Vec<T> {
        std::mem::take(&mut *self.items.lock())
    }
}

pub(crate) struct CollectSink<T> {
    pub(crate) local: Vec<T>,
    pub(crate) shared: SharedVec<T>,
}

impl<T> CollectSink<T> {
    pub(crate) fn new(shared: SharedVec<T>) -> Self {
        CollectSink {
            local: Vec::new(),
            shared,
        }
    }
}

impl<T: Send> Downstream<T> for CollectSink<T> {
    #[inline]
    fn emit(&mut self, item: T, _ts: Timestamp) {
        self.local.push(item)
    }
    fn event(&mut self, event: Event) {
        // At the end, and at every checkpoint barrier: a job stopped at a checkpoint (not
        // drained) hands over everything before it.
        if matches!(event, Event::End | Event::Barrier(_)) && !self.local.is_empty() {
            self.shared.lock().append(&mut self.local);
        }
    }
}

impl<T: Send> Terminal<T> for CollectSink<T> {
    fn drain(&mut self, _cx: &TaskCx<'_>) -> Result<bool> {
        Ok(true)
    }
}

impl<C: Chain> Stream<C> {
    /// Collects the records in memory; read them with [`Collected::take`] after
    /// [`crate::Env::execute`]. For tests and small results.
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let evens = env.from_vec(vec![1, 2, 3, 4]).filter(|x| x % 2 == 0).collect();
    /// env.execute()?;
    /// let mut got = evens.take();
    /// got.sort(); // the subtasks' records, in no particular order
    /// assert_eq!(got, vec![2, 4]);
    /// assert!(evens.take().is_empty()); // `take` empties it
    /// # Ok::<(), flow_core::Error>(())
    /// ```
    #[track_caller]
    pub fn collect(self) -> Collected<C::Out> {
        let items: SharedVec<C::Out> = Arc::new(Mutex::new(Vec::new()));
        let shared = items.clone();
        self.finish(Ending::Sink("collect".into()), move |_, _| {
            CollectSink::new(shared.clone())
        });
        Collected { items }
    }
}
