//! Background compaction: a state's chain merged off the checkpoint path, adopted by a later
//! checkpoint, protected from garbage collection while it runs, and garbage after a crash.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use common::*;
use flow_state::{CheckpointStore, SimStorage};

const A: StateId = ("a", "s");
const B: StateId = ("b", "t");

/// Checkpoint `i`'s changes: keys of state A rewritten, a few deleted, one new per round;
/// state B touched now and then.
fn delta(i: u64) -> Delta {
    let mut d = Delta::new();
    let a = d.entry(A).or_default();
    for k in 0..40u64 {
        let key = format!("k{k:03}").into_bytes();
        let kg = (k % 7) as u32;
        if (k + i).is_multiple_of(5) {
            a.insert((kg, key), None);
        } else if !(k * 3 + i).is_multiple_of(4) {
            a.insert((kg, key), Some(format!("v{i}-{k}").into_bytes()));
        }
    }
    a.insert((3, format!("new{i:03}").into_bytes()), Some(vec![i as u8]));
    if i.is_multiple_of(3) {
        d.entry(B)
            .or_default()
            .insert((1, b"b".to_vec()), Some(vec![i as u8]));
    }
    d
}

/// Commits checkpoints `from..=to` of [`delta`] into `store`, applying them to `model`.
fn run(store: &mut CheckpointStore, model: &mut Model, from: u64, to: u64) {
    for i in from..=to {
        let d = delta(i);
        let mut cp = store.begin(i).unwrap();
        write_delta(&mut cp, &d).unwrap();
        cp.commit().unwrap();
        apply(model, &d);
    }
}

/// A store in `dir` on `sim` with checkpoints `1..=n` of [`delta`] committed, and its model.
fn committed(sim: &SimStorage, dir: &Path, n: u64) -> (CheckpointStore, Model) {
    let mut store = CheckpointStore::open(dir, Arc::new(sim.clone())).unwrap();
    let mut model = Model::new();
    run(&mut store, &mut model, 1, n);
    (store, model)
}

fn compacted_files(sim: &SimStorage, dir: &Path) -> Vec<String> {
    sim.files(dir)
        .into_iter()
        .filter(|f| f.contains("-c0"))
        .collect()
}

#[test]
fn a_compacted_chain_reads_the_same_and_replaces_the_segments_it_merged() {
    let (sim, dir) = (SimStorage::new(), Path::new("/ckpt"));
    let (mut store, mut model) = committed(&sim, dir, 6);
    let before = store.restore_view(6).unwrap().segment_count("a", "s");
    assert_eq!(before, 6);

    let plan = store
        .plan_compaction(6, "a", "s", u64::MAX)
        .unwrap()
        .unwrap();
    let files = plan.files();
    assert!(plan.run(&AtomicBool::new(false)).unwrap());
    let slices = files.take_finished();
    // One bottom segment (checkpoint 1's), so one slice.
    assert_eq!(slices.len(), 1);
    let done = &slices[0];
    assert_eq!(done.slice(), (0, 1));
    assert_eq!(done.base(), 6);
    assert_eq!(done.state(), ("a", "s"));
    assert!(done.bytes_written() < done.bytes_read(), "{done:?}");

    // Checkpoint 7 adopts it: its chain is the compacted segment and 7's own.
    let d = delta(7);
    let mut cp = store.begin(7).unwrap();
    assert!(cp.adopt(done));
    write_delta(&mut cp, &d).unwrap();
    cp.commit().unwrap();
    files.committed(0);
    apply(&mut model, &d);
    check_checkpoint(&store, 7, &model, ALL);
    assert_eq!(store.restore_view(7).unwrap().segment_count("a", "s"), 2);
    // State B was not compacted.
    assert_eq!(store.restore_view(7).unwrap().segment_count("b", "t"), 2);

    // The merged segments go with the checkpoints that listed them.
    store.retain(1).unwrap();
    let segments = sim
        .files(dir)
        .into_iter()
        .filter(|f| f.ends_with(".seg"))
        .count();
    assert_eq!(segments, 2 + 2, "{:?}", sim.files(dir));
    // A fresh open verifies the compacted segment from disk.
    drop(store);
    let store = CheckpointStore::open(dir, Arc::new(sim.clone())).unwrap();
    assert_eq!(store.latest_complete().unwrap().checkpoint, Some(7));
    check_checkpoint(&store, 7, &model, ALL);
}

#[test]
fn a_stale_compaction_is_not_adopted_and_its_files_become_garbage() {
    let (sim, dir) = (SimStorage::new(), Path::new("/ckpt"));
    let (mut store, mut model) = committed(&sim, dir, 4);
    let plan = store
        .plan_compaction(4, "a", "s", u64::MAX)
        .unwrap()
        .unwrap();
    let files = plan.files();
    // Checkpoint 5 writes state A whole while the compaction runs.
    let mut cp = store.begin(5).unwrap();
    cp.drop_state("a", "s");
    let whole: Delta = [(
        A,
        model[&A]
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect(),
    )]
    .into();
    write_delta(&mut cp, &whole).unwrap();
    cp.commit().unwrap();
    // Garbage collection leaves the running compaction's inputs alone ...
    store.retain_protecting(1, &|n| files.contains(n)).unwrap();
    assert!(plan.run(&AtomicBool::new(false)).unwrap());
    let done = files.take_finished().pop().unwrap();
    assert!(!compacted_files(&sim, dir).is_empty());
    // ... but checkpoint 6 cannot adopt it: A's chain no longer begins with its inputs.
    let d = delta(6);
    let mut cp = store.begin(6).unwrap();
    assert!(!cp.adopt(&done));
    write_delta(&mut cp, &d).unwrap();
    cp.commit().unwrap();
    apply(&mut model, &d);
    store.retain(1).unwrap();
    assert_eq!(compacted_files(&sim, dir), Vec::<String>::new());
    check_checkpoint(&store, 6, &model, ALL);
}

#[test]
fn a_crash_during_compaction_leaves_the_latest_checkpoint_intact_and_only_garbage() {
    let (sim, dir) = (SimStorage::new(), Path::new("/ckpt"));
    let (store, model) = committed(&sim, dir, 5);
    let plan = store
        .plan_compaction(5, "a", "s", u64::MAX)
        .unwrap()
        .unwrap();
    assert!(plan.run(&AtomicBool::new(false)).unwrap());
    // Power loss before any checkpoint adopted the compacted segments.
    sim.crash();
    drop(store);
    let mut store = CheckpointStore::open(dir, Arc::new(sim.clone())).unwrap();
    assert_eq!(store.latest_complete().unwrap().checkpoint, Some(5));
    check_checkpoint(&store, 5, &model, ALL);
    store.retain(1).unwrap();
    assert_eq!(compacted_files(&sim, dir), Vec::<String>::new());

    // A cancelled compaction writes nothing that is kept either.
    let plan = store
        .plan_compaction(5, "a", "s", u64::MAX)
        .unwrap()
        .unwrap();
    assert!(!plan.run(&AtomicBool::new(true)).unwrap());
    store.retain(1).unwrap();
    assert_eq!(compacted_files(&sim, dir), Vec::<String>::new());
    // A state whose chain is all bottom (B: segments that do not overlap) has nothing to
    // merge.
    assert!(store
        .plan_compaction(5, "b", "t", u64::MAX)
        .unwrap()
        .is_none());
}

/// A bottom of many segments is rewritten a slice at a time, each adopted by the next
/// checkpoint while the job goes on: every checkpoint reads as the model, garbage collection
/// never removes what the compaction still reads, and the last slice drops the deltas.
#[test]
fn slices_are_adopted_one_by_one_while_checkpoints_go_on() {
    let (sim, dir) = (SimStorage::new(), Path::new("/ckpt"));
    // Small segments: the bottom (checkpoint 1's) is one per key group or two.
    let options = flow_state::StoreOptions {
        segment_target_bytes: 100,
    };
    let mut store =
        CheckpointStore::open_with(dir, Arc::new(sim.clone()), options.clone()).unwrap();
    let mut model = Model::new();
    run(&mut store, &mut model, 1, 6);
    let before = store.chain_shape(6, "a", "s").unwrap();
    assert!(before.delta_bytes > 0, "{before:?}");
    let plan = store
        .plan_compaction(6, "a", "s", u64::MAX)
        .unwrap()
        .unwrap();
    let files = plan.files();
    let thread = std::thread::spawn(move || plan.run(&AtomicBool::new(false)));
    let mut id = 7;
    let mut adopted = 0;
    let slices = loop {
        let finished = thread.is_finished() && !files.has_finished();
        let taken = files.take_finished();
        let d = delta(id);
        let mut cp = store.begin(id).unwrap();
        let mut last = None;
        for c in &taken {
            assert!(cp.adopt(c), "slice {:?}", c.slice());
            last = Some(c.slice());
        }
        write_delta(&mut cp, &d).unwrap();
        cp.commit().unwrap();
        apply(&mut model, &d);
        if let Some((slice, _)) = last {
            files.committed(slice);
            adopted = slice + 1;
        }
        store.retain_protecting(1, &|n| files.contains(n)).unwrap();
        check_checkpoint(&store, id, &model, ALL);
        id += 1;
        if finished {
            break last.map_or(adopted, |(_, of)| of);
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    };
    assert!(thread.join().unwrap().unwrap());
    assert!(slices > 2, "{slices} slices");
    assert_eq!(adopted, slices);
    // The deltas up to checkpoint 6 are gone from the chain and, once collected, from disk:
    // of their segments only state B's (checkpoints 3 and 6, one each) are left.
    store.retain(1).unwrap();
    let left: Vec<String> = sim
        .files(dir)
        .into_iter()
        .filter(|f| (2..=6).any(|c| f.starts_with(&format!("segment-{c:020}-0"))))
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    drop(store);
    let store = CheckpointStore::open_with(dir, Arc::new(sim.clone()), options).unwrap();
    check_checkpoint(&store, id - 1, &model, ALL);
}

/// Merging the deltas alone folds many checkpoints' changes of the same keys into one run
/// that keeps tombstones (the bottom may hold the keys they delete) and takes the deltas'
/// place: the state reads the same, with fewer segments and bytes.
#[test]
fn merged_deltas_replace_the_deltas_and_keep_their_tombstones() {
    let (sim, dir) = (SimStorage::new(), Path::new("/ckpt"));
    // Checkpoint 5, the newest delta, deletes keys that checkpoint 1 (the bottom) holds.
    let (mut store, mut model) = committed(&sim, dir, 5);
    let before = store.chain_shape(5, "a", "s").unwrap();
    assert_eq!(before.delta_runs, 4, "{before:?}");
    let plan = store
        .plan_delta_merge(5, "a", "s", u64::MAX)
        .unwrap()
        .unwrap();
    let files = plan.files();
    assert!(plan.run(&AtomicBool::new(false)).unwrap());
    let slices = files.take_finished();
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0].slice(), (0, 1));
    assert!(slices[0].bytes_written() < slices[0].bytes_read());
    let d = delta(6);
    let mut cp = store.begin(6).unwrap();
    assert!(cp.adopt(&slices[0]));
    // Adopting it again (a stale copy) finds the deltas gone.
    assert!(!cp.adopt(&slices[0]));
    write_delta(&mut cp, &d).unwrap();
    cp.commit().unwrap();
    files.committed(0);
    apply(&mut model, &d);
    check_checkpoint(&store, 6, &model, ALL);
    let after = store.chain_shape(6, "a", "s").unwrap();
    // The bottom, the merged run, checkpoint 6's delta.
    assert_eq!((after.segments, after.delta_runs), (3, 2), "{after:?}");
    store.retain(1).unwrap();
    drop(store);
    let store = CheckpointStore::open(dir, Arc::new(sim.clone())).unwrap();
    check_checkpoint(&store, 6, &model, ALL);
    // A state with a single delta run has nothing to merge.
    assert!(store
        .plan_delta_merge(6, "b", "t", u64::MAX)
        .unwrap()
        .is_none());
}
