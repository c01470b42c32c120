//! In-memory sources: `from_iter` (one subtask) and `from_vec` (parallel).
use crate::api::env::Env;
use crate::api::stream::Stream;
use crate::error::Result;
use crate::record::{Batch, NO_TIMESTAMP};
use crate::runtime::operator::Identity;
use crate::runtime::stage::{Input, Poll};
use crate::runtime::task::TaskCx;

/// Reads a single iterator (a non-parallel source).
pub(crate) struct IterInput<I> {
    pub(crate) iter: Option<I>,
    pub(crate) batch: usize,
}

impl<I> Input<I::Item> for IterInput<I>
where
    I: Iterator + Send,
    I::Item: Send,
{
    fn poll(&mut self, cx: &TaskCx<'_>, out: &mut Batch<I::Item>) -> Result<Poll> {
        let Some(it) = self.iter.as_mut() else {
            return Ok(Poll::End);
        };
        if cx.stop_requested() {
            self.iter = None;
            return Ok(Poll::End);
        }
        for x in it.by_ref().take(self.batch) {
            out.push(x, NO_TIMESTAMP);
        }
        if out.is_empty() {
            self.iter = None;
            return Ok(Poll::End);
        }
        Ok(Poll::Data)
    }
}

impl Env {
    /// A non-parallel source over an iterator (bounded when the iterator ends).
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let lengths = env.from_iter("to be or not".split(' ')).map(str::len).collect();
    /// env.execute()?;
    /// assert_eq!(lengths.take(), vec![2, 2, 2, 3]); // one subtask: in order
    /// # Ok::<(), flow_core::Error>(())
    /// ```
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
    ///
    /// ```
    /// # use flow_core::prelude::*;
    /// let mut env = Env::new(Config::default().parallelism(2));
    /// let doubled = env.from_vec(vec![1, 2, 3, 4, 5, 6]).map(|x| x * 2).collect();
    /// env.execute()?;
    /// let mut got = doubled.take();
    /// got.sort(); // two subtasks: in no particular order
    /// assert_eq!(got, vec![2, 4, 6, 8, 10, 12]);
    /// # Ok::<(), flow_core::Error>(())
    /// ```
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
}
