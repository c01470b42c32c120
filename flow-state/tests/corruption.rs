//! Corruption tests: flipped bytes (every byte of a segment and of a manifest), truncation at
//! every length, a deleted segment, a deleted manifest — detected, reported with the file's
//! path, and recovery falls back to the previous complete checkpoint, saying so.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use flow_state::{CheckpointStore, FsStorage, SimStorage, StateError, Storage};

const DIR: &str = "/ckpt";

fn seg(id: u64, seq: u32) -> String {
    format!("segment-{id:020}-{seq:06}.seg")
}
fn man(id: u64) -> String {
    format!("checkpoint-{id:020}.manifest")
}

/// Checkpoint 1 writes segment 1/0; checkpoint 2 writes segment 2/0 and shares 1/0.
fn setup(storage: Arc<dyn Storage>, dir: &Path) -> (Model, Model) {
    let mut store = CheckpointStore::open(dir, storage).unwrap();
    let mut d1 = Delta::new();
    d1.insert(
        ("op", "s"),
        [
            ((1, b"a".to_vec()), Some(b"1".to_vec())),
            ((4, b"b".to_vec()), Some(b"2".to_vec())),
        ]
        .into(),
    );
    let mut cp = store.begin(1).unwrap();
    write_delta(&mut cp, &d1).unwrap();
    cp.commit().unwrap();
    let mut d2 = Delta::new();
    d2.insert(
        ("op", "s"),
        [
            ((1, b"a".to_vec()), None),
            ((2, b"c".to_vec()), Some(b"3".to_vec())),
        ]
        .into(),
    );
    let mut cp = store.begin(2).unwrap();
    write_delta(&mut cp, &d2).unwrap();
    let info = cp.commit().unwrap();
    assert_eq!((info.new_segments, info.shared_segments), (1, 1));
    let mut m1 = Model::new();
    apply(&mut m1, &d1);
    let mut m2 = m1.clone();
    apply(&mut m2, &d2);
    (m1, m2)
}

fn path_of(e: &StateError) -> PathBuf {
    match e {
        StateError::Corrupt { path, .. } | StateError::MissingSegment { path, .. } => path.clone(),
        other => panic!("expected corruption, got {other}"),
    }
}

/// After damaging `file`, recovery must fall back to `expect` and name `file` for each skipped
/// checkpoint in `skipped`.
fn expect_fallback(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    file: &str,
    expect: Option<u64>,
    skipped: &[u64],
    what: &str,
) {
    let store = CheckpointStore::open(dir, storage.clone()).unwrap();
    let rec = store.latest_complete().unwrap();
    assert_eq!(rec.checkpoint, expect, "{what}");
    let ids: Vec<u64> = rec.skipped.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, skipped, "{what}");
    for (id, e) in &rec.skipped {
        assert_eq!(path_of(e), dir.join(file), "{what}: {e}");
        assert!(
            e.to_string().contains(file),
            "{what}: message must name the file: {e}"
        );
        let err = store.restore_view(*id).unwrap_err();
        assert_eq!(path_of(&err), dir.join(file), "{what}");
    }
}

#[test]
fn every_flipped_byte_of_a_segment_or_manifest_is_detected() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let dir = Path::new(DIR);
    let (m1, _) = setup(storage.clone(), dir);
    // (file, checkpoint that falls back to, checkpoints skipped)
    let cases = [
        (seg(2, 0), Some(1), vec![2]),
        (man(2), Some(1), vec![2]),
        (seg(1, 0), None, vec![2, 1]),
    ];
    for (file, expect, skipped) in cases {
        let len = storage.read(&dir.join(&file)).unwrap().len();
        for at in 0..len {
            for bit in [0x01u8, 0x80] {
                sim.corrupt(&dir.join(&file), |b| b[at] ^= bit).unwrap();
                expect_fallback(
                    &storage,
                    dir,
                    &file,
                    expect,
                    &skipped,
                    &format!("{file} byte {at} ^ {bit:#x}"),
                );
                sim.corrupt(&dir.join(&file), |b| b[at] ^= bit).unwrap();
            }
        }
    }
    let store = CheckpointStore::open(dir, storage).unwrap();
    assert_eq!(store.latest_complete().unwrap().checkpoint, Some(2));
    check_checkpoint(&store, 1, &m1, ALL);
}

#[test]
fn truncation_at_every_length_is_detected() {
    let sim = SimStorage::new();
    let storage: Arc<dyn Storage> = Arc::new(sim.clone());
    let dir = Path::new(DIR);
    setup(storage.clone(), dir);
    for file in [seg(2, 0), man(2)] {
        let original = storage.read(&dir.join(&file)).unwrap();
        for len in 0..original.len() {
            sim.corrupt(&dir.join(&file), |b| b.truncate(len)).unwrap();
            expect_fallback(
                &storage,
                dir,
                &file,
                Some(1),
                &[2],
                &format!("{file} truncated to {len}"),
            );
            sim.corrupt(&dir.join(&file), |b| *b = original.clone())
                .unwrap();
        }
        // Appended garbage is damage too.
        sim.corrupt(&dir.join(&file), |b| b.push(0)).unwrap();
        expect_fallback(
            &storage,
            dir,
            &file,
            Some(1),
            &[2],
            &format!("{file} with a byte appended"),
        );
        sim.corrupt(&dir.join(&file), |b| *b = original.clone())
            .unwrap();
    }
}

/// The same on the real filesystem, through memory maps.
#[test]
fn damage_on_disk_falls_back_and_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let storage: Arc<dyn Storage> = Arc::new(FsStorage);
    let (m1, m2) = setup(storage.clone(), dir);
    let flip = |file: &str, at: usize| {
        let p = dir.join(file);
        let mut b = std::fs::read(&p).unwrap();
        b[at] ^= 0x10;
        std::fs::write(&p, b).unwrap();
    };

    // A flipped byte in the newest checkpoint's own segment.
    flip(&seg(2, 0), 20);
    expect_fallback(
        &storage,
        dir,
        &seg(2, 0),
        Some(1),
        &[2],
        "flipped segment byte",
    );
    {
        let store = CheckpointStore::open(dir, storage.clone()).unwrap();
        check_checkpoint(&store, 1, &m1, ALL);
    }
    flip(&seg(2, 0), 20);

    // A flipped byte in the manifest.
    flip(&man(2), 30);
    expect_fallback(
        &storage,
        dir,
        &man(2),
        Some(1),
        &[2],
        "flipped manifest byte",
    );
    flip(&man(2), 30);

    // Truncated segment.
    let p = dir.join(seg(2, 0));
    let original = std::fs::read(&p).unwrap();
    std::fs::write(&p, &original[..original.len() - 5]).unwrap();
    expect_fallback(
        &storage,
        dir,
        &seg(2, 0),
        Some(1),
        &[2],
        "truncated segment",
    );
    std::fs::write(&p, &original).unwrap();

    // Deleted segment.
    std::fs::rename(&p, dir.join("aside")).unwrap();
    expect_fallback(&storage, dir, &seg(2, 0), Some(1), &[2], "deleted segment");
    {
        let store = CheckpointStore::open(dir, storage.clone()).unwrap();
        match store.restore_view(2).unwrap_err() {
            StateError::MissingSegment { path, manifest } => {
                assert_eq!(path, p);
                assert_eq!(manifest, dir.join(man(2)));
            }
            other => panic!("{other}"),
        }
    }
    std::fs::rename(dir.join("aside"), &p).unwrap();

    // Intact again.
    {
        let store = CheckpointStore::open(dir, storage.clone()).unwrap();
        let rec = store.latest_complete().unwrap();
        assert_eq!((rec.checkpoint, rec.fell_back()), (Some(2), false));
        check_checkpoint(&store, 2, &m2, ALL);
    }

    // Deleted manifest: checkpoint 2 no longer exists (nothing to report), 1 is the latest.
    std::fs::remove_file(dir.join(man(2))).unwrap();
    let store = CheckpointStore::open(dir, storage.clone()).unwrap();
    let rec = store.latest_complete().unwrap();
    assert_eq!((rec.checkpoint, rec.fell_back()), (Some(1), false));
    match store.restore_view(2).unwrap_err() {
        StateError::NoSuchCheckpoint { id: 2, path } => assert_eq!(path, dir.join(man(2))),
        other => panic!("{other}"),
    }
    check_checkpoint(&store, 1, &m1, ALL);
}
