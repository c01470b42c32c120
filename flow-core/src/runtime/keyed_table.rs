//! [`KeyedTable`]: the in-memory keyed state of one subtask — a hash table from key to value —
//! that remembers which keys changed since the last checkpoint, so a checkpoint encodes only
//! those (an incremental snapshot whose cost is what changed, not the size of the state).
//!
//! Change tracking is a flag beside each value and a list of the keys that set it: reading a
//! value costs what a hash-map lookup costs; the first change of a key after a checkpoint
//! costs one key clone more. Without checkpoints it is off and the table is a plain map.
//!
//! ```
//! use flow_core::state::KeyedTable;
//!
//! let mut counts: KeyedTable<String, u64> = KeyedTable::tracking();
//! *counts.get_or_insert_with("flink".to_string(), || 0) += 1;
//! *counts.get_or_insert_with("flow".to_string(), || 0) += 2;
//! assert_eq!(counts.get("flow"), Some(&2));
//! let changed: Vec<_> = counts.take_changes().collect();
//! assert_eq!(changed.len(), 2);
//! assert_eq!(counts.take_changes().count(), 0, "nothing changed since");
//! ```
use hashbrown::hash_map::Entry;
use std::borrow::Borrow;
use std::hash::Hash;

type Map<K, V> = hashbrown::HashMap<K, Slot<V>, rustc_hash::FxBuildHasher>;

/// How [`KeyedTable::upsert`] folds an item into a value.
pub trait Fold<T, V> {
    /// The value of a key's first item.
    fn insert(&mut self, item: T) -> V;
    /// Folds a later item into the value.
    fn update(&mut self, value: &mut V, item: T);
}

/// A pair of closures as a [`Fold`].
pub struct FoldWith<I, U>(pub I, pub U);

impl<T, V, I: FnMut(T) -> V, U: FnMut(&mut V, T)> Fold<T, V> for FoldWith<I, U> {
    fn insert(&mut self, item: T) -> V {
        (self.0)(item)
    }
    fn update(&mut self, value: &mut V, item: T) {
        (self.1)(value, item)
    }
}

/// A value and whether it changed since the last checkpoint.
struct Slot<V> {
    value: V,
    dirty: bool,
}

/// Marks an existing entry changed (once per checkpoint), when changes are tracked.
#[inline]
fn touch_entry<K: Clone, V, S: std::hash::BuildHasher>(
    changed: &mut Option<Vec<K>>,
    o: &mut hashbrown::hash_map::OccupiedEntry<'_, K, Slot<V>, S>,
) {
    if let Some(c) = changed.as_mut() {
        if !o.get().dirty {
            o.get_mut().dirty = true;
            c.push(o.key().clone());
        }
    }
}

/// Records a new key as changed; returns its changed flag.
#[inline]
fn record_new<K: Clone>(changed: &mut Option<Vec<K>>, key: &K) -> bool {
    match changed.as_mut() {
        Some(c) => {
            c.push(key.clone());
            true
        }
        None => false,
    }
}

/// Keyed state of one subtask with change tracking for incremental checkpoints.
pub struct KeyedTable<K, V> {
    map: Map<K, V>,
    /// Keys changed (or removed) since the last [`KeyedTable::take_changes`]; `None` when
    /// changes are not tracked.
    changed: Option<Vec<K>>,
}

impl<K, V> Default for KeyedTable<K, V> {
    fn default() -> Self {
        KeyedTable {
            map: Map::default(),
            changed: None,
        }
    }
}

impl<K: Hash + Eq + Clone, V> KeyedTable<K, V> {
    /// A table that does not track changes (no checkpoints).
    pub fn new() -> Self {
        Self::default()
    }

    /// A table that tracks changes for incremental checkpoints.
    pub fn tracking() -> Self {
        KeyedTable {
            map: Map::default(),
            changed: Some(Vec::new()),
        }
    }

    /// Turns change tracking on or off.
    pub fn track_changes(&mut self, on: bool) {
        self.changed = on.then(Vec::new);
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The value of `key`.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|s| &s.value)
    }

    /// The value of `key`, to change: the key counts as changed.
    #[inline]
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let slot = self.map.get_mut(key)?;
        if let Some(c) = self.changed.as_mut() {
            if !slot.dirty {
                slot.dirty = true;
                c.push(key.clone());
            }
        }
        Some(&mut slot.value)
    }

    /// The value of `key`, inserting `f()` first if absent: the key counts as changed.
    #[inline]
    pub fn get_or_insert_with(&mut self, key: K, f: impl FnOnce() -> V) -> &mut V {
        match self.map.entry(key) {
            Entry::Occupied(mut o) => {
                touch_entry(&mut self.changed, &mut o);
                &mut o.into_mut().value
            }
            Entry::Vacant(v) => {
                let dirty = record_new(&mut self.changed, v.key());
                &mut v.insert(Slot { value: f(), dirty }).value
            }
        }
    }

    /// Folds `item` into the value of `key` with `f`: `f.update` if present, else
    /// `f.insert` creates it. The key counts as changed. Returns the value.
    #[inline]
    pub fn upsert<T, F: Fold<T, V>>(&mut self, key: K, item: T, f: &mut F) -> &mut V {
        match self.map.entry(key) {
            Entry::Occupied(mut o) => {
                touch_entry(&mut self.changed, &mut o);
                let slot = o.into_mut();
                f.update(&mut slot.value, item);
                &mut slot.value
            }
            Entry::Vacant(v) => {
                let dirty = record_new(&mut self.changed, v.key());
                &mut v
                    .insert(Slot {
                        value: f.insert(item),
                        dirty,
                    })
                    .value
            }
        }
    }

    /// Sets the value of `key`: the key counts as changed. Returns the old value.
    #[inline]
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.map.entry(key) {
            Entry::Occupied(mut o) => {
                touch_entry(&mut self.changed, &mut o);
                Some(std::mem::replace(&mut o.get_mut().value, value))
            }
            Entry::Vacant(v) => {
                let dirty = record_new(&mut self.changed, v.key());
                v.insert(Slot { value, dirty });
                None
            }
        }
    }

    /// Removes `key`: the key counts as changed (deleted). Returns its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let slot = self.map.remove(key)?;
        if let Some(c) = self.changed.as_mut() {
            if !slot.dirty {
                c.push(key.clone());
            }
        }
        Some(slot.value)
    }

    /// Loads an entry from a checkpoint: not a change.
    pub fn restore(&mut self, key: K, value: V) {
        self.map.insert(
            key,
            Slot {
                value,
                dirty: false,
            },
        );
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, s)| (k, &s.value))
    }

    /// Removes and returns every entry: all keys count as changed (deleted).
    pub fn drain(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        let changed = &mut self.changed;
        self.map.drain().map(move |(k, s)| {
            if let Some(c) = changed.as_mut() {
                if !s.dirty {
                    c.push(k.clone());
                }
            }
            (k, s.value)
        })
    }

    /// The keys changed since the last call, each with its current value (`None`: deleted),
    /// and clears the changes. Empty when changes are not tracked.
    pub fn take_changes(&mut self) -> impl Iterator<Item = (K, Option<&V>)> + '_ {
        let keys = self
            .changed
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        let map = &mut self.map;
        // First clear the flags, then hand out shared references.
        for k in &keys {
            if let Some(s) = map.get_mut(k) {
                s.dirty = false;
            }
        }
        let map = &*map;
        keys.into_iter().map(move |k| {
            let v = map.get(&k).map(|s| &s.value);
            (k, v)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_each_key_once_with_its_current_value_or_a_deletion() {
        let mut t: KeyedTable<u32, u32> = KeyedTable::tracking();
        t.insert(1, 10);
        let mut add = FoldWith(|x| x, |v: &mut u32, x| *v += x);
        t.upsert(2, 5, &mut add);
        t.upsert(2, 5, &mut add);
        *t.get_or_insert_with(3, || 0) += 1;
        let mut c: Vec<_> = t.take_changes().map(|(k, v)| (k, v.copied())).collect();
        c.sort();
        assert_eq!(c, vec![(1, Some(10)), (2, Some(10)), (3, Some(1))]);
        assert_eq!(t.get(&2), Some(&10), "reading is no change");
        assert_eq!(t.take_changes().count(), 0);
        t.remove(&1);
        if let Some(v) = t.get_mut(&3) {
            *v = 7;
        }
        let mut c: Vec<_> = t.take_changes().map(|(k, v)| (k, v.copied())).collect();
        c.sort();
        assert_eq!(c, vec![(1, None), (3, Some(7))]);
        t.restore(9, 9);
        assert_eq!(
            t.take_changes().count(),
            0,
            "restored entries are not changes"
        );
        let drained: Vec<_> = t.drain().collect();
        assert_eq!(drained.len(), 3);
        assert!(
            t.take_changes().all(|(_, v)| v.is_none()),
            "drained keys are deletions"
        );
    }

    #[test]
    fn without_tracking_nothing_is_recorded() {
        let mut t: KeyedTable<u32, u32> = KeyedTable::new();
        t.insert(1, 1);
        t.remove(&1);
        assert_eq!(t.take_changes().count(), 0);
    }
}
