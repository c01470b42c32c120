//! Typed keyed state for process functions: a value, a list or a map per key.
//!
//! The state of a key in a [`crate::ops::process::keyed::KeyedProcessFunction`] is a struct of these,
//! created empty on the key's first record. `#[process_fn]` generates that struct from the
//! function's parameters; the parameter names are the state's stable names
//! ([`KeyedStateNames`]), which checkpoints use to find the state again after a recompile.
use std::hash::Hash;

/// One value per key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ValueState<T>(Option<T>);

impl<T> Default for ValueState<T> {
    fn default() -> Self {
        ValueState(None)
    }
}

impl<T> ValueState<T> {
    /// The value, if set.
    pub fn get(&self) -> Option<&T> {
        self.0.as_ref()
    }
    /// Mutable access to the value, if set.
    pub fn get_mut(&mut self) -> Option<&mut T> {
        self.0.as_mut()
    }
    /// Sets the value.
    pub fn set(&mut self, v: T) {
        self.0 = Some(v)
    }
    /// Removes and returns the value.
    pub fn take(&mut self) -> Option<T> {
        self.0.take()
    }
    /// Removes the value.
    pub fn clear(&mut self) {
        self.0 = None
    }
    /// The value, inserting `f()` first if unset.
    pub fn get_or_insert_with(&mut self, f: impl FnOnce() -> T) -> &mut T {
        self.0.get_or_insert_with(f)
    }
    /// Whether no value is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

/// A list of values per key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct ListState<T>(Vec<T>);

impl<T> Default for ListState<T> {
    fn default() -> Self {
        ListState(Vec::new())
    }
}

impl<T> ListState<T> {
    /// Appends a value.
    pub fn add(&mut self, v: T) {
        self.0.push(v)
    }
    /// The values, in insertion order.
    pub fn get(&self) -> &[T] {
        &self.0
    }
    /// Removes and returns all values.
    pub fn take(&mut self) -> Vec<T> {
        std::mem::take(&mut self.0)
    }
    /// Replaces the values.
    pub fn update(&mut self, values: Vec<T>) {
        self.0 = values
    }
    /// Keeps the values for which `f` holds.
    pub fn retain(&mut self, f: impl FnMut(&T) -> bool) {
        self.0.retain(f)
    }
    /// Removes all values.
    pub fn clear(&mut self) {
        self.0.clear()
    }
    /// Number of values.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A map per key.
#[derive(Clone, Debug)]
pub struct MapState<K, V>(crate::ops::Table<K, V>);

impl<K, V> Default for MapState<K, V> {
    fn default() -> Self {
        MapState(Default::default())
    }
}

impl<K: Hash + Eq, V> MapState<K, V> {
    /// The value of `k`.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.0.get(k)
    }
    /// Mutable access to the value of `k`.
    pub fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        self.0.get_mut(k)
    }
    /// Sets the value of `k`, returning the old one.
    pub fn put(&mut self, k: K, v: V) -> Option<V> {
        self.0.insert(k, v)
    }
    /// Removes `k`.
    pub fn remove(&mut self, k: &K) -> Option<V> {
        self.0.remove(k)
    }
    /// Whether `k` has a value.
    pub fn contains(&self, k: &K) -> bool {
        self.0.contains_key(k)
    }
    /// The entries, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter()
    }
    /// Keeps the entries for which `f` holds.
    pub fn retain(&mut self, f: impl FnMut(&K, &mut V) -> bool) {
        self.0.retain(f)
    }
    /// Removes every entry.
    pub fn clear(&mut self) {
        self.0.clear()
    }
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Checkpoints store a map as its entries.
impl<K: serde::Serialize, V: serde::Serialize> serde::Serialize for MapState<K, V> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

impl<'de, K, V> serde::Deserialize<'de> for MapState<K, V>
where
    K: serde::Deserialize<'de> + Hash + Eq,
    V: serde::Deserialize<'de>,
{
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let entries: Vec<(K, V)> = serde::Deserialize::deserialize(d)?;
        Ok(MapState(entries.into_iter().collect()))
    }
}

/// The stable names of a keyed state struct's parts (its field names).
pub trait KeyedStateNames {
    /// The names, in declaration order.
    const NAMES: &'static [&'static str];
}
