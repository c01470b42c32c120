//! The one side-output type: records an operator sends to a stream of their own (the right
//! side of `split`, a window's late records), subtask `i` feeding subtask `i` of that stream.
use crate::api::exchange::Outlets;
use crate::error::Result;
use crate::record::{Event, Timestamp};
use crate::runtime::exchange::partition::Forward;
use crate::runtime::exchange::ExchangeWriter;
use crate::runtime::operator::{Downstream, DrainCx, OpenCx};
use crate::runtime::stage::Terminal;

/// A side output of an operator. Before `open` it holds the outlets of its stream; after,
/// the subtask's writer. Without a consumer it drops what it is given.
pub(crate) struct SideOutput<T> {
    outlets: Option<Outlets<T>>,
    writer: Option<ExchangeWriter<T, Forward>>,
}

impl<T> Clone for SideOutput<T> {
    fn clone(&self) -> Self {
        SideOutput {
            outlets: self.outlets.clone(),
            writer: None,
        }
    }
}

impl<T: Send> SideOutput<T> {
    /// A side output into the stream whose producers write to `outlets`.
    pub(crate) fn new(outlets: Outlets<T>) -> Self {
        SideOutput {
            outlets: Some(outlets),
            writer: None,
        }
    }

    /// A side output that nobody consumes.
    pub(crate) fn none() -> Self {
        SideOutput {
            outlets: None,
            writer: None,
        }
    }

    /// Creates the subtask's writer.
    pub(crate) fn open(&mut self, cx: OpenCx) {
        if let Some(o) = self.outlets.take() {
            self.writer = Some(o.writer(cx.subtask, Forward(cx.subtask)));
        }
    }

    /// Sends a record, if the side output has a consumer.
    #[inline]
    pub(crate) fn emit(&mut self, item: T, ts: Timestamp) {
        if let Some(w) = self.writer.as_mut() {
            w.emit(item, ts)
        }
    }

    /// Passes a control event to the side stream.
    pub(crate) fn event(&mut self, event: Event) {
        if let Some(w) = self.writer.as_mut() {
            w.event(event)
        }
    }

    /// Sends what is buffered; `false` while some of it waits for room.
    pub(crate) fn drain(&mut self, cx: &DrainCx<'_, '_>) -> Result<bool> {
        match self.writer.as_mut() {
            Some(w) => w.drain(cx.cx),
            None => Ok(true),
        }
    }
}
