//! Lock file, retention and garbage collection, checkpoint ids, writer contract.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use flow_state::{CheckpointStore, FsStorage, SimStorage, StateError, Storage};

#[test]
fn second_open_of_a_directory_fails_naming_the_lock_file() {
    let tmp = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage);
    let first = CheckpointStore::open(tmp.path(), storage.clone()).unwrap();
    let err = CheckpointStore::open(tmp.path(), storage.clone()).unwrap_err();
    match &err {
        StateError::Locked { path, holder } => {
            assert_eq!(path, &tmp.path().join("LOCK"));
            assert_eq!(holder, &format!("pid {}", std::process::id()));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("LOCK"), "{err}");
    drop(first);
    CheckpointStore::open(tmp.path(), storage).unwrap();

    let sim = SimStorage::new();
    let first = CheckpointStore::open("/d", Arc::new(sim.clone())).unwrap();
    assert!(matches!(
        CheckpointStore::open("/d", Arc::new(sim.clone())),
        Err(StateError::Locked { .. })
    ));
    drop(first);
    let _again = CheckpointStore::open("/d", Arc::new(sim.clone())).unwrap();
    // A crash (the process dies) releases the lock.
    sim.crash();
    CheckpointStore::open("/d", Arc::new(sim)).unwrap();
}

fn one(state: StateId, kg: u32, key: &str, value: Option<&str>) -> Delta {
    let mut d = Delta::new();
    d.insert(
        state,
        [(
            (kg, key.as_bytes().to_vec()),
            value.map(|v| v.as_bytes().to_vec()),
        )]
        .into(),
    );
    d
}

#[test]
fn gc_removes_dropped_checkpoints_and_keeps_shared_segments() {
    let sim = SimStorage::new();
    let dir = Path::new("/ckpt");
    let mut store = CheckpointStore::open(dir, Arc::new(sim.clone())).unwrap();
    let mut model = Model::new();
    let mut models = vec![Model::new()];
    let deltas = [
        one(("a", "s"), 0, "k1", Some("v1")), // segment 1/0
        one(("a", "s"), 1, "k2", Some("v2")), // segment 2/0
        one(("b", "t"), 2, "k3", Some("v3")), // segment 3/0
    ];
    for (i, d) in deltas.iter().enumerate() {
        let mut cp = store.begin(i as u64 + 1).unwrap();
        write_delta(&mut cp, d).unwrap();
        cp.commit().unwrap();
        apply(&mut model, d);
        models.push(model.clone());
    }
    let report = store.retain(2).unwrap();
    assert_eq!(report.retained, vec![2, 3]);
    assert_eq!(
        report.removed,
        vec!["checkpoint-00000000000000000001.manifest".to_owned()]
    );
    // Checkpoint 1's segment is shared by 2 and 3: kept.
    let files = sim.files(dir);
    assert!(
        files.contains(&"segment-00000000000000000001-000000.seg".to_owned()),
        "{files:?}"
    );
    check_checkpoint(&store, 2, &models[2], ALL);
    check_checkpoint(&store, 3, &models[3], ALL);

    // Checkpoint 4 drops state a/s: its segments 1/0 and 2/0 are no longer needed once
    // checkpoints 2 and 3 go.
    let mut cp = store.begin(4).unwrap();
    cp.drop_state("a", "s");
    write_delta(&mut cp, &one(("b", "t"), 2, "k3", None)).unwrap();
    cp.commit().unwrap();
    let report = store.retain(1).unwrap();
    assert_eq!(report.retained, vec![4]);
    assert_eq!(
        report.removed,
        vec![
            "checkpoint-00000000000000000002.manifest".to_owned(),
            "checkpoint-00000000000000000003.manifest".to_owned(),
            "segment-00000000000000000001-000000.seg".to_owned(),
            "segment-00000000000000000002-000000.seg".to_owned(),
        ]
    );
    let mut files = sim.files(dir);
    files.sort();
    assert_eq!(
        files,
        vec![
            "LOCK".to_owned(),
            "checkpoint-00000000000000000004.manifest".to_owned(),
            "segment-00000000000000000003-000000.seg".to_owned(),
            "segment-00000000000000000004-000000.seg".to_owned(),
        ]
    );
    // What checkpoint 4 needs: the segment of b/t from 3 (shared) and its own.
    let mut needed = store.segment_files(4).unwrap();
    needed.sort();
    assert_eq!(
        needed,
        vec![
            dir.join("segment-00000000000000000003-000000.seg"),
            dir.join("segment-00000000000000000004-000000.seg"),
        ]
    );
    let sizes: u64 = needed
        .iter()
        .map(|p| sim.read(p).unwrap().len() as u64)
        .sum();
    assert_eq!(store.segment_bytes(4).unwrap(), sizes);
    let view = store.restore_view(4).unwrap();
    assert!(view.entries("a", "s", ALL).is_err());
    assert_eq!(view.entries("b", "t", ALL).unwrap().count(), 0);
}

#[test]
fn gc_keeps_a_damaged_newer_manifest_until_a_newer_checkpoint_is_retained() {
    let sim = SimStorage::new();
    let dir = Path::new("/ckpt");
    let mut store = CheckpointStore::open(dir, Arc::new(sim.clone())).unwrap();
    for id in 1..=2 {
        let mut cp = store.begin(id).unwrap();
        write_delta(&mut cp, &one(("a", "s"), 0, &format!("k{id}"), Some("v"))).unwrap();
        cp.commit().unwrap();
    }
    sim.corrupt(&dir.join("checkpoint-00000000000000000002.manifest"), |b| {
        b[20] ^= 1
    })
    .unwrap();
    let report = store.retain(1).unwrap();
    assert_eq!(report.retained, vec![1]);
    assert_eq!(
        report.removed,
        vec!["segment-00000000000000000002-000000.seg".to_owned()]
    );
    assert!(sim
        .files(dir)
        .contains(&"checkpoint-00000000000000000002.manifest".to_owned()));
    // New ids must pass the damaged one.
    assert!(matches!(
        store.begin(2),
        Err(StateError::IdNotIncreasing { largest: 2, .. })
    ));
    let mut cp = store.begin(3).unwrap();
    write_delta(&mut cp, &one(("a", "s"), 0, "k3", Some("v"))).unwrap();
    cp.commit().unwrap();
    let report = store.retain(1).unwrap();
    assert_eq!(report.retained, vec![3]);
    assert_eq!(
        report.removed,
        vec![
            "checkpoint-00000000000000000001.manifest".to_owned(),
            "checkpoint-00000000000000000002.manifest".to_owned()
        ]
    );
    // Checkpoint 3 was based on 1 (the latest complete), so 1's segment is still listed.
    let view = store.restore_view(3).unwrap();
    let keys: Vec<Vec<u8>> = view
        .entries("a", "s", ALL)
        .unwrap()
        .map(|e| e.key.to_vec())
        .collect();
    assert_eq!(keys, vec![b"k1".to_vec(), b"k3".to_vec()]);
}

#[test]
fn writer_contract_is_enforced() {
    let sim = SimStorage::new();
    let mut store = CheckpointStore::open("/ckpt", Arc::new(sim)).unwrap();
    // Out-of-order entries fail the checkpoint.
    let mut cp = store.begin(1).unwrap();
    let mut w = cp.state("a", "s");
    w.put(3, b"b", Some(b"1")).unwrap();
    let err = w.put(3, b"a", Some(b"1")).unwrap_err();
    assert!(matches!(err, StateError::Usage { .. }), "{err}");
    drop(w);
    assert!(matches!(
        cp.commit(),
        Err(StateError::Failed { checkpoint: 1, .. })
    ));
    // An unfinished state writer fails the checkpoint.
    let mut cp = store.begin(1).unwrap();
    let mut w = cp.state("a", "s");
    w.put(3, b"b", Some(b"1")).unwrap();
    drop(w);
    assert!(matches!(cp.commit(), Err(StateError::Failed { .. })));
    // An empty checkpoint commits (metadata only).
    let mut cp = store.begin(1).unwrap();
    cp.put_metadata("sink", b"pre-commit");
    let info = cp.commit().unwrap();
    assert_eq!((info.new_segments, info.shared_segments), (0, 0));
    assert_eq!(
        store.restore_view(1).unwrap().metadata("sink"),
        Some(&b"pre-commit"[..])
    );
    assert_eq!(store.latest_complete().unwrap().checkpoint, Some(1));
}

#[test]
fn an_exported_checkpoint_is_a_self_contained_store() {
    let tmp = tempfile::tempdir().unwrap();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage);
    let mut store = CheckpointStore::open(tmp.path().join("cp"), storage.clone()).unwrap();
    for id in 1..=3u64 {
        let mut cw = store.begin(id).unwrap();
        let mut w = cw.state("op", "s");
        w.put(id as u32, format!("k{id}").as_bytes(), Some(b"v"))
            .unwrap();
        w.finish().unwrap();
        cw.put_metadata("pos", &id.to_le_bytes());
        cw.commit().unwrap();
    }
    let dest = tmp.path().join("savepoint");
    store.export(3, &dest).unwrap();
    // Exporting again (a retry after a crash) is fine.
    store.export(3, &dest).unwrap();
    drop(store);
    std::fs::remove_dir_all(tmp.path().join("cp")).unwrap();
    let saved = CheckpointStore::open(&dest, storage).unwrap();
    assert_eq!(saved.latest_complete().unwrap().checkpoint, Some(3));
    let view = saved.restore_view(3).unwrap();
    let all = flow_state::KeyGroupRange { start: 0, end: 128 };
    let keys: Vec<Vec<u8>> = view
        .entries("op", "s", all)
        .unwrap()
        .map(|e| e.key.to_vec())
        .collect();
    assert_eq!(keys, vec![b"k1".to_vec(), b"k2".to_vec(), b"k3".to_vec()]);
    assert_eq!(view.metadata("pos"), Some(&3u64.to_le_bytes()[..]));
}
