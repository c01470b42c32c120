//! q10's partitioned file sink: the rows in `dt=.../hm=...` directories are the query's rows,
//! each in the partition its time names, at parallelism 1 and 2 and with checkpoints on (so
//! through the exactly-once publish).
use flow_core::io::sink::read_part_files_by_bucket;
use flow_core::prelude::*;
use flow_nexmark::{queries, GeneratorConfig, Output, Query};

fn config() -> GeneratorConfig {
    // 100 events per second of event time: 30,000 events span five minutes.
    GeneratorConfig {
        seed: 3,
        rate: 100.0,
        ..GeneratorConfig::default()
    }
}

const N: u64 = 30_000;

fn collected() -> Vec<String> {
    let mut env = Env::new(Config::default().parallelism(2));
    let events = flow_nexmark::events(&mut env, config(), Some(N));
    let rows = queries::build(Query::Q10, events, &Output::Collect)
        .expect("build")
        .expect("collected");
    env.execute().expect("run");
    let mut rows = rows.take();
    rows.sort();
    rows
}

#[test]
fn partition_directories_hold_the_rows_of_their_time() {
    let want = collected();
    assert!(want.len() > 25_000, "{} bid rows", want.len());
    for (p, checkpoints) in [(1, false), (2, false), (2, true)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let mut config = Config::default().parallelism(p);
        if checkpoints {
            config = config
                .checkpoint_dir(dir.path().join("ckpt"))
                .checkpoint_interval(std::time::Duration::from_millis(20));
        }
        let mut env = Env::new(config);
        let events = flow_nexmark::events(&mut env, self::config(), Some(N));
        queries::build(Query::Q10, events, &Output::Csv(out.clone())).expect("build");
        env.execute().expect("run");
        let by_bucket = read_part_files_by_bucket(&out).expect("read");
        let buckets: std::collections::BTreeSet<&str> =
            by_bucket.iter().map(|(b, _)| b.as_str()).collect();
        assert!(buckets.len() >= 5, "{buckets:?}");
        let mut got: Vec<String> = by_bucket
            .iter()
            .map(|(bucket, row)| {
                let (dt, hm) = bucket
                    .strip_prefix("dt=")
                    .and_then(|b| b.split_once("/hm="))
                    .unwrap_or_else(|| panic!("bucket {bucket}"));
                format!("{row},{dt},{hm}")
            })
            .collect();
        got.sort();
        assert_eq!(got.len(), want.len(), "p{p}, checkpoints {checkpoints}");
        assert!(got == want, "p{p}, checkpoints {checkpoints}: rows differ");
    }
}
