//! Side outputs by tag (`OutputTag`, issue 13 item 3): several typed tags per process
//! function — keyed, non-keyed, window and co-process — every record in exactly one output,
//! unconsumed tags dropped and counted.
#![allow(clippy::unwrap_used)] // tests fail loudly on purpose
use flow_core::prelude::*;

/// Sorts numbers into the main output (multiples of 3), tag `odd` (other odd numbers, as
/// `u64`) and tag `even` (other even numbers, as text).
#[derive(Clone)]
struct Sort3 {
    odd: OutputTag<u64>,
    even: OutputTag<String>,
}

impl KeyedProcessFunction<u32, u32> for Sort3 {
    type State = u32; // records seen for the key
    type Out = (u32, u32);
    fn process_element(
        &mut self,
        key: &u32,
        n: u32,
        seen: &mut u32,
        ctx: &mut Context<'_, (u32, u32)>,
    ) {
        *seen += 1;
        if n.is_multiple_of(3) {
            ctx.emit((*key, n));
        } else if n % 2 == 1 {
            ctx.output(&self.odd, u64::from(n));
        } else {
            ctx.output(&self.even, format!("even {n}"));
        }
    }
}

fn tags() -> (OutputTag<u64>, OutputTag<String>) {
    (OutputTag::new("odd"), OutputTag::new("even"))
}

const N: u32 = 1_000;

#[test]
fn two_tags_of_different_types_from_one_keyed_process_function() {
    for p in 1..=3 {
        for batch in [1, 7, 256] {
            let (odd, even) = tags();
            let mut env = Env::new(Config::default().parallelism(p).batch_size(batch));
            let main = env.from_iter(0..N).key_by(|n| n % 10).process(Sort3 {
                odd: odd.clone(),
                even: even.clone(),
            });
            let odd_out = main.side_output(&odd).collect();
            let even_out = main.side_output(&even).collect();
            let main_out = main.collect();
            let summary = env.execute().unwrap();

            let mut seen: Vec<u32> = main_out
                .take()
                .into_iter()
                .map(|(k, n)| {
                    assert_eq!(k, n % 10);
                    n
                })
                .collect();
            let main_len = seen.len();
            let odd_got = odd_out.take();
            let even_got = even_out.take();
            seen.extend(odd_got.iter().map(|&n| u32::try_from(n).unwrap()));
            seen.extend(
                even_got
                    .iter()
                    .map(|s| s.strip_prefix("even ").unwrap().parse::<u32>().unwrap()),
            );
            seen.sort_unstable();
            assert_eq!(
                seen,
                (0..N).collect::<Vec<_>>(),
                "p={p} batch={batch}: each record exactly once"
            );
            assert_eq!(main_len, (0..N).filter(|n| n.is_multiple_of(3)).count());
            assert!(odd_got.iter().all(|n| n % 2 == 1 && !n.is_multiple_of(3)));
            assert_eq!(summary.records_side_dropped(), 0);
        }
    }
}

#[test]
fn records_to_an_unconsumed_tag_are_dropped_and_counted() {
    for p in 1..=3 {
        let (odd, even) = tags();
        let mut env = Env::new(Config::default().parallelism(p).batch_size(16));
        let main = env.from_iter(0..N).key_by(|n| n % 10).process(Sort3 {
            odd: odd.clone(),
            even,
        });
        let odd_out = main.side_output(&odd).collect();
        let main_out = main.collect();
        let summary = env.execute().unwrap();
        let evens = (0..N)
            .filter(|n| !n.is_multiple_of(3) && n.is_multiple_of(2))
            .count() as u64;
        assert_eq!(summary.records_side_dropped(), evens, "p={p}");
        assert_eq!(
            main_out.take().len() + odd_out.take().len() + evens as usize,
            N as usize
        );
        assert!(
            summary
                .to_string()
                .contains(&format!("dropped {evens} record(s) sent to side outputs")),
            "{summary}"
        );
    }
}

#[test]
fn no_tag_consumed_drops_every_side_record() {
    let (odd, even) = tags();
    let mut env = Env::new(Config::default().parallelism(2));
    let main = env
        .from_iter(0..N)
        .key_by(|n| n % 10)
        .process(Sort3 { odd, even })
        .collect();
    let summary = env.execute().unwrap();
    let main_len = main.take().len() as u64;
    assert_eq!(main_len + summary.records_side_dropped(), u64::from(N));
}

#[test]
fn a_non_keyed_process_function_with_a_tag() {
    for p in 1..=3 {
        let words = OutputTag::<String>::new("words");
        let tag = words.clone();
        let mut env = Env::new(Config::default().parallelism(p).batch_size(3));
        let numbers = env
            .from_iter(["1", "two", "3", "four", "5", "6"])
            .rebalance()
            .process(
                move |s: &str, ctx: &mut ProcessContext<'_, u32>| match s.parse() {
                    Ok(n) => ctx.emit(n),
                    Err(_) => ctx.output(&tag, s.to_uppercase()),
                },
            );
        let words = numbers.side_output(&words).collect();
        let numbers = numbers.map(|n| n * 10).collect();
        env.execute().unwrap();
        let mut n = numbers.take();
        n.sort_unstable();
        let mut w = words.take();
        w.sort();
        assert_eq!(n, vec![10, 30, 50, 60], "p={p}");
        assert_eq!(w, vec!["FOUR", "TWO"], "p={p}");
    }
}

#[test]
fn side_records_keep_their_timestamps_and_watermarks_reach_the_side_stream() {
    // The side stream of a keyed process function feeds an event-time window.
    let late = OutputTag::<(u32, i64)>::new("small");
    #[derive(Clone)]
    struct Small(OutputTag<(u32, i64)>);
    impl KeyedProcessFunction<u32, (u32, i64)> for Small {
        type State = ();
        type Out = (u32, i64);
        fn process_element(
            &mut self,
            _: &u32,
            e: (u32, i64),
            _: &mut (),
            ctx: &mut Context<'_, (u32, i64)>,
        ) {
            if e.0 < 5 {
                ctx.output(&self.0, e);
            } else {
                ctx.emit(e);
            }
        }
    }
    let mut env = Env::new(Config::default().parallelism(2).batch_size(2));
    let main = env
        .from_iter((0..20u32).map(|i| (i % 10, i64::from(i) * 100)))
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .key_by(|e| e.0)
        .process(Small(late.clone()));
    let windows = main
        .side_output(&late)
        .key_by(|_| ())
        .window(TumblingEventTimeWindows::of(
            std::time::Duration::from_secs(1),
        ))
        .count()
        .map(|w| (w.window.start, w.value))
        .collect();
    main.discard();
    env.execute().unwrap();
    let mut got = windows.take();
    got.sort_unstable();
    assert_eq!(got, vec![(0, 5), (1000, 5)]);
}

#[test]
fn a_side_output_after_an_operator_without_tags_is_an_error() {
    let tag = OutputTag::<u32>::new("nothing");
    let mut env = Env::new(Config::default().parallelism(1));
    let s = env.from_iter([1u32]).map(|x| x + 1);
    let side = s.side_output(&tag).collect();
    s.collect();
    let err = env.execute().unwrap_err().to_string();
    assert!(err.contains("no tagged side outputs"), "{err}");
    drop(side);
}

#[test]
fn taking_a_tag_twice_is_an_error() {
    let tag = OutputTag::<String>::new("x");
    let mut env = Env::new(Config::default().parallelism(1));
    let t = tag.clone();
    let s = env
        .from_iter([1u32])
        .process(move |n: u32, ctx: &mut ProcessContext<'_, u32>| ctx.output(&t, n.to_string()));
    let _a = s.side_output(&tag).collect();
    let _b = s.side_output(&tag).collect();
    s.collect();
    let err = env.execute().unwrap_err().to_string();
    assert!(err.contains("already taken"), "{err}");
}

#[test]
fn a_window_process_function_with_two_tags() {
    for p in 1..=3 {
        let singles = OutputTag::<(u32, i64)>::new("singles");
        let empty_keys = OutputTag::<String>::new("key 0");
        let (s, e) = (singles.clone(), empty_keys.clone());
        let mut env = Env::new(Config::default().parallelism(p).batch_size(4));
        let many = env
            .from_iter((0..40u32).map(|i| (i % 7, i64::from(i) * 50)))
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
            .key_by(|e| e.0)
            .window(TumblingEventTimeWindows::of(
                std::time::Duration::from_millis(400),
            ))
            .process_with_context(
                move |k: &u32,
                      info: &WindowInfo,
                      items: Vec<(u32, i64)>,
                      ctx: &mut WindowContext<'_, (u32, i64, usize)>| {
                    if *k == 0 {
                        ctx.output(&e, format!("{}", info.window.start));
                    } else if items.len() == 1 {
                        ctx.output(&s, (*k, info.window.start));
                    } else {
                        ctx.emit((*k, info.window.start, items.len()));
                    }
                },
            );
        let singles = many.side_output(&singles).collect();
        let zero = many.side_output(&empty_keys).collect();
        let many = many.collect();
        env.execute().unwrap();

        // The reference: count each (key, window) pair.
        let mut reference = std::collections::BTreeMap::<(u32, i64), usize>::new();
        for i in 0..40u32 {
            *reference
                .entry((i % 7, i64::from(i) * 50 / 400 * 400))
                .or_default() += 1;
        }
        let mut got = std::collections::BTreeMap::new();
        for (k, w, n) in many.take() {
            assert!(n > 1 && k != 0);
            assert!(got.insert((k, w), n).is_none());
        }
        for (k, w) in singles.take() {
            assert!(k != 0);
            assert!(got.insert((k, w), 1).is_none());
        }
        let zero = zero.take();
        assert_eq!(
            zero.len(),
            reference.keys().filter(|(k, _)| *k == 0).count(),
            "p={p}"
        );
        for w in zero {
            let w: i64 = w.parse().unwrap();
            got.insert((0, w), reference[&(0, w)]);
        }
        assert_eq!(got, reference, "p={p}");
    }
}

/// Matches left and right records by key; unmatched rights go to a tag.
#[derive(Clone)]
struct Match(OutputTag<(u32, char)>);

impl KeyedCoProcessFunction<u32, u32, (u32, char)> for Match {
    type State = bool;
    type Out = u32;
    fn process_left(&mut self, _: &u32, n: u32, seen: &mut bool, ctx: &mut Context<'_, u32>) {
        *seen = true;
        ctx.emit(n);
    }
    fn process_right(
        &mut self,
        _: &u32,
        r: (u32, char),
        seen: &mut bool,
        ctx: &mut Context<'_, u32>,
    ) {
        if !*seen {
            ctx.output(&self.0, r);
        }
    }
}

#[test]
fn a_co_process_function_with_a_tag() {
    let unmatched = OutputTag::<(u32, char)>::new("unmatched");
    let mut env = Env::new(Config::default().parallelism(2).batch_size(1));
    // The rights' keys are keys the left never has, so every right is unmatched whatever the
    // interleaving of the two inputs.
    let left = env.from_iter([1u32, 2, 3]).key_by(|n| *n);
    let right = env.from_iter([(10u32, 'a'), (20, 'b')]).key_by(|r| r.0);
    let out = left.connect(right).process(Match(unmatched.clone()));
    let side = out.side_output(&unmatched).collect();
    let out = out.collect();
    env.execute().unwrap();
    let mut o = out.take();
    o.sort_unstable();
    let mut s = side.take();
    s.sort_unstable();
    assert_eq!(o, vec![1, 2, 3]);
    assert_eq!(s, vec![(10, 'a'), (20, 'b')]);
}
