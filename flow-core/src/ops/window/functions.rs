//! Window functions: what a window computes from its records — an incremental aggregate,
//! all records handed to a function, or both.
use super::assigners::{WindowInfo, Windowed};
use crate::error::Result;
use crate::ops::aggregate::Aggregate;
use crate::ops::side_output::{OutputTag, SideOutputs, TaggedOutputs};
use crate::record::Timestamp;
use crate::runtime::panic::{OpName, PanicGuard};
use std::marker::PhantomData;

/// What a window computes from its records (aggregate, reduce, process, ...).
pub trait WindowFn<K, T>: Clone + Send + 'static {
    /// Per key and window state.
    type State: Clone + Send + 'static;
    /// Results.
    type Out: Send + 'static;
    /// The state of a window's first record.
    fn create(&mut self, item: T) -> Self::State;
    /// Adds a record.
    fn add(&mut self, state: &mut Self::State, item: T);
    /// Merges `b` into `a` (session windows).
    fn merge(&mut self, a: &mut Self::State, b: Self::State);
    /// Produces the results of a firing window.
    fn fire(&mut self, key: &K, info: &WindowInfo, state: Self::State, out: &mut Vec<Self::Out>);
    /// [`WindowFn::fire`] with the operator's tagged side outputs, which is what the window
    /// operator calls. The default ignores them and calls `fire`.
    fn fire_with_outputs(
        &mut self,
        key: &K,
        info: &WindowInfo,
        state: Self::State,
        out: &mut Vec<Self::Out>,
        side: &mut SideOutputs<'_>,
    ) {
        let _ = side;
        self.fire(key, info, state, out)
    }
    /// Called when the state of `key`'s `window` is dropped, by the operator of windows with
    /// a trigger or evictor. The default does nothing.
    fn clear(&mut self, key: &K, window: &super::assigners::Window) {
        let _ = (key, window);
    }
    /// The states the function keeps itself, beside each window's (a
    /// `process_with_state` function's per-window and per-key state), for checkpoints.
    #[doc(hidden)]
    fn own_states(&self) -> Vec<crate::runtime::snapshot::StateDecl> {
        Vec::new()
    }
    /// Writes the function's own states ([`WindowFn::own_states`]) whole.
    #[doc(hidden)]
    fn snapshot_own(&mut self, cx: &mut crate::runtime::snapshot::SnapshotCx<'_>) -> Result<()> {
        let _ = cx;
        Ok(())
    }
    /// Loads the function's own states from a checkpoint.
    #[doc(hidden)]
    fn restore_own(&mut self, cx: &crate::runtime::snapshot::RestoreCx<'_>) -> Result<()> {
        let _ = cx;
        Ok(())
    }
}

/// What a window function of [`WindowedStream::process_with_context`] can do: emit results
/// and send records to side outputs, all at the timestamp of the window's results.
///
/// [`WindowedStream::process_with_context`]: crate::ops::window::WindowedStream::process_with_context
pub struct WindowContext<'a, O> {
    out: &'a mut Vec<O>,
    side: &'a mut TaggedOutputs,
    ts: Timestamp,
}

impl<O> WindowContext<'_, O> {
    /// Emits a result.
    pub fn emit(&mut self, item: O) {
        self.out.push(item)
    }
    /// Sends a record to the side output `tag`, whose stream is taken with
    /// [`Stream::side_output`](crate::Stream::side_output) from the window's result stream.
    /// Without a consumer the record is dropped and counted in the job summary.
    pub fn output<X: Send + 'static>(&mut self, tag: &OutputTag<X>, item: X) {
        self.side.emit(tag, item, self.ts)
    }
}

/// All records of a window handed to a function with a [`WindowContext`].
pub struct ProcessWindowWithContext<F, O> {
    pub(crate) f: F,
    pub(crate) name: OpName,
    pub(crate) _out: PhantomData<fn() -> O>,
}

impl<F: Clone, O> Clone for ProcessWindowWithContext<F, O> {
    fn clone(&self) -> Self {
        ProcessWindowWithContext {
            f: self.f.clone(),
            name: self.name.clone(),
            _out: PhantomData,
        }
    }
}

impl<K, T, F, O> WindowFn<K, T> for ProcessWindowWithContext<F, O>
where
    T: Clone + Send + 'static,
    F: for<'x> FnMut(&K, &WindowInfo, Vec<T>, &mut WindowContext<'x, O>) + Clone + Send + 'static,
    O: Send + 'static,
{
    type State = Vec<T>;
    type Out = O;
    fn create(&mut self, item: T) -> Vec<T> {
        vec![item]
    }
    fn add(&mut self, state: &mut Vec<T>, item: T) {
        state.push(item)
    }
    fn merge(&mut self, a: &mut Vec<T>, mut b: Vec<T>) {
        a.append(&mut b)
    }
    fn fire(&mut self, key: &K, info: &WindowInfo, state: Vec<T>, out: &mut Vec<O>) {
        let mut none = TaggedOutputs::none();
        let ts = info.window.max_timestamp();
        self.fire_with_outputs(key, info, state, out, &mut none.at(ts))
    }
    fn fire_with_outputs(
        &mut self,
        key: &K,
        info: &WindowInfo,
        state: Vec<T>,
        out: &mut Vec<O>,
        side: &mut SideOutputs<'_>,
    ) {
        let mut ctx = WindowContext {
            out,
            side: &mut *side.outputs,
            ts: side.ts,
        };
        let guard = PanicGuard(&self.name);
        (self.f)(key, info, state, &mut ctx);
        std::mem::forget(guard);
    }
}

/// An [`Aggregate`] per window: results `Windowed<K, A::Out>`.
#[derive(Clone)]
pub struct AggregateWindow<A>(pub(crate) A);

impl<K: Clone + Send + 'static, T, A: Aggregate<T>> WindowFn<K, T> for AggregateWindow<A> {
    type State = A::Acc;
    type Out = Windowed<K, A::Out>;
    #[inline]
    fn create(&mut self, item: T) -> A::Acc {
        self.0.create(item)
    }
    #[inline]
    fn add(&mut self, state: &mut A::Acc, item: T) {
        self.0.add(state, item)
    }
    fn merge(&mut self, a: &mut A::Acc, b: A::Acc) {
        self.0.merge(a, b)
    }
    fn fire(&mut self, key: &K, info: &WindowInfo, state: A::Acc, out: &mut Vec<Self::Out>) {
        out.push(Windowed {
            key: key.clone(),
            window: info.window,
            value: self.0.result(state),
        })
    }
}

/// All records of the window handed to a function (Flink's `ProcessWindowFunction`).
#[derive(Clone)]
pub struct ProcessWindow<F> {
    pub(crate) f: F,
    pub(crate) name: OpName,
}

impl<K, T, F, I> WindowFn<K, T> for ProcessWindow<F>
where
    T: Clone + Send + 'static,
    F: FnMut(&K, &WindowInfo, Vec<T>) -> I + Clone + Send + 'static,
    I: IntoIterator,
    I::Item: Send + 'static,
{
    type State = Vec<T>;
    type Out = I::Item;
    fn create(&mut self, item: T) -> Vec<T> {
        vec![item]
    }
    fn add(&mut self, state: &mut Vec<T>, item: T) {
        state.push(item)
    }
    fn merge(&mut self, a: &mut Vec<T>, mut b: Vec<T>) {
        a.append(&mut b)
    }
    fn fire(&mut self, key: &K, info: &WindowInfo, state: Vec<T>, out: &mut Vec<I::Item>) {
        let guard = PanicGuard(&self.name);
        out.extend((self.f)(key, info, state));
        std::mem::forget(guard);
    }
}

/// An incremental aggregate whose result is handed to a function with the window's context.
#[derive(Clone)]
pub struct AggregateProcessWindow<A, F> {
    pub(crate) agg: A,
    pub(crate) f: F,
    pub(crate) name: OpName,
}

impl<K, T, A, F, R> WindowFn<K, T> for AggregateProcessWindow<A, F>
where
    A: Aggregate<T>,
    F: FnMut(&K, &WindowInfo, A::Out) -> R + Clone + Send + 'static,
    R: Send + 'static,
{
    type State = A::Acc;
    type Out = R;
    fn create(&mut self, item: T) -> A::Acc {
        self.agg.create(item)
    }
    fn add(&mut self, state: &mut A::Acc, item: T) {
        self.agg.add(state, item)
    }
    fn merge(&mut self, a: &mut A::Acc, b: A::Acc) {
        self.agg.merge(a, b)
    }
    fn fire(&mut self, key: &K, info: &WindowInfo, state: A::Acc, out: &mut Vec<R>) {
        let r = self.agg.result(state);
        let guard = PanicGuard(&self.name);
        out.push((self.f)(key, info, r));
        std::mem::forget(guard);
    }
}
