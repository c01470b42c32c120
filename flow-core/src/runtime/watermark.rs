//! Watermarks over several inputs: an operator's watermark is the minimum over the inputs
//! that have neither ended nor gone idle (Flink's rule). The consuming side of an exchange
//! keeps one [`InputWatermarks`] over its producers.
use crate::record::{Event, Timestamp};

/// The watermark state of one consumer over its producers.
#[derive(Debug)]
pub(crate) struct InputWatermarks {
    watermarks: Vec<Timestamp>,
    ended: Vec<bool>,
    idle: Vec<bool>,
    open: usize,
    all_idle: bool,
    current: Timestamp,
}

impl InputWatermarks {
    /// Tracks `producers` inputs, none ended, none idle, no watermark yet.
    pub(crate) fn new(producers: usize) -> Self {
        InputWatermarks {
            watermarks: vec![Timestamp::MIN; producers],
            ended: vec![false; producers],
            idle: vec![false; producers],
            open: producers,
            all_idle: false,
            current: Timestamp::MIN,
        }
    }

    /// The number of producers.
    pub(crate) fn producers(&self) -> usize {
        self.ended.len()
    }

    /// Whether producer `i` has ended.
    pub(crate) fn ended(&self, i: usize) -> bool {
        self.ended.get(i).copied().unwrap_or(true)
    }

    /// Whether every producer has ended.
    pub(crate) fn all_ended(&self) -> bool {
        self.open == 0
    }

    /// Producer `from` sent records: it is no longer idle.
    pub(crate) fn on_data(&mut self, from: usize) {
        if let Some(idle) = self.idle.get_mut(from) {
            *idle = false;
            self.all_idle = false;
        }
    }

    /// Producer `from` sent a control event. Returns the event to pass downstream, if the
    /// combined state changed: a higher watermark, or `Idle` when every live producer is idle.
    pub(crate) fn on_event(&mut self, from: usize, event: Event) -> Option<Event> {
        match event {
            Event::Watermark(w) => {
                if let Some(slot) = self.watermarks.get_mut(from) {
                    *slot = (*slot).max(w);
                }
            }
            Event::End => {
                if let Some(e) = self.ended.get_mut(from) {
                    if !*e {
                        *e = true;
                        self.open -= 1;
                    }
                }
            }
            Event::Idle => {
                if let Some(idle) = self.idle.get_mut(from) {
                    *idle = true;
                }
            }
            // Barriers are aligned by the exchange, before this.
            Event::Flush | Event::BatchEnd | Event::ProcessingTime(_) | Event::Barrier(_) => {
                return None
            }
        }
        if self.open == 0 {
            return None;
        }
        match self.combined() {
            Some(w) => {
                self.all_idle = false;
                (w > self.current).then(|| {
                    self.current = w;
                    Event::Watermark(w)
                })
            }
            // Every live producer is idle: so is this input.
            None if !self.all_idle => {
                self.all_idle = true;
                Some(Event::Idle)
            }
            None => None,
        }
    }

    /// The minimum over producers that have neither ended nor gone idle; `None` while every
    /// live producer is idle (the watermark holds).
    fn combined(&self) -> Option<Timestamp> {
        let live = || (0..self.watermarks.len()).filter(|&i| !self.ended[i]);
        if live().next().is_none() {
            return Some(Timestamp::MAX);
        }
        live()
            .filter(|&i| !self.idle[i])
            .map(|i| self.watermarks[i])
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_minimum_of_live_producers_counts_and_idle_ones_are_skipped() {
        let mut w = InputWatermarks::new(2);
        assert_eq!(
            w.on_event(0, Event::Watermark(10)),
            None,
            "producer 1 holds it"
        );
        assert_eq!(
            w.on_event(1, Event::Watermark(5)),
            Some(Event::Watermark(5))
        );
        assert_eq!(w.on_event(1, Event::Idle), Some(Event::Watermark(10)));
        assert_eq!(w.on_event(0, Event::Idle), Some(Event::Idle));
        w.on_data(1);
        assert_eq!(
            w.on_event(1, Event::Watermark(20)),
            Some(Event::Watermark(20))
        );
        assert_eq!(
            w.on_event(1, Event::End),
            Some(Event::Idle),
            "only idle producer 0 is left"
        );
        assert!(!w.all_ended());
        assert_eq!(w.on_event(0, Event::End), None);
        assert!(w.all_ended());
    }

    proptest! {
        /// Whatever the producers send, in any interleaving, the watermarks passed on rise
        /// strictly and never exceed what every live, non-idle producer has promised.
        #[test]
        fn passed_on_watermarks_rise_and_respect_every_live_producer(
            events in proptest::collection::vec((0usize..3, 0u8..4, -50i64..50), 0..200)
        ) {
            let mut w = InputWatermarks::new(3);
            let mut sent = [Timestamp::MIN; 3];
            let mut idle = [false; 3];
            let mut ended = [false; 3];
            let mut last = Timestamp::MIN;
            for (from, kind, t) in events {
                if ended[from] { continue; }
                let e = match kind {
                    0 => { w.on_data(from); idle[from] = false; continue; }
                    1 => { sent[from] = sent[from].max(t); Event::Watermark(t) }
                    2 => { idle[from] = true; Event::Idle }
                    _ => { ended[from] = true; Event::End }
                };
                if let Some(Event::Watermark(out)) = w.on_event(from, e) {
                    prop_assert!(out > last, "watermark {out} after {last}");
                    last = out;
                    for p in 0..3 {
                        if !ended[p] && !idle[p] {
                            prop_assert!(out <= sent[p], "{out} passes producer {p} at {}", sent[p]);
                        }
                    }
                }
            }
        }
    }
}
