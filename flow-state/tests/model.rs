//! Property test: random puts and deletes over several incremental checkpoints, compared with a
//! `BTreeMap` model; every checkpoint is restored (whole and for random key-group sub-ranges,
//! as rescaling asks for) and must equal the model as of that checkpoint.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::sync::Arc;

use common::*;
use flow_state::{CheckpointStore, FsStorage, KeyGroupRange, SimStorage, Storage, StoreOptions};
use proptest::prelude::*;

const STATES: [StateId; 3] = [
    ("dedup", "seen"),
    ("window-sum", "sums"),
    ("window-sum", "timers"),
];
const KEY_GROUPS: u32 = 12;

/// (state index, key group, key, value or deletion)
type Op = (usize, u32, Vec<u8>, Option<Vec<u8>>);

fn op() -> impl Strategy<Value = Op> {
    (
        0..STATES.len(),
        0..KEY_GROUPS,
        // Short keys, and keys of 7 to 18 bytes that share long prefixes (the merge compares
        // the first 16 bytes as integers).
        prop_oneof![
            prop::collection::vec(0u8..4, 0..3),
            prop::collection::vec(0u8..2, 7..19),
        ],
        prop::option::weighted(0.7, prop::collection::vec(any::<u8>(), 0..6)),
    )
}

/// How a checkpoint's changes of one state are spread over writers (as subtasks of
/// different key-group ranges, or a failed checkpoint's changes carried into the next, write
/// them): each key goes to exactly one writer.
#[derive(Clone, Copy, Debug)]
enum Split {
    /// One writer.
    One,
    /// Key groups from `pivot` up first, then those below: segments in descending order.
    Descending(u32),
    /// By the key's length: two writers whose key-group ranges overlap.
    Overlapping,
}

fn write_split(cp: &mut flow_state::CheckpointWriter<'_>, delta: &Delta, split: Split) {
    let first = |kg: u32, key: &[u8]| match split {
        Split::One => true,
        Split::Descending(pivot) => kg >= pivot,
        Split::Overlapping => key.len().is_multiple_of(2),
    };
    for ((uid, name), changes) in delta {
        for pass in [true, false] {
            let mut w = cp.state(uid, name);
            for ((kg, key), value) in changes {
                if first(*kg, key) == pass {
                    w.put(*kg, key, value.as_deref()).unwrap();
                }
            }
            w.finish().unwrap();
        }
    }
}

fn split() -> impl Strategy<Value = Split> {
    prop_oneof![
        Just(Split::One),
        (0..=KEY_GROUPS).prop_map(Split::Descending),
        Just(Split::Overlapping),
    ]
}

fn run(
    storage: Arc<dyn Storage>,
    dir: &std::path::Path,
    checkpoints: Vec<Vec<Op>>,
    target: u64,
    ranges: Vec<(u32, u32)>,
    split: Split,
) {
    let options = StoreOptions {
        segment_target_bytes: target,
    };
    let mut store = CheckpointStore::open_with(dir, storage.clone(), options.clone()).unwrap();
    let mut model = Model::new();
    let mut models = Vec::new();
    for (i, ops) in checkpoints.iter().enumerate() {
        let id = i as u64 + 1;
        let mut delta = Delta::new();
        for (s, kg, key, value) in ops {
            delta
                .entry(STATES[*s])
                .or_default()
                .insert((*kg, key.clone()), value.clone());
        }
        let mut cp = store.begin(id).unwrap();
        write_split(&mut cp, &delta, split);
        cp.put_metadata("source-0", &id.to_le_bytes());
        cp.commit().unwrap();
        apply(&mut model, &delta);
        models.push(model.clone());
    }
    // Restore from a fresh open, as after a restart.
    drop(store);
    let store = CheckpointStore::open_with(dir, storage, options).unwrap();
    let latest = store.latest_complete().unwrap();
    assert_eq!(
        latest.checkpoint,
        Some(checkpoints.len() as u64).filter(|&n| n > 0)
    );
    assert!(!latest.fell_back());
    for (i, m) in models.iter().enumerate() {
        let id = i as u64 + 1;
        check_checkpoint(&store, id, m, ALL);
        for &(a, b) in &ranges {
            let range = KeyGroupRange {
                start: a.min(b),
                end: a.max(b),
            };
            check_checkpoint(&store, id, m, range);
        }
        let view = store.restore_view(id).unwrap();
        assert_eq!(view.metadata("source-0"), Some(&id.to_le_bytes()[..]));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn incremental_checkpoints_match_model(
        checkpoints in prop::collection::vec(prop::collection::vec(op(), 0..40), 1..7),
        target in prop::sample::select(vec![1u64, 48, 200, 64 << 20]),
        ranges in prop::collection::vec((0..=KEY_GROUPS, 0..=KEY_GROUPS), 1..4),
        split in split(),
    ) {
        run(Arc::new(SimStorage::new()), std::path::Path::new("/ckpt"), checkpoints, target, ranges, split);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    /// The same on the real filesystem (segments memory-mapped).
    #[test]
    fn incremental_checkpoints_match_model_on_disk(
        checkpoints in prop::collection::vec(prop::collection::vec(op(), 0..40), 1..5),
        target in prop::sample::select(vec![1u64, 200, 64 << 20]),
        ranges in prop::collection::vec((0..=KEY_GROUPS, 0..=KEY_GROUPS), 1..3),
        split in split(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        run(Arc::new(FsStorage), dir.path(), checkpoints, target, ranges, split);
    }
}
