//! Window assigners: which windows a record belongs to. Tumbling, sliding and session windows
//! in event time, tumbling and sliding windows in processing time, and count windows, with
//! Flink's alignment rules (including negative timestamps).
use crate::record::Timestamp;
use std::time::Duration;

/// A window of event time `[start, end)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// First timestamp in the window.
    pub start: Timestamp,
    /// One past the last timestamp in the window.
    pub end: Timestamp,
}

impl Window {
    /// The window of count windows, which has no time bounds.
    pub const GLOBAL: Window = Window {
        start: Timestamp::MIN,
        end: Timestamp::MAX,
    };

    /// The largest timestamp in the window: it fires when the watermark reaches this.
    pub fn max_timestamp(&self) -> Timestamp {
        self.end.saturating_sub(1)
    }

    /// Whether two session windows overlap or touch (and so merge).
    pub(crate) fn touches(&self, other: &Window) -> bool {
        self.start <= other.end && other.start <= self.end
    }

    pub(crate) fn cover(&self, other: &Window) -> Window {
        Window {
            start: self.start.min(other.start),
            end: self.end.max(other.end),
        }
    }
}

/// One result of a window function: the key, the window and the value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Windowed<K, V> {
    /// The key.
    pub key: K,
    /// The window.
    pub window: Window,
    /// The window function's result.
    pub value: V,
}

/// What a `process` window function knows besides the records.
#[derive(Clone, Copy, Debug)]
pub struct WindowInfo {
    /// The window that fired.
    pub window: Window,
    /// The operator's watermark when it fired.
    pub watermark: Timestamp,
}

fn millis(d: Duration) -> i64 {
    d.as_millis().min(i64::MAX as u128) as i64
}

/// Event-time tumbling windows: fixed size, no overlap.
#[derive(Clone, Copy, Debug)]
pub struct TumblingEventTimeWindows {
    size: i64,
    offset: i64,
}

impl TumblingEventTimeWindows {
    /// Windows of `size`, aligned to the epoch.
    pub fn of(size: Duration) -> Self {
        TumblingEventTimeWindows {
            size: millis(size).max(1),
            offset: 0,
        }
    }
    /// Shifts the windows' alignment by `offset` (e.g. for time zones).
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.offset = millis(offset);
        self
    }
}

/// Event-time sliding windows: `size` long, a new one every `slide`.
#[derive(Clone, Copy, Debug)]
pub struct SlidingEventTimeWindows {
    size: i64,
    slide: i64,
    offset: i64,
}

impl SlidingEventTimeWindows {
    /// Windows of `size` starting every `slide`.
    pub fn of(size: Duration, slide: Duration) -> Self {
        SlidingEventTimeWindows {
            size: millis(size).max(1),
            slide: millis(slide).max(1),
            offset: 0,
        }
    }
    /// Shifts the windows' alignment by `offset`.
    pub fn with_offset(mut self, offset: Duration) -> Self {
        self.offset = millis(offset);
        self
    }
}

/// Processing-time tumbling windows: records go to the window of the wall-clock time at which
/// the window operator sees them; windows fire when the wall clock passes their end.
#[derive(Clone, Copy, Debug)]
pub struct TumblingProcessingTimeWindows(TumblingEventTimeWindows);

impl TumblingProcessingTimeWindows {
    /// Windows of `size` of wall time.
    pub fn of(size: Duration) -> Self {
        TumblingProcessingTimeWindows(TumblingEventTimeWindows::of(size))
    }
    /// Shifts the windows' alignment by `offset`.
    pub fn with_offset(self, offset: Duration) -> Self {
        TumblingProcessingTimeWindows(self.0.with_offset(offset))
    }
}

/// Processing-time sliding windows.
#[derive(Clone, Copy, Debug)]
pub struct SlidingProcessingTimeWindows(SlidingEventTimeWindows);

impl SlidingProcessingTimeWindows {
    /// Windows of `size` of wall time, starting every `slide`.
    pub fn of(size: Duration, slide: Duration) -> Self {
        SlidingProcessingTimeWindows(SlidingEventTimeWindows::of(size, slide))
    }
}

/// Event-time session windows: a key's records closer together than `gap` form one window.
#[derive(Clone, Copy, Debug)]
pub struct EventTimeSessionWindows {
    pub(crate) gap: i64,
}

impl EventTimeSessionWindows {
    /// Sessions that end after `gap` without a record.
    pub fn with_gap(gap: Duration) -> Self {
        EventTimeSessionWindows {
            gap: millis(gap).max(1),
        }
    }
}

/// Count windows: fire every `slide` records of a key over its last `size` records
/// (tumbling when `slide == size`). Like Flink's, they never fire a partial window.
#[derive(Clone, Copy, Debug)]
pub struct CountWindows {
    pub(crate) size: u64,
    pub(crate) slide: u64,
}

impl CountWindows {
    /// Tumbling count windows of `size` records.
    pub fn of(size: u64) -> Self {
        CountWindows {
            size: size.max(1),
            slide: size.max(1),
        }
    }
    /// Sliding count windows: every `slide` records, over the last `size`.
    pub fn sliding(size: u64, slide: u64) -> Self {
        CountWindows {
            size: size.max(1),
            slide: slide.max(1),
        }
    }
}

/// How records are grouped into windows.
#[derive(Clone, Copy, Debug)]
pub enum WindowSpec {
    /// Tumbling event-time windows.
    Tumbling(TumblingEventTimeWindows),
    /// Sliding event-time windows.
    Sliding(SlidingEventTimeWindows),
    /// Merging session windows in event time.
    Session(EventTimeSessionWindows),
    /// Count windows.
    Count(CountWindows),
    /// Tumbling windows in processing time.
    TumblingProcessing(TumblingProcessingTimeWindows),
    /// Sliding windows in processing time.
    SlidingProcessing(SlidingProcessingTimeWindows),
}

impl From<TumblingProcessingTimeWindows> for WindowSpec {
    fn from(w: TumblingProcessingTimeWindows) -> Self {
        WindowSpec::TumblingProcessing(w)
    }
}
impl From<SlidingProcessingTimeWindows> for WindowSpec {
    fn from(w: SlidingProcessingTimeWindows) -> Self {
        WindowSpec::SlidingProcessing(w)
    }
}

impl From<TumblingEventTimeWindows> for WindowSpec {
    fn from(w: TumblingEventTimeWindows) -> Self {
        WindowSpec::Tumbling(w)
    }
}
impl From<SlidingEventTimeWindows> for WindowSpec {
    fn from(w: SlidingEventTimeWindows) -> Self {
        WindowSpec::Sliding(w)
    }
}
impl From<EventTimeSessionWindows> for WindowSpec {
    fn from(w: EventTimeSessionWindows) -> Self {
        WindowSpec::Session(w)
    }
}
impl From<CountWindows> for WindowSpec {
    fn from(w: CountWindows) -> Self {
        WindowSpec::Count(w)
    }
}

impl WindowSpec {
    /// The time windows that contain `ts`, in `out` (Flink's assigners, including negative
    /// timestamps).
    pub fn assign(&self, ts: Timestamp, out: &mut Vec<Window>) {
        out.clear();
        match *self {
            WindowSpec::TumblingProcessing(t) => WindowSpec::Tumbling(t.0).assign(ts, out),
            WindowSpec::SlidingProcessing(s) => WindowSpec::Sliding(s.0).assign(ts, out),
            WindowSpec::Tumbling(t) => {
                let start = ts - (ts - t.offset).rem_euclid(t.size);
                out.push(Window {
                    start,
                    end: start + t.size,
                });
            }
            WindowSpec::Sliding(s) => {
                let last = ts - (ts - s.offset).rem_euclid(s.slide);
                let mut start = last;
                while start > ts - s.size {
                    out.push(Window {
                        start,
                        end: start + s.size,
                    });
                    start -= s.slide;
                }
            }
            WindowSpec::Session(s) => out.push(Window {
                start: ts,
                end: ts + s.gap,
            }),
            WindowSpec::Count(_) => out.push(Window::GLOBAL),
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            WindowSpec::Tumbling(t) => format!("tumbling {} ms", t.size),
            WindowSpec::Sliding(s) => format!("sliding {} ms every {} ms", s.size, s.slide),
            WindowSpec::Session(s) => format!("session gap {} ms", s.gap),
            WindowSpec::Count(c) => format!("count {} every {}", c.size, c.slide),
            WindowSpec::TumblingProcessing(t) => {
                format!("tumbling {} ms processing time", t.0.size)
            }
            WindowSpec::SlidingProcessing(s) => {
                format!(
                    "sliding {} ms every {} ms processing time",
                    s.0.size, s.0.slide
                )
            }
        }
    }

    /// Whether windows follow the wall clock instead of the watermark.
    pub fn is_processing_time(&self) -> bool {
        matches!(
            self,
            WindowSpec::TumblingProcessing(_) | WindowSpec::SlidingProcessing(_)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(spec: impl Into<WindowSpec>, ts: Timestamp) -> Vec<(Timestamp, Timestamp)> {
        let mut out = Vec::new();
        spec.into().assign(ts, &mut out);
        out.iter().map(|w| (w.start, w.end)).collect()
    }

    #[test]
    fn tumbling_windows_align_to_the_epoch_and_the_offset_also_below_zero() {
        let t = TumblingEventTimeWindows::of(Duration::from_millis(10));
        assert_eq!(windows(t, 0), [(0, 10)]);
        assert_eq!(windows(t, 9), [(0, 10)]);
        assert_eq!(windows(t, -1), [(-10, 0)]);
        let shifted = t.with_offset(Duration::from_millis(3));
        assert_eq!(windows(shifted, 2), [(-7, 3)]);
    }

    #[test]
    fn a_record_is_in_size_over_slide_sliding_windows_latest_first() {
        let s = SlidingEventTimeWindows::of(Duration::from_millis(10), Duration::from_millis(5));
        assert_eq!(windows(s, 7), [(5, 15), (0, 10)]);
        assert_eq!(windows(s, -3), [(-5, 5), (-10, 0)]);
    }

    #[test]
    fn a_session_window_is_the_record_plus_the_gap_and_touching_ones_merge() {
        let s = EventTimeSessionWindows::with_gap(Duration::from_millis(10));
        assert_eq!(windows(s, 100), [(100, 110)]);
        let a = Window {
            start: 100,
            end: 110,
        };
        let b = Window {
            start: 110,
            end: 120,
        };
        let c = Window {
            start: 121,
            end: 131,
        };
        assert!(a.touches(&b) && !b.touches(&c));
        assert_eq!(
            a.cover(&b),
            Window {
                start: 100,
                end: 120
            }
        );
        assert_eq!(a.max_timestamp(), 109);
    }
}
