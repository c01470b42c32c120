//! In-memory sources: `from_iter` (one subtask) and `from_vec` (parallel).
//!
//! With checkpoints, a job restored from a checkpoint skips the items the checkpoint had read.
use super::position::{decode_blob, encode_blob, union_of, Done};
use crate::api::env::Env;
use crate::api::stream::Stream;
use crate::error::{Error, Result};
use crate::record::{Batch, NO_TIMESTAMP};
use crate::runtime::operator::Identity;
use crate::runtime::stage::{Input, Poll};
use crate::runtime::task::TaskCx;

/// The kind byte of an in-memory source's position blob.
///
/// A subtask's position is the set of item indices (within the whole input) that it emitted,
/// with the set the restored checkpoint had read (see `super::position`). Blob header: the
/// number of items (`Option<u64>`: `None` for `from_iter`).
const KIND: u8 = b'i';

/// Reads a single iterator: `from_iter`, or one part of `from_vec`.
pub(crate) struct IterInput<I> {
    pub(crate) iter: Option<I>,
    pub(crate) batch: usize,
    /// The index within the source's whole input of the item `iter` yields next.
    pub(crate) next: u64,
    /// The number of items of the input (`None`: unknown, `from_iter`).
    pub(crate) total: Option<u64>,
    /// What the restored checkpoint had read (skipped here), then what this subtask emitted.
    pub(crate) done: Done,
    /// The source, for error messages.
    pub(crate) kind: &'static str,
}

impl<I> IterInput<I> {
    /// Reads `iter`, whose first item is item `first` of an input of `total` items.
    pub(crate) fn new(
        iter: Option<I>,
        batch: usize,
        first: u64,
        total: Option<u64>,
        kind: &'static str,
    ) -> Self {
        IterInput {
            iter,
            batch,
            next: first,
            total,
            done: Done::default(),
            kind,
        }
    }
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
        while out.len() < self.batch {
            // Items the restored checkpoint read are skipped.
            let ranges = self.done.set.ranges();
            let i = ranges.partition_point(|&(s, _)| s <= self.next);
            if let Some(&(_, end)) = i.checked_sub(1).and_then(|i| ranges.get(i)) {
                if end > self.next {
                    let skip = end - self.next;
                    self.next = end;
                    if it
                        .nth(usize::try_from(skip - 1).unwrap_or(usize::MAX))
                        .is_none()
                    {
                        break;
                    }
                    continue;
                }
            }
            let until = ranges.get(i).map_or(u64::MAX, |r| r.0);
            let want = (self.batch - out.len())
                .min(usize::try_from(until - self.next).unwrap_or(usize::MAX));
            let before = out.len();
            for x in it.by_ref().take(want) {
                out.push(x, NO_TIMESTAMP);
            }
            let got = (out.len() - before) as u64;
            self.done.insert(self.next, self.next + got, false);
            self.next += got;
            if (got as usize) < want {
                break;
            }
        }
        if out.is_empty() {
            self.iter = None;
            return Ok(Poll::End);
        }
        Ok(Poll::Data)
    }

    fn snapshot(&mut self) -> Result<Option<Vec<u8>>> {
        Ok(Some(encode_blob(KIND, &self.total, &self.done)?))
    }

    fn restore(&mut self, positions: &[&[u8]]) -> Result<()> {
        let kind = self.kind;
        let total = self.total;
        let show = |t: Option<u64>| match t {
            Some(n) => format!("{n} records"),
            None => "an iterator".to_string(),
        };
        let restored = union_of(positions, |blob| {
            let (t, done): (Option<u64>, _) = decode_blob(KIND, blob, kind)?;
            if t != total {
                return Err(Error::Checkpoint(format!(
                    "{kind}: input changed since the checkpoint: it read {}, this job reads {}",
                    show(t),
                    show(total)
                )));
            }
            Ok(done)
        })?;
        if total.is_some_and(|n| restored.set.end() > n) {
            return Err(Error::Checkpoint(format!(
                "{kind}: the checkpoint's position names records past the end of the input"
            )));
        }
        self.done.union_with(&restored);
        Ok(())
    }
}

/// Cuts `items` into `p` contiguous parts, each with the index of its first item.
fn vec_parts<T>(items: Vec<T>, p: usize) -> Vec<(u64, Vec<T>)> {
    let n = items.len();
    let mut parts = Vec::with_capacity(p);
    let mut rest = items;
    for i in (0..p).rev() {
        let cut = (n * i / p).min(rest.len());
        parts.push((cut as u64, rest.split_off(cut)));
    }
    parts.reverse();
    parts
}

impl Env {
    /// A non-parallel source over an iterator (bounded when the iterator ends).
    ///
    /// With checkpoints, a job restored from a checkpoint skips the items the checkpoint had
    /// read: the first `n` items of the new iterator, so it must yield the same items in the
    /// same order.
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
            Box::new(IterInput::new(iter.take(), batch, 0, None, "from_iter"))
                as Box<dyn Input<I::Item>>
        })
    }

    /// A parallel source over a vector: subtask `i` of `p` reads the `i`-th contiguous part.
    ///
    /// With checkpoints, a job restored from a checkpoint reads exactly the items (by index)
    /// that the checkpoint had not read, at any parallelism; a vector of another length fails
    /// the restore.
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
        let mut parts: Vec<_> = vec_parts(items, p).into_iter().map(Some).collect();
        let batch = cfg.batch_size;
        self.source(p, format!("from_vec({n} records)"), true, move |i, _| {
            let (first, part) = parts.get_mut(i).and_then(Option::take).unwrap_or_default();
            Box::new(IterInput::new(
                Some(part.into_iter()),
                batch,
                first,
                Some(n as u64),
                "from_vec",
            )) as Box<dyn Input<T>>
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::source::position::sim;

    fn from_vec(n: u64, batch: usize) -> impl FnMut(usize) -> Vec<Box<dyn Input<u64>>> {
        move |p| {
            vec_parts((0..n).collect(), p)
                .into_iter()
                .map(|(first, part)| {
                    Box::new(IterInput::new(
                        Some(part.into_iter()),
                        batch,
                        first,
                        Some(n),
                        "from_vec",
                    )) as Box<dyn Input<u64>>
                })
                .collect()
        }
    }

    #[test]
    fn a_restored_from_vec_reads_the_rest_exactly_once() {
        let runs: [&[usize]; 6] = [
            &[1, 2],
            &[2, 3],
            &[3, 1],
            &[2, 2],
            &[1, 2, 3, 1],
            &[3, 2, 1],
        ];
        for runs in runs {
            for seed in 0..12 {
                for c in [1, 3] {
                    let mut got = sim::chain(from_vec(200, 7), runs, seed, c);
                    got.sort_unstable();
                    assert_eq!(got, (0..200).collect::<Vec<u64>>(), "{runs:?} seed {seed}");
                }
            }
        }
    }

    #[test]
    fn a_restored_from_iter_skips_what_it_read() {
        for seed in 0..12 {
            let make = |_| {
                vec![
                    Box::new(IterInput::new(Some(0..100u64), 9, 0, None, "from_iter"))
                        as Box<dyn Input<u64>>,
                ]
            };
            let mut got = sim::chain(make, &[1, 1, 1], seed, 2);
            got.sort_unstable();
            assert_eq!(got, (0..100).collect::<Vec<u64>>(), "seed {seed}");
        }
    }

    #[test]
    fn a_vec_of_another_length_does_not_restore() {
        let r = sim::run(from_vec(50, 4)(2), None, 1, Some(1));
        let positions: Vec<&[u8]> = r.blobs.values().map(Vec::as_slice).collect();
        let mut other = from_vec(60, 4)(1);
        let e = other[0].restore(&positions).unwrap_err();
        assert!(
            e.to_string().contains("input changed since the checkpoint"),
            "{e}"
        );
    }
}
