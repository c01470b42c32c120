//! Power-loss tests: the simulated storage loses power after every possible number of
//! operations of a scenario (three incremental commits and a GC). After each crash, recovery
//! must find the latest committed checkpoint intact, nothing of a later unfinished checkpoint
//! visible, no damaged manifest, and — after `retain` — no leaked file.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use flow_state::{CheckpointStore, Result, SimStorage, StoreOptions};

const DIR: &str = "/ckpt";

fn options() -> StoreOptions {
    // Small segments: a commit writes several, so there are more steps to crash at.
    StoreOptions {
        segment_target_bytes: 40,
    }
}

fn deltas() -> Vec<Delta> {
    let mut out = Vec::new();
    let kv = |kg: u32, k: &str, v: Option<&str>| {
        (
            (kg, k.as_bytes().to_vec()),
            v.map(|v| v.as_bytes().to_vec()),
        )
    };
    let mut d = Delta::new();
    d.insert(
        ("op", "a"),
        [
            kv(0, "x", Some("1")),
            kv(1, "y", Some("2")),
            kv(5, "z", Some("3")),
        ]
        .into(),
    );
    d.insert(("op", "b"), [kv(2, "w", Some("9"))].into());
    out.push(d);
    let mut d = Delta::new();
    d.insert(
        ("op", "a"),
        [
            kv(0, "x", None),
            kv(1, "y", Some("22")),
            kv(3, "q", Some("4")),
        ]
        .into(),
    );
    out.push(d);
    let mut d = Delta::new();
    d.insert(
        ("op", "b"),
        [kv(2, "w", None), kv(6, "v", Some("7"))].into(),
    );
    d.insert(("op", "a"), [kv(5, "z", Some("33"))].into());
    out.push(d);
    out
}

/// Runs the scenario until the first error; returns the id of the last checkpoint whose
/// commit returned Ok and the id of the one being committed when it stopped, if any.
fn scenario(storage: &SimStorage, committed: &mut u64, attempting: &mut Option<u64>) -> Result<()> {
    let mut store = CheckpointStore::open_with(DIR, Arc::new(storage.clone()), options())?;
    for (i, d) in deltas().iter().enumerate() {
        let id = i as u64 + 1;
        *attempting = Some(id);
        let mut cp = store.begin(id)?;
        write_delta(&mut cp, d)?;
        cp.put_metadata("source", format!("pos-{id}").as_bytes());
        cp.commit()?;
        *committed = id;
        *attempting = None;
        if id == 2 {
            store.retain(1)?;
        }
    }
    store.retain(1)?;
    Ok(())
}

fn models() -> Vec<Model> {
    let mut m = Model::new();
    let mut out = vec![Model::new()];
    for d in deltas() {
        apply(&mut m, &d);
        out.push(m.clone());
    }
    out
}

#[test]
fn power_loss_at_every_step_keeps_the_latest_complete_checkpoint() {
    let models = models();
    // The failure-free run, to learn how many steps there are.
    let clean = SimStorage::new();
    scenario(&clean, &mut 0, &mut None).unwrap();
    let steps = clean.op_count();
    let log = clean.log();
    assert!(steps > 30, "{log:#?}");
    // Each step twice: once losing every unsynced directory entry, once with the manifests'
    // entries persisted early (directory updates reordered by the OS).
    for (k, early_manifest) in (0..=steps).flat_map(|k| [(k, false), (k, true)]) {
        let storage = SimStorage::new();
        storage.fail_after(k);
        let (mut committed, mut attempting) = (0, None);
        let r = scenario(&storage, &mut committed, &mut attempting);
        let step = log
            .get(k as usize)
            .map_or("(none: ran to the end)", String::as_str);
        let step = &format!("{step}; manifest entries persisted early: {early_manifest}");
        assert_eq!(r.is_ok(), k == steps, "crash before step {k}: {step}");
        storage.crash_keeping(|p| early_manifest && p.extension().is_some_and(|e| e == "manifest"));

        let mut store =
            CheckpointStore::open_with(DIR, Arc::new(storage.clone()), options()).unwrap();
        let rec = store.latest_complete().unwrap();
        assert!(
            !rec.fell_back(),
            "crash before step {k} ({step}) left damage: {:?}",
            rec.skipped
        );
        let latest = rec.checkpoint.unwrap_or(0);
        // Whatever committed stays; the checkpoint being committed may or may not be there
        // (its manifest rename may have reached the disk); nothing later exists.
        assert!(
            latest == committed || Some(latest) == attempting,
            "crash before step {k} ({step}): latest {latest}, committed {committed}, attempting {attempting:?}"
        );
        for id in store.checkpoints().unwrap() {
            store
                .verify(id)
                .unwrap_or_else(|e| panic!("crash before step {k} ({step}): {e}"));
            assert!(id <= latest);
        }
        if latest > 0 {
            check_checkpoint(&store, latest, &models[latest as usize], ALL);
            let view = store.restore_view(latest).unwrap();
            assert_eq!(
                view.metadata("source"),
                Some(format!("pos-{latest}").as_bytes())
            );
        }

        // GC after recovery leaves exactly the lock, the manifest and its segments.
        if latest > 0 {
            store.retain(1).unwrap();
            let files = storage.files(Path::new(DIR));
            let view = store.restore_view(latest).unwrap();
            let segments: usize = view.states().map(|(u, n)| view.segment_count(u, n)).sum();
            assert_eq!(
                files.len(),
                2 + segments,
                "crash before step {k} ({step}): leaked files {files:?}"
            );
            assert!(files.iter().all(|f| !f.ends_with(".tmp")));
        }

        // And the job goes on: the next checkpoint commits on top of the recovered one.
        let next = store.checkpoints().unwrap().last().copied().unwrap_or(0) + 1;
        let mut d = Delta::new();
        d.insert(
            ("op", "c"),
            [((9, b"after".to_vec()), Some(b"crash".to_vec()))].into(),
        );
        let mut cp = store.begin(next).unwrap();
        write_delta(&mut cp, &d).unwrap();
        cp.commit().unwrap();
        let mut expected = models[latest as usize].clone();
        apply(&mut expected, &d);
        check_checkpoint(&store, next, &expected, ALL);
    }
}

/// A crash after a segment's fsync + rename but before any directory sync loses the file
/// entirely (its create was not durable either). A leftover that did reach the disk under a
/// `.tmp` name (rename lost) or as an orphan segment (manifest lost) is removed by GC.
#[test]
fn unsynced_segment_vanishes_and_durable_leftovers_are_collected() {
    use flow_state::Storage;
    let storage = SimStorage::new();
    let mut store = CheckpointStore::open(DIR, Arc::new(storage.clone())).unwrap();
    let mut cp = store.begin(1).unwrap();
    let mut w = cp.state("op", "a");
    w.put(0, b"k", Some(b"v")).unwrap();
    w.finish().unwrap();
    assert!(storage
        .files(Path::new(DIR))
        .iter()
        .any(|f| f.ends_with(".seg")));
    drop(cp);
    drop(store);
    storage.crash();
    assert_eq!(storage.files(Path::new(DIR)), Vec::<String>::new());

    // A rename lost after the directory sync of its create: the file is back under `.tmp`.
    let dir = Path::new(DIR);
    let tmp = dir.join("segment-00000000000000000001-000000.seg.tmp");
    let mut f = storage.create(&tmp).unwrap();
    f.write_all(b"partial").unwrap();
    f.sync().unwrap();
    // An orphan segment whose manifest never became durable.
    let orphan = dir.join("segment-00000000000000000001-000001.seg");
    storage.create(&orphan).unwrap().sync().unwrap();
    // Not ours: never touched.
    storage.create(&dir.join("notes.txt")).unwrap();
    storage.sync_dir(dir).unwrap();
    storage
        .rename(&tmp, &dir.join("segment-00000000000000000001-000000.seg"))
        .unwrap();
    storage.crash();
    let files = storage.files(dir);
    assert!(files.iter().any(|f| f.ends_with(".seg.tmp")), "{files:?}");

    let mut store = CheckpointStore::open(DIR, Arc::new(storage.clone())).unwrap();
    assert_eq!(store.latest_complete().unwrap().checkpoint, None);
    let mut cp = store.begin(2).unwrap();
    let mut w = cp.state("op", "a");
    w.put(0, b"k", Some(b"v2")).unwrap();
    w.finish().unwrap();
    cp.commit().unwrap();
    let report = store.retain(1).unwrap();
    assert_eq!(
        report.removed,
        vec![
            "segment-00000000000000000001-000000.seg.tmp".to_owned(),
            "segment-00000000000000000001-000001.seg".to_owned()
        ]
    );
    let files = storage.files(dir);
    assert!(files.contains(&"notes.txt".to_owned()), "{files:?}");
    assert_eq!(files.len(), 4, "{files:?}");
}
