//! Helpers shared by the integration tests: a `BTreeMap` model of keyed state.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;

use flow_state::{CheckpointStore, CheckpointWriter, KeyGroupRange, Result};

/// (operator uid, state name)
pub type StateId = (&'static str, &'static str);
/// Per state: (key group, key) -> value.
pub type Model = BTreeMap<StateId, BTreeMap<(u32, Vec<u8>), Vec<u8>>>;
/// Per state: (key group, key) -> Some(value) or None (deletion), the changes of one checkpoint.
pub type Delta = BTreeMap<StateId, BTreeMap<(u32, Vec<u8>), Option<Vec<u8>>>>;

/// Writes `delta` into `cp`, one state writer per state.
pub fn write_delta(cp: &mut CheckpointWriter<'_>, delta: &Delta) -> Result<()> {
    for ((uid, name), changes) in delta {
        let mut w = cp.state(uid, name);
        for ((kg, key), value) in changes {
            w.put(*kg, key, value.as_deref())?;
        }
        w.finish()?;
    }
    Ok(())
}

/// Applies `delta` to `model`.
pub fn apply(model: &mut Model, delta: &Delta) {
    for (state, changes) in delta {
        let m = model.entry(*state).or_default();
        for (k, v) in changes {
            match v {
                Some(v) => {
                    m.insert(k.clone(), v.clone());
                }
                None => {
                    m.remove(k);
                }
            }
        }
    }
}

/// Asserts that checkpoint `id` holds exactly `model` in key groups `range`.
pub fn check_checkpoint(store: &CheckpointStore, id: u64, model: &Model, range: KeyGroupRange) {
    let view = store
        .restore_view(id)
        .unwrap_or_else(|e| panic!("restore {id}: {e}"));
    for (state, m) in model {
        let expected: Vec<(u32, Vec<u8>, Vec<u8>)> = m
            .iter()
            .filter(|((kg, _), _)| range.contains(*kg))
            .map(|((kg, k), v)| (*kg, k.clone(), v.clone()))
            .collect();
        let got: Vec<(u32, Vec<u8>, Vec<u8>)> = match view.entries(state.0, state.1, range) {
            Ok(it) => it
                .map(|e| (e.key_group, e.key.to_vec(), e.value.to_vec()))
                .collect(),
            // A state that never had an entry written has no segments and is unknown.
            Err(flow_state::StateError::UnknownState { .. }) => Vec::new(),
            Err(e) => panic!("entries of {state:?} in checkpoint {id}: {e}"),
        };
        assert_eq!(
            got, expected,
            "checkpoint {id}, state {state:?}, range {range:?}"
        );
        for ((kg, k), v) in m.iter().filter(|((kg, _), _)| range.contains(*kg)) {
            assert_eq!(
                view.get(state.0, state.1, *kg, k).unwrap(),
                Some(v.as_slice())
            );
        }
    }
}

/// Full key-group range of the tests.
pub const ALL: KeyGroupRange = KeyGroupRange {
    start: 0,
    end: 1 << 20,
};
