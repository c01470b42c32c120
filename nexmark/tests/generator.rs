//! The generator: Flink's proportions and id ranges, and the same events at any parallelism.
use flow_core::prelude::*;
use flow_nexmark::{Event, Generator, GeneratorConfig};

const N: u64 = 100_000;

fn generated(n: u64) -> Vec<Event> {
    let g = Generator::new(GeneratorConfig::default());
    (0..n).map(|i| g.event(i)).collect()
}

#[test]
fn proportions_are_one_three_forty_six() {
    let events = generated(N);
    let count = |t: u8| events.iter().filter(|e| e.event_type() == t).count() as u64;
    assert_eq!(count(0), N / 50);
    assert_eq!(count(1), N / 50 * 3);
    assert_eq!(count(2), N / 50 * 46);
}

#[test]
fn ids_are_dense_and_bids_name_auctions_in_flight() {
    let events = generated(N);
    let mut persons = 999;
    let mut auctions = 999;
    let (mut hot_auction, mut hot_bidder, mut hot_seller, mut bids, mut sold) = (0, 0, 0, 0, 0);
    for e in &events {
        match e {
            Event::Person(p) => {
                assert_eq!(p.id, persons + 1, "person ids count up from 1000");
                persons = p.id;
                assert!(["AZ", "CA", "ID", "OR", "WA", "WY"].contains(&&*p.state));
                assert_eq!(p.credit_card.len(), 19);
            }
            Event::Auction(a) => {
                assert_eq!(a.id, auctions + 1, "auction ids count up from 1000");
                auctions = a.id;
                assert!((10..15).contains(&a.category));
                assert!(a.reserve > a.initial_bid);
                assert!(a.expires > a.date_time);
                // sellers are people who exist or are about to (the lead of 10)
                assert!(a.seller <= persons + 10, "{} > {persons}", a.seller);
                hot_seller += u64::from(a.seller % 100 == 0);
                sold += 1;
            }
            Event::Bid(b) => {
                bids += 1;
                assert!(b.auction >= 1000 && b.auction <= auctions + 10);
                assert!(b.auction + 110 >= auctions, "bids name recent auctions");
                // Flink's bidder ids are offset by 2000 (see the crate docs)
                assert!(b.bidder >= 2000 && b.bidder <= persons + 1000 + 10);
                assert!((100..=100_000_000).contains(&b.price));
                hot_auction += u64::from(b.auction % 100 == 0);
                hot_bidder += u64::from(b.bidder % 100 == 1);
            }
        }
    }
    let share = |a: u64, b: u64| a as f64 / b as f64;
    assert!(
        (0.49..0.53).contains(&share(hot_auction, bids)),
        "hot auctions {hot_auction}"
    );
    assert!(
        (0.74..0.78).contains(&share(hot_bidder, bids)),
        "hot bidders {hot_bidder}"
    );
    assert!(
        (0.73..0.79).contains(&share(hot_seller, sold)),
        "hot sellers {hot_seller}"
    );
}

#[test]
fn sizes_average_flinks_targets() {
    let events = generated(N);
    let (mut bid_bytes, mut bids, mut channels) = (0usize, 0usize, 0usize);
    let mut log_prices = 0.0;
    for e in &events {
        if let Event::Bid(b) = e {
            bid_bytes += 32 + b.extra.len();
            bids += 1;
            channels +=
                usize::from(["Google", "Facebook", "Baidu", "Apple"].contains(&&*b.channel));
            log_prices += (b.price as f64 / 100.0).log10();
        }
    }
    let avg = bid_bytes as f64 / bids as f64;
    assert!((98.0..102.0).contains(&avg), "average bid size {avg}");
    let hot = channels as f64 / bids as f64;
    assert!((0.48..0.52).contains(&hot), "hot channels {hot}");
    // log-uniform from 10^0 to 10^6 dollars: the mean of the log is 3
    let mean_log = log_prices / bids as f64;
    assert!(
        (2.95..3.05).contains(&mean_log),
        "mean log price {mean_log}"
    );
}

#[test]
fn event_times_follow_the_rate() {
    let config = GeneratorConfig {
        rate: 1000.0,
        ..GeneratorConfig::default()
    };
    let g = Generator::new(config);
    assert_eq!(g.event(0).date_time(), config.base_time);
    assert_eq!(g.event(1).date_time(), config.base_time + 1);
    assert_eq!(g.event(12_345).date_time(), config.base_time + 12_345);
}

#[test]
fn seeds_change_the_events_and_repeat_them() {
    let a = Generator::new(GeneratorConfig::default());
    let b = Generator::new(GeneratorConfig {
        seed: 1,
        ..GeneratorConfig::default()
    });
    assert_eq!(a.event(1234), a.event(1234));
    assert_ne!(a.event(1234), b.event(1234));
}

#[test]
fn the_source_makes_the_same_events_at_any_parallelism() {
    let run = |p: usize| {
        let mut env = Env::new(Config::default().parallelism(p).batch_size(97));
        let events = flow_nexmark::events(&mut env, GeneratorConfig::default(), Some(20_000));
        let out = events.map(|e| format!("{e:?}")).collect();
        env.execute().expect("run");
        let mut got = out.take();
        got.sort();
        got
    };
    let one = run(1);
    assert_eq!(one.len(), 20_000);
    let mut direct: Vec<String> = generated(20_000).iter().map(|e| format!("{e:?}")).collect();
    direct.sort();
    assert_eq!(one, direct);
    assert_eq!(run(2), one);
    assert_eq!(run(3), one);
}
