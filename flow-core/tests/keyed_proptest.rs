//! Property tests: every keyed aggregate equals a `BTreeMap` reference computation, for random
//! inputs, parallelism 1-4, batch sizes and pre-aggregation table sizes (which move the
//! flush points), in bounded mode (one final result per key).
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;
use proptest::prelude::*;
use std::collections::BTreeMap;

type Rec = (u8, i64);

#[derive(Debug, Default, PartialEq, Clone)]
struct Ref {
    count: u64,
    sum: i64,
    min: i64,
    max: i64,
}

fn reference(records: &[Rec]) -> BTreeMap<u8, Ref> {
    let mut m: BTreeMap<u8, Ref> = BTreeMap::new();
    for &(k, v) in records {
        let e = m.entry(k).or_insert(Ref {
            count: 0,
            sum: 0,
            min: v,
            max: v,
        });
        e.count += 1;
        e.sum += v;
        e.min = e.min.min(v);
        e.max = e.max.max(v);
    }
    m
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn keyed_aggregates_match_a_btreemap(
        records in proptest::collection::vec((0u8..24, -1000i64..1000), 0..400),
        parallelism in 1usize..=4,
        batch in 1usize..64,
        table in 1usize..32,
    ) {
        let cfg = Config::default().parallelism(parallelism).batch_size(batch).pre_aggregate_capacity(table);
        let mut env = Env::new(cfg);
        let count = env.from_vec(records.clone()).key_by(|r| r.0).count().collect();
        let sum = env.from_vec(records.clone()).key_by(|r| r.0).sum(|r| r.1).collect();
        let min = env.from_vec(records.clone()).key_by(|r| r.0).min(|r| r.1).collect();
        let max = env.from_vec(records.clone()).key_by(|r| r.0).max(|r| r.1).collect();
        let min_by = env.from_vec(records.clone()).key_by(|r| r.0).min_by(|r| r.1).collect();
        let max_by = env.from_vec(records.clone()).key_by(|r| r.0).max_by(|r| r.1).collect();
        let reduce = env.from_vec(records.clone()).key_by(|r| r.0).reduce(|a, b| (a.0, a.1 + b.1)).collect();
        let fold = env
            .from_vec(records.clone())
            .rebalance()
            .key_by(|r| r.0)
            .fold((0u64, 0i64), |acc: &mut (u64, i64), r| { acc.0 += 1; acc.1 += r.1 })
            .collect();
        env.execute().unwrap();

        let want = reference(&records);
        prop_assert_eq!(sorted(count.take()), want.iter().map(|(k, r)| (*k, r.count)).collect::<Vec<_>>());
        prop_assert_eq!(sorted(sum.take()), want.iter().map(|(k, r)| (*k, r.sum)).collect::<Vec<_>>());
        prop_assert_eq!(sorted(min.take()), want.iter().map(|(k, r)| (*k, r.min)).collect::<Vec<_>>());
        prop_assert_eq!(sorted(max.take()), want.iter().map(|(k, r)| (*k, r.max)).collect::<Vec<_>>());
        prop_assert_eq!(sorted(min_by.take()), want.iter().map(|(k, r)| (*k, r.min)).collect::<Vec<_>>());
        prop_assert_eq!(sorted(max_by.take()), want.iter().map(|(k, r)| (*k, r.max)).collect::<Vec<_>>());
        prop_assert_eq!(sorted(reduce.take()), want.iter().map(|(k, r)| (*k, r.sum)).collect::<Vec<_>>());
        prop_assert_eq!(sorted(fold.take()), want.iter().map(|(k, r)| (*k, (r.count, r.sum))).collect::<Vec<_>>());
    }

    #[test]
    fn fused_stateless_operators_match_iterator_adapters(
        records in proptest::collection::vec(-500i32..500, 0..500),
        parallelism in 1usize..=4,
        batch in 1usize..64,
    ) {
        let mut env = Env::new(Config::default().parallelism(parallelism).batch_size(batch));
        let out = env
            .from_vec(records.clone())
            .map(|x| x * 3)
            .filter(|x| x % 2 == 0)
            .flat_map(|x| vec![x; (x.unsigned_abs() % 3) as usize])
            .filter_map(|x| (x != 0).then_some(x as i64 + 1))
            .collect();
        env.execute().unwrap();
        let want: Vec<i64> = records
            .iter()
            .map(|x| x * 3)
            .filter(|x| x % 2 == 0)
            .flat_map(|x| vec![x; (x.unsigned_abs() % 3) as usize])
            .filter_map(|x| (x != 0).then_some(x as i64 + 1))
            .collect();
        prop_assert_eq!(sorted(out.take()), sorted(want));
    }
}
