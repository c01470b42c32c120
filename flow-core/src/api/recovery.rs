//! Starting a job with checkpoints: checks that every operator can checkpoint its state,
//! opens the checkpoint directory, finds the checkpoint to restore and checks that it fits the
//! job, brings the sinks' output to that checkpoint, and starts the writer.
use crate::config::{Config, Restore};
use crate::error::{Error, Result};
use crate::graph::StageInfo;
use crate::runtime::persist::{SinkPublisher, Writer, WriterOptions};
use crate::runtime::snapshot::{Restore as View, StateSupport};
use flow_state::{CheckpointStore, FsStorage};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A job's checkpointing, once started.
pub(crate) struct Checkpointing {
    pub(crate) writer: Writer,
    /// The checkpoint restored, if any.
    pub(crate) view: Option<View>,
    /// The largest checkpoint id in the directory: this run's ids come after it.
    pub(crate) after: u64,
}

/// The metadata name under which a checkpoint records the types of a state.
fn types_name(uid: &str, name: &str) -> String {
    format!("types/{uid}/{name}")
}

/// Starts checkpointing for a job of `stages`, if `config` has a checkpoint directory.
pub(crate) fn start(
    config: &Config,
    stages: &mut [StageInfo],
    tasks: usize,
) -> Result<Option<Checkpointing>> {
    let Some(dir) = &config.checkpoint_dir else {
        return Ok(None);
    };
    // Every operator must be able to checkpoint its state.
    let mut declared: BTreeMap<String, String> = BTreeMap::new();
    for st in stages.iter() {
        for (uid, support) in &st.states {
            match support {
                StateSupport::Stateless => {}
                StateSupport::Unsupported(what) => {
                    return Err(Error::Checkpoint(format!(
                        "operator `{uid}` (stage {}, created at {}) keeps {what}, which cannot \
                         be checkpointed yet: run the job without a checkpoint directory",
                        st.head, st.created_at
                    )))
                }
                StateSupport::Persisted(decls) => {
                    for d in decls {
                        declared.insert(types_name(uid, d.name), d.types.clone());
                    }
                }
            }
        }
    }
    // A savepoint is copied into the checkpoint directory first.
    let imported = match &config.restore {
        Some(Restore::Path(path)) => Some(import(path, dir)?),
        _ => None,
    };
    let store = CheckpointStore::open(dir, Arc::new(FsStorage))?;
    let after = store.checkpoints()?.last().copied().unwrap_or(0);
    let checking = std::time::Instant::now();
    let view = match &config.restore {
        None => None,
        Some(from) => {
            let id = match from {
                Restore::Path(_) => imported,
                Restore::Checkpoint(id) => {
                    store.verify(*id)?;
                    Some(*id)
                }
                Restore::Latest => {
                    let found = store.latest_complete()?;
                    for (skipped, why) in &found.skipped {
                        eprintln!(
                            "warning: checkpoint {skipped} in {} is damaged and is skipped: {why}",
                            dir.display()
                        );
                    }
                    if found.checkpoint.is_none() {
                        eprintln!(
                            "no complete checkpoint in {}: starting from the beginning",
                            dir.display()
                        );
                    }
                    found.checkpoint
                }
            };
            match id {
                Some(id) => {
                    let view = store.restore_view(id)?;
                    check_fits(&view, &declared, config)?;
                    // Every segment was read in full to check its checksum by now.
                    let bytes = store.segment_bytes(id)?;
                    let secs = checking.elapsed().as_secs_f64();
                    let mb = bytes as f64 / 1e6;
                    tracing::info!(checkpoint = id, dir = %dir.display(), mb, secs, "restoring");
                    if config.report {
                        eprintln!(
                            "restoring checkpoint {id} from {}: {mb:.1} MB of segments checked in \
                             {:.0} ms ({:.0} MB/s)",
                            dir.display(),
                            secs * 1e3,
                            mb / secs.max(1e-9)
                        );
                    }
                    Some(Arc::new(view))
                }
                None => None,
            }
        }
    };
    // The sinks' output as of the restored checkpoint (or empty, for a fresh start).
    let mut publishers = Vec::new();
    for (i, st) in stages.iter_mut().enumerate() {
        if let Some(commit) = st.sink_commit.take() {
            let prefix = format!("sink/{i}/");
            let restored = view.as_ref().map(|v| {
                let blobs: Vec<Vec<u8>> = v
                    .metadata_entries()
                    .filter(|(n, _)| n.starts_with(&prefix))
                    .map(|(_, b)| b.to_vec())
                    .collect();
                (v.checkpoint_id(), blobs)
            });
            (commit.recover)(restored)?;
            publishers.push(SinkPublisher {
                prefix,
                publish: commit.publish,
            });
        }
    }
    let mut job_meta: Vec<(String, Vec<u8>)> = declared
        .into_iter()
        .map(|(n, t)| (n, t.into_bytes()))
        .collect();
    job_meta.push((
        "job/max_parallelism".into(),
        config.max_parallelism.to_string().into_bytes(),
    ));
    let carried = view
        .as_ref()
        .map(|v| {
            v.metadata_entries()
                // Positions only: every subtask of this run writes its operator state at its
                // first checkpoint, and the old run's (of subtasks this run may not have)
                // must not outlive the restore.
                .filter(|(n, _)| n.starts_with("source/"))
                .map(|(n, b)| (n.to_string(), b.to_vec()))
                .collect()
        })
        .unwrap_or_default();
    let writer = Writer::start(
        store,
        WriterOptions {
            retained: config.checkpoints_retained,
            tolerable_failures: config.tolerable_checkpoint_failures,
            base: view.as_ref().map(|v| v.checkpoint_id()),
            job_meta,
            carried,
            tasks,
            savepoint_dir: config.savepoint_dir.clone(),
        },
        publishers,
    )?;
    Ok(Some(Checkpointing {
        writer,
        view,
        after,
    }))
}

/// Checks that a checkpoint holds state this job can read: the same key groups, and for
/// every state it holds, an operator of the job with that uid, state name and types.
fn check_fits(
    view: &flow_state::RestoreView,
    declared: &BTreeMap<String, String>,
    config: &Config,
) -> Result<()> {
    let id = view.checkpoint_id();
    if let Some(m) = view.metadata("job/max_parallelism") {
        let m = String::from_utf8_lossy(m);
        if m != config.max_parallelism.to_string() {
            return Err(Error::Checkpoint(format!(
                "checkpoint {id} has {m} key groups (--max-parallelism), this job {}: \
                 key groups cannot change across a restore",
                config.max_parallelism
            )));
        }
    }
    for (name, blob) in view.metadata_entries() {
        let Some(state) = name.strip_prefix("types/") else {
            continue;
        };
        let had = String::from_utf8_lossy(blob);
        let (uid, sname) = state.rsplit_once('/').unwrap_or((state, ""));
        match declared.get(name) {
            None => {
                return Err(Error::Checkpoint(format!(
                    "checkpoint {id} holds state `{sname}` of operator `{uid}`, which this job \
                     does not have (operators declared: {}); was an operator's uid changed?",
                    declared
                        .keys()
                        .filter_map(|k| k.strip_prefix("types/"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
            Some(now) if *now != had => {
                return Err(Error::Checkpoint(format!(
                    "state `{sname}` of operator `{uid}` in checkpoint {id} holds {had}, \
                     but this job's operator keeps {now}"
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Copies the newest complete checkpoint of `from` (a savepoint) into checkpoint directory
/// `dir`; returns its id.
fn import(from: &std::path::Path, dir: &std::path::Path) -> Result<u64> {
    let saved = CheckpointStore::open(from, Arc::new(FsStorage))?;
    let found = saved.latest_complete()?;
    for (skipped, why) in &found.skipped {
        eprintln!(
            "warning: checkpoint {skipped} in {} is damaged and is skipped: {why}",
            from.display()
        );
    }
    let Some(id) = found.checkpoint else {
        return Err(Error::Checkpoint(format!(
            "{} holds no complete checkpoint to restore",
            from.display()
        )));
    };
    let manifest = format!("checkpoint-{id:020}.manifest");
    if dir.join(&manifest).exists() {
        return Err(Error::Checkpoint(format!(
            "cannot restore savepoint {}: {} already holds a checkpoint {id}; restore it into \
             an empty --checkpoint-dir",
            from.display(),
            dir.display()
        )));
    }
    saved.export(id, dir)?;
    Ok(id)
}
