//! The Nexmark event generator: Flink's rules, seeded per event.
//!
//! Event `n` is a function of the seed, `n` and the configuration alone (Beam's and the
//! original generator's per-event seeding), so a parallel source that hands out index ranges
//! produces the same events at any parallelism, and a restored job regenerates exactly the
//! events its checkpoint had not.
//!
//! ```
//! use flow_nexmark::{Event, GeneratorConfig, Generator};
//! let g = Generator::new(GeneratorConfig::default());
//! // 1 person, 3 auctions and 46 bids in every 50 events
//! assert!(matches!(g.event(0), Event::Person(_)));
//! assert!(matches!(g.event(1), Event::Auction(_)));
//! assert!(matches!(g.event(4), Event::Bid(_)));
//! assert_eq!(g.event(77), g.event(77));
//! ```
use crate::model::{Auction, Bid, Event, Millis, Person, Str};
use std::borrow::Cow;
use std::sync::OnceLock;

/// Events per epoch of the event-type pattern, and the share of each type (Flink's 1:3:46).
pub const TOTAL_PROPORTION: u64 = 50;
/// Persons per epoch.
pub const PERSON_PROPORTION: u64 = 1;
/// Auctions per epoch.
pub const AUCTION_PROPORTION: u64 = 3;
/// The first person id.
pub const FIRST_PERSON_ID: u64 = 1000;
/// The first auction id.
pub const FIRST_AUCTION_ID: u64 = 1000;
/// The first category id.
pub const FIRST_CATEGORY_ID: u64 = 10;
/// Categories.
pub const NUM_CATEGORIES: u64 = 5;
/// Auctions open at a time, which sets how long an auction lasts.
const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
/// People who bid and sell at a time.
const NUM_ACTIVE_PEOPLE: u64 = 1000;
/// Bids may name auctions up to this many ids ahead of the last one created.
const AUCTION_ID_LEAD: u64 = 10;
/// Sellers and bidders may be up to this many ids ahead of the last person created.
const PERSON_ID_LEAD: u64 = 10;
/// One in `HOT_RATIO` ids is hot.
const HOT_RATIO: u64 = 100;
/// `1 - 1/4` of auctions have a hot seller.
const HOT_SELLERS_RATIO: u64 = 4;
/// `1 - 1/2` of bids are on a hot auction.
const HOT_AUCTION_RATIO: u64 = 2;
/// `1 - 1/4` of bids come from a hot bidder.
const HOT_BIDDERS_RATIO: u64 = 4;
/// `1 - 1/2` of bids come through a hot channel.
const HOT_CHANNELS_RATIO: u64 = 2;
/// Channels that are not hot.
const CHANNELS: usize = 10_000;
const HOT_CHANNELS: [&str; 4] = ["Google", "Facebook", "Baidu", "Apple"];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];
const CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
/// Average sizes in bytes that `extra` pads each type to.
const AVG_PERSON_BYTES: usize = 200;
const AVG_AUCTION_BYTES: usize = 500;
const AVG_BID_BYTES: usize = 100;
/// Size of the text pools strings are cut from.
const POOL_BYTES: usize = 1 << 20;

/// The generator's settings. Two generators with equal settings make equal events.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GeneratorConfig {
    /// Seed of every event's random numbers.
    pub seed: u64,
    /// Events per second of event time (Flink's `firstEventRate`); it sets the spacing of
    /// timestamps only, not how fast events are made.
    pub rate: f64,
    /// Event time of event 0, in ms since the Unix epoch (Flink takes the wall clock; a fixed
    /// default keeps runs reproducible).
    pub base_time: Millis,
}

impl Default for GeneratorConfig {
    /// Seed 0, 10 million events per second (Flink's published runs), starting at
    /// 2026-01-01 00:00:00 UTC.
    fn default() -> Self {
        GeneratorConfig {
            seed: 0,
            rate: 10_000_000.0,
            base_time: 1_767_225_600_000,
        }
    }
}

impl GeneratorConfig {
    /// The event time of event `n`: events are spaced `1e6 / rate` µs apart.
    pub fn timestamp(&self, n: u64) -> Millis {
        let us = n as f64 * (1e6 / self.rate);
        self.base_time + (us as i64) / 1000
    }
}

/// The kind of event `n` is (0 person, 1 auction, 2 bid), from its place in the 1:3:46
/// pattern.
pub fn event_type(n: u64) -> u8 {
    match n % TOTAL_PROPORTION {
        r if r < PERSON_PROPORTION => 0,
        r if r < PERSON_PROPORTION + AUCTION_PROPORTION => 1,
        _ => 2,
    }
}

/// The base-0 id of the last person created at or before event `n`.
fn last_person(n: u64) -> u64 {
    let (epoch, offset) = (n / TOTAL_PROPORTION, n % TOTAL_PROPORTION);
    // With one person per epoch this is the epoch; written as Flink's `lastBase0PersonId`.
    #[allow(clippy::unnecessary_min_or_max)]
    let offset = offset.min(PERSON_PROPORTION - 1);
    epoch * PERSON_PROPORTION + offset
}

/// The base-0 id of the last auction created at or before event `n` (for a person event of
/// the first epoch, there is none: `None`).
fn last_auction(n: u64) -> Option<u64> {
    let (mut epoch, mut offset) = (n / TOTAL_PROPORTION, n % TOTAL_PROPORTION);
    if offset < PERSON_PROPORTION {
        epoch = epoch.checked_sub(1)?;
        offset = AUCTION_PROPORTION - 1;
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        offset = AUCTION_PROPORTION - 1;
    } else {
        offset -= PERSON_PROPORTION;
    }
    Some(epoch * AUCTION_PROPORTION + offset)
}

/// A small fast generator (wyrand), seeded from the generator's seed and the event number.
struct Rng(u64);

impl Rng {
    fn new(seed: u64, n: u64) -> Rng {
        Rng(mix(seed ^ mix(n.wrapping_add(0x9e37_79b9_7f4a_7c15))))
    }
    #[inline]
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) as u64) ^ (t as u64)
    }
    /// Uniform in `0..n` (`n > 0`).
    #[inline]
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
    /// Uniform in `[0, 1)`.
    #[inline]
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// SplitMix64's finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Text the generator cuts its strings from, made once per process from a fixed seed.
struct Pools {
    /// a–z with a space for one character in 13, as Flink's `nextString` makes them.
    text: String,
    /// a–z, for `extra` padding.
    letters: String,
    /// `first last` for every pair of names.
    names: Vec<String>,
    /// `channel-0channel-1...`: the names of the channels that are not hot, end to end.
    channel_names: String,
    /// Their urls, end to end.
    channel_urls: String,
    /// Where channel `i`'s name and url are: `[name start, name end, url start, url end]`.
    /// A small table, so that picking a channel reads 16 bytes, not the text.
    channel_at: Vec<[u32; 4]>,
    /// The url of each hot channel.
    hot_urls: Vec<String>,
}

fn pools() -> &'static Pools {
    static POOLS: OnceLock<Pools> = OnceLock::new();
    POOLS.get_or_init(|| {
        let mut rng = Rng::new(0x6e65_786d_6172_6b21, 0);
        let text = (0..POOL_BYTES)
            .map(|_| letter_or(&mut rng, ' '))
            .collect::<String>();
        let letters = (0..POOL_BYTES)
            .map(|_| (b'a' + rng.below(26) as u8) as char)
            .collect::<String>();
        let names = FIRST_NAMES
            .iter()
            .flat_map(|f| LAST_NAMES.iter().map(move |l| format!("{f} {l}")))
            .collect();
        let (mut channel_names, mut channel_urls) = (String::new(), String::new());
        let mut channel_at = Vec::with_capacity(CHANNELS);
        for i in 0..CHANNELS {
            let mut url = base_url(&mut rng);
            if rng.below(10) > 0 {
                url.push_str("&channel_id=");
                url.push_str(&(i as i32).reverse_bits().wrapping_abs().to_string());
            }
            let (n0, u0) = (channel_names.len() as u32, channel_urls.len() as u32);
            channel_names.push_str(&format!("channel-{i}"));
            channel_urls.push_str(&url);
            channel_at.push([
                n0,
                channel_names.len() as u32,
                u0,
                channel_urls.len() as u32,
            ]);
        }
        let hot_urls = HOT_CHANNELS.iter().map(|_| base_url(&mut rng)).collect();
        Pools {
            text,
            letters,
            names,
            channel_names,
            channel_urls,
            channel_at,
            hot_urls,
        }
    })
}

/// `text[range]` for pool text, which is ASCII, without reading the text: `&text[range]`
/// checks that the range falls on character boundaries, which reads a byte at a random place
/// of a megabyte pool (a cache miss per event) that the query may never look at.
///
/// # Panics
/// If the range is out of bounds. That the pools are ASCII is a unit test
/// (`strings_have_flinks_lengths`), not a check per call.
#[inline]
fn ascii_slice(text: &str, range: std::ops::Range<usize>) -> &str {
    assert!(range.start <= range.end && range.end <= text.len());
    // SAFETY: the range is within `text` (asserted above), and every pool this is called on
    // is ASCII (made of a–z, digits and url punctuation in `pools`), so every index is a
    // character boundary and the slice is valid UTF-8.
    unsafe { text.get_unchecked(range) }
}

/// One character of Flink's `nextString`: `special` one time in 13, otherwise a–z.
fn letter_or(rng: &mut Rng, special: char) -> char {
    if rng.below(13) == 0 {
        special
    } else {
        (b'a' + rng.below(26) as u8) as char
    }
}

/// Flink's `nextString(max)` with a special character (3 to `max - 1` characters, trimmed).
fn fresh_string(rng: &mut Rng, max: u64, special: char) -> String {
    let len = 3 + rng.below(max - 3);
    let s: String = (0..len).map(|_| letter_or(rng, special)).collect();
    s.trim().to_string()
}

/// `https://www.nexmark.com/<s>/<s>/<s>/item.htm?query=1`.
fn base_url(rng: &mut Rng) -> String {
    format!(
        "https://www.nexmark.com/{}/{}/{}/item.htm?query=1",
        fresh_string(rng, 5, '_'),
        fresh_string(rng, 5, '_'),
        fresh_string(rng, 5, '_')
    )
}

/// Makes Nexmark events; see the module docs.
#[derive(Clone, Copy)]
pub struct Generator {
    config: GeneratorConfig,
    pools: &'static Pools,
}

impl Generator {
    /// A generator with the given settings (builds the string pools on first use).
    pub fn new(config: GeneratorConfig) -> Generator {
        Generator {
            config,
            pools: pools(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &GeneratorConfig {
        &self.config
    }

    /// Event number `n` (its event id).
    #[inline]
    pub fn event(&self, n: u64) -> Event {
        let mut rng = Rng::new(self.config.seed, n);
        let ts = self.config.timestamp(n);
        match event_type(n) {
            0 => Event::Person(Box::new(self.person(n, ts, &mut rng))),
            1 => Event::Auction(self.auction(n, ts, &mut rng)),
            _ => Event::Bid(self.bid(n, ts, &mut rng)),
        }
    }

    /// A slice of the text pool as Flink's `nextString(max)` would make it.
    #[inline]
    fn string(&self, rng: &mut Rng, max: u64) -> &'static str {
        let len = 3 + rng.below(max - 3) as usize;
        let text = self.pools.text.as_str();
        let at = rng.below((text.len() - len) as u64) as usize;
        text[at..at + len].trim()
    }

    /// Padding that brings an event of `size` bytes to about `average` (±20%).
    #[inline]
    fn extra(&self, rng: &mut Rng, size: usize, average: usize) -> Str {
        if size >= average {
            return Cow::Borrowed("");
        }
        let want = average - size;
        let delta = (want as f64 * 0.2).round() as usize;
        let len = want - delta + rng.below(2 * delta as u64 + 1) as usize;
        let letters = self.pools.letters.as_str();
        let at = rng.below((letters.len() - len) as u64) as usize;
        Cow::Borrowed(ascii_slice(letters, at..at + len))
    }

    /// A person or seller id among the active people, up to `PERSON_ID_LEAD` ahead.
    #[inline]
    fn next_person(rng: &mut Rng, n: u64) -> u64 {
        let people = last_person(n) + 1;
        let active = people.min(NUM_ACTIVE_PEOPLE);
        people - active + rng.below(active + PERSON_ID_LEAD)
    }

    /// Log-uniform from 100 to 10^8 (cents).
    #[inline]
    fn price(rng: &mut Rng) -> u64 {
        ((rng.unit() * 6.0 * std::f64::consts::LN_10).exp() * 100.0).round() as u64
    }

    fn person(&self, n: u64, ts: Millis, rng: &mut Rng) -> Person {
        let id = last_person(n) + FIRST_PERSON_ID;
        let first = rng.below(FIRST_NAMES.len() as u64) as usize;
        let last = rng.below(LAST_NAMES.len() as u64) as usize;
        let name = self.pools.names[first * LAST_NAMES.len() + last].as_str();
        let email_address = format!("{}@{}.com", self.string(rng, 7), self.string(rng, 5));
        let credit_card = format!(
            "{:04} {:04} {:04} {:04}",
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000),
            rng.below(10_000)
        );
        let city = CITIES[rng.below(CITIES.len() as u64) as usize];
        let state = STATES[rng.below(STATES.len() as u64) as usize];
        let size = 8 + name.len() + email_address.len() + credit_card.len() + city.len() + 2;
        Person {
            id,
            name: Cow::Borrowed(name),
            email_address,
            credit_card,
            city: Cow::Borrowed(city),
            state: Cow::Borrowed(state),
            date_time: ts,
            extra: self.extra(rng, size, AVG_PERSON_BYTES),
        }
    }

    fn auction(&self, n: u64, ts: Millis, rng: &mut Rng) -> Auction {
        let id = last_auction(n).unwrap_or(0) + FIRST_AUCTION_ID;
        let seller = if rng.below(HOT_SELLERS_RATIO) > 0 {
            last_person(n) / HOT_RATIO * HOT_RATIO
        } else {
            Self::next_person(rng, n)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + rng.below(NUM_CATEGORIES);
        let initial_bid = Self::price(rng);
        // An auction lasts up to twice the event time of the next `in flight` auctions.
        let ahead = NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION / AUCTION_PROPORTION;
        let horizon = self.config.timestamp(n + ahead) - ts;
        let expires = ts + 1 + rng.below((horizon * 2).max(1) as u64) as i64;
        let item_name = self.string(rng, 20);
        let description = self.string(rng, 100);
        let reserve = initial_bid + Self::price(rng);
        let size = 8 + item_name.len() + description.len() + 40;
        Auction {
            id,
            item_name: Cow::Borrowed(item_name),
            description: Cow::Borrowed(description),
            initial_bid,
            reserve,
            date_time: ts,
            expires,
            seller,
            category,
            extra: self.extra(rng, size, AVG_AUCTION_BYTES),
        }
    }

    fn bid(&self, n: u64, ts: Millis, rng: &mut Rng) -> Bid {
        // A bid event is never in the first epoch's person slot: an auction exists.
        let last = last_auction(n).unwrap_or(0);
        let auction = if rng.below(HOT_AUCTION_RATIO) > 0 {
            last / HOT_RATIO * HOT_RATIO
        } else {
            let low = last.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
            low + rng.below(last - low + 1 + AUCTION_ID_LEAD)
        } + FIRST_AUCTION_ID;
        let bidder = if rng.below(HOT_BIDDERS_RATIO) > 0 {
            last_person(n) / HOT_RATIO * HOT_RATIO + 1
        } else {
            Self::next_person(rng, n)
        };
        // Flink's BidGenerator adds FIRST_PERSON_ID twice; kept, so that figures compare.
        let bidder = bidder + 2 * FIRST_PERSON_ID;
        let price = Self::price(rng);
        let (channel, url) = if rng.below(HOT_CHANNELS_RATIO) > 0 {
            let i = rng.below(HOT_CHANNELS.len() as u64) as usize;
            (HOT_CHANNELS[i], self.pools.hot_urls[i].as_str())
        } else {
            let [n0, n1, u0, u1] = self.pools.channel_at[rng.below(CHANNELS as u64) as usize];
            (
                ascii_slice(&self.pools.channel_names, n0 as usize..n1 as usize),
                ascii_slice(&self.pools.channel_urls, u0 as usize..u1 as usize),
            )
        };
        Bid {
            auction,
            bidder,
            price,
            channel: Cow::Borrowed(channel),
            url: Cow::Borrowed(url),
            date_time: ts,
            extra: self.extra(rng, 32, AVG_BID_BYTES),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_pattern() {
        assert_eq!(last_person(0), 0);
        assert_eq!(last_person(49), 0);
        assert_eq!(last_person(50), 1);
        assert_eq!(last_auction(0), None);
        assert_eq!(last_auction(1), Some(0));
        assert_eq!(last_auction(3), Some(2));
        assert_eq!(last_auction(4), Some(2));
        assert_eq!(last_auction(50), Some(2));
        assert_eq!(last_auction(51), Some(3));
    }

    #[test]
    fn strings_have_flinks_lengths() {
        let g = Generator::new(GeneratorConfig::default());
        let mut rng = Rng::new(1, 2);
        for _ in 0..10_000 {
            let s = g.string(&mut rng, 20);
            assert!(s.len() <= 19, "{s:?}");
            assert_eq!(s, s.trim());
            assert!(s.bytes().all(|b| b == b' ' || b.is_ascii_lowercase()));
        }
        assert!(g.pools.channel_names.is_ascii() && g.pools.channel_urls.is_ascii());
        assert!(g.pools.text.is_ascii() && g.pools.letters.is_ascii());
        for (i, [n0, n1, u0, u1]) in g.pools.channel_at.iter().enumerate() {
            let c = &g.pools.channel_names[*n0 as usize..*n1 as usize];
            let u = &g.pools.channel_urls[*u0 as usize..*u1 as usize];
            assert_eq!(c, format!("channel-{i}"));
            assert!(u.starts_with("https://www.nexmark.com/"), "{u}");
            let dirs: Vec<&str> = u.split('/').skip(3).take(3).collect();
            assert!(dirs.iter().all(|d| (3..=4).contains(&d.len())), "{u}");
        }
    }
}
