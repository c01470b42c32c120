//! Records, batches and the control events that travel with them.

/// Event time in milliseconds since the Unix epoch.
pub type Timestamp = i64;

/// The timestamp of a record that has none (no timestamp was assigned).
pub const NO_TIMESTAMP: Timestamp = i64::MIN;

/// Control events travel through chains and exchanges in order with the records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// No record with a timestamp at or below this value will follow.
    Watermark(Timestamp),
    /// The subtask has no input right now: operators that buffer (pre-aggregation, exchange
    /// buffers) pass what they hold downstream instead of waiting. Never crosses an exchange.
    Flush,
    /// The input has ended; stateful operators emit their final results.
    End,
    /// The wall clock (ms since the epoch) reached a time an operator asked to be woken at:
    /// processing-time windows and timers fire, idleness is detected. Never crosses an exchange.
    ProcessingTime(Timestamp),
    /// The sending source split has had no records for its idle timeout: it stops holding
    /// back the watermark until it sends records again.
    Idle,
    /// A batch from the stage's input has been pushed through the chain: timestamp assigners
    /// emit their watermark now (watermarks follow the data, once per batch). Never crosses
    /// an exchange.
    BatchEnd,
    /// Checkpoint barrier `n`: every record before it belongs to checkpoint `n`, every record
    /// after it to a later one. Sources inject it between batches, after their watermark;
    /// it travels in the same channels as records and watermarks, and an operator with
    /// several inputs passes it on only once it arrived on all of them (alignment).
    Barrier(u64),
}

/// A batch of records with their timestamps; `ts` is empty when no record has one.
#[derive(Debug)]
pub struct Batch<T> {
    /// The records.
    pub data: Vec<T>,
    /// The records' timestamps, parallel to `data`, or empty.
    pub ts: Vec<Timestamp>,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch {
            data: Vec::new(),
            ts: Vec::new(),
        }
    }
}

impl<T> Batch<T> {
    /// An empty batch with room for `n` records.
    pub fn with_capacity(n: usize) -> Self {
        Batch {
            data: Vec::with_capacity(n),
            ts: Vec::new(),
        }
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Appends a record; keeps `ts` parallel to `data` once any record carries a timestamp.
    #[inline]
    pub fn push(&mut self, item: T, ts: Timestamp) {
        if ts != NO_TIMESTAMP && self.ts.len() < self.data.len() {
            self.ts.resize(self.data.len(), NO_TIMESTAMP);
        }
        self.data.push(item);
        if !self.ts.is_empty() || ts != NO_TIMESTAMP {
            self.ts.push(ts);
        }
    }

    /// Removes every record, calling `f` on each with its timestamp.
    #[inline]
    pub fn drain_into(&mut self, mut f: impl FnMut(T, Timestamp)) {
        if self.ts.is_empty() {
            for x in self.data.drain(..) {
                f(x, NO_TIMESTAMP)
            }
        } else {
            for (x, t) in self.data.drain(..).zip(self.ts.drain(..)) {
                f(x, t)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_stay_parallel_when_they_start_midway() {
        let mut b = Batch::default();
        b.push(1, NO_TIMESTAMP);
        b.push(2, 20);
        b.push(3, NO_TIMESTAMP);
        let mut out = vec![];
        b.drain_into(|x, t| out.push((x, t)));
        assert_eq!(out, vec![(1, NO_TIMESTAMP), (2, 20), (3, NO_TIMESTAMP)]);
        assert!(b.is_empty() && b.ts.is_empty());
    }
}
