//! Keyed timers of process functions: per key and timestamp, in event time and in
//! processing time, deduplicated, fired in timestamp order.
use crate::ops::Table;
use crate::record::Timestamp;
use std::collections::BTreeMap;
use std::hash::Hash;

/// The two time domains of a timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Domain {
    /// Fired by the watermark.
    EventTime = 0,
    /// Fired by the wall clock.
    ProcessingTime = 1,
}

/// The timers of one subtask's keys.
pub(crate) struct Timers<K> {
    /// Keys with a timer, by domain and time (a key may appear for a deleted timer: `live`
    /// decides).
    by_time: [BTreeMap<Timestamp, Vec<K>>; 2],
    live: Table<(K, Timestamp, Domain), ()>,
}

impl<K> Default for Timers<K> {
    fn default() -> Self {
        Timers {
            by_time: [BTreeMap::new(), BTreeMap::new()],
            live: Table::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> Timers<K> {
    /// Registers `key`'s timer at `t`; a timer registered twice fires once.
    pub(crate) fn register(&mut self, key: &K, t: Timestamp, domain: Domain) {
        if self.live.insert((key.clone(), t, domain), ()).is_none() {
            self.by_time[domain as usize]
                .entry(t)
                .or_default()
                .push(key.clone());
        }
    }

    /// Cancels `key`'s timer at `t`, if any.
    pub(crate) fn delete(&mut self, key: &K, t: Timestamp, domain: Domain) {
        self.live.remove(&(key.clone(), t, domain));
    }

    /// Removes and returns the earliest time at or before `now` with the keys whose timer at
    /// that time is still live.
    pub(crate) fn pop_due(
        &mut self,
        now: Timestamp,
        domain: Domain,
    ) -> Option<(Timestamp, Vec<K>)> {
        let entry = self.by_time[domain as usize].first_entry()?;
        if *entry.key() > now {
            return None;
        }
        let (t, mut keys) = entry.remove_entry();
        keys.retain(|k| self.live.remove(&(k.clone(), t, domain)).is_some());
        Some((t, keys))
    }

    /// Every live timer: key, time, domain.
    pub(crate) fn live(&self) -> impl Iterator<Item = (&K, Timestamp, Domain)> {
        self.live.keys().map(|(k, t, d)| (k, *t, *d))
    }

    /// The earliest processing-time timer.
    pub(crate) fn next_processing_time(&self) -> Option<Timestamp> {
        self.by_time[Domain::ProcessingTime as usize]
            .first_key_value()
            .map(|(&t, _)| t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_once_in_time_order_and_deleted_ones_never() {
        let mut t = Timers::default();
        t.register(&"a", 20, Domain::EventTime);
        t.register(&"a", 20, Domain::EventTime);
        t.register(&"b", 10, Domain::EventTime);
        t.register(&"c", 10, Domain::EventTime);
        t.delete(&"c", 10, Domain::EventTime);
        t.register(&"a", 5, Domain::ProcessingTime);
        assert_eq!(t.pop_due(15, Domain::EventTime), Some((10, vec!["b"])));
        assert_eq!(t.pop_due(15, Domain::EventTime), None);
        assert_eq!(t.pop_due(25, Domain::EventTime), Some((20, vec!["a"])));
        assert_eq!(t.pop_due(25, Domain::EventTime), None);
        assert_eq!(t.next_processing_time(), Some(5));
    }
}
