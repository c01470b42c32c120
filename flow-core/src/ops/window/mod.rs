//! Windows on keyed streams: [`assigners`] say which windows a record belongs to,
//! [`functions`] what a window computes, [`operator`] runs them after the key-group exchange,
//! [`stream`] is the API, [`triggers`] holds triggers and evictors of time windows, and
//! [`global`] holds global windows with custom triggers.
pub mod assigners;
pub mod functions;
pub mod global;
pub mod operator;
pub mod stream;
pub mod triggers;

pub use assigners::{
    CountWindows, EventTimeSessionWindows, SlidingEventTimeWindows, SlidingProcessingTimeWindows,
    TumblingEventTimeWindows, TumblingProcessingTimeWindows, Window, WindowInfo, WindowSpec,
    Windowed,
};
pub use functions::{WindowContext, WindowFn};
pub use global::{GlobalWindowedStream, Trigger, TriggerResult};
pub use stream::WindowedStream;
pub use triggers::{
    ContinuousEventTimeTrigger, CountEvictor, CountTrigger, EventTimeTrigger, Evictor, NoEvictor,
    PurgingTrigger, StatefulWindowContext, TimeEvictor, TriggerContext, TriggerWindowStream,
    TriggeredWindowedStream, WindowTrigger,
};
