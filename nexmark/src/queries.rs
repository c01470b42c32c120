//! The Nexmark queries as flow jobs.
//!
//! Each query takes the event stream of [`crate::events`] and ends in an [`Output`]. Rows are
//! structs in the SQL's column order; times print as `yyyy-MM-dd HH:mm:ss.SSS` (UTC), prices
//! in euros with three decimals, as Flink's `DECIMAL(23, 3)`. Queries whose SQL answer is a
//! changelog (q4, q9, q15–q19) emit, in a bounded job, each group's final row once; in an
//! unbounded job, each group's updated row whenever it changes (an upsert stream keyed by the
//! group). Where the SQL leaves ties unordered (`ROW_NUMBER` over equal prices or times), the
//! jobs break them by the remaining columns, so that results never depend on arrival order.
use crate::model::{Auction, Bid, Event, Millis, Person, Str};
use crate::time::{date, day_number, hour_minute, parts, timestamp};
use flow_core::prelude::*;
use flow_core::{Collected, Result};
use memchr::memmem;
use rustc_hash::FxHashMap;
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Where a query's rows go.
#[derive(Clone, Debug)]
pub enum Output {
    /// Dropped after the last operator (Flink's `blackhole` sink).
    Discard,
    /// CSV part files in a directory.
    Csv(PathBuf),
    /// Collected in memory as CSV lines (for tests).
    Collect,
}

/// A Nexmark query.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(missing_docs)]
pub enum Query {
    Q0,
    Q1,
    Q2,
    Q3,
    Q4,
    Q5,
    Q6,
    Q7,
    Q8,
    Q9,
    Q10,
    Q11,
    Q12,
    Q13,
    Q14,
    Q15,
    Q16,
    Q17,
    Q18,
    Q19,
    Q20,
    Q21,
    Q22,
}

impl Query {
    /// Every query, in order.
    pub const ALL: [Query; 23] = [
        Query::Q0,
        Query::Q1,
        Query::Q2,
        Query::Q3,
        Query::Q4,
        Query::Q5,
        Query::Q6,
        Query::Q7,
        Query::Q8,
        Query::Q9,
        Query::Q10,
        Query::Q11,
        Query::Q12,
        Query::Q13,
        Query::Q14,
        Query::Q15,
        Query::Q16,
        Query::Q17,
        Query::Q18,
        Query::Q19,
        Query::Q20,
        Query::Q21,
        Query::Q22,
    ];

    /// `q0`, `q1`, ...
    pub fn name(self) -> String {
        format!("{self:?}").to_lowercase()
    }

    /// Whether the query's result depends on processing time (q12), so that it cannot be
    /// compared with another engine's.
    pub fn is_processing_time(self) -> bool {
        self == Query::Q12
    }
}

impl std::str::FromStr for Query {
    type Err = String;
    fn from_str(s: &str) -> Result<Query, String> {
        Query::ALL
            .into_iter()
            .find(|q| q.name() == s.trim().to_lowercase())
            .ok_or_else(|| {
                let known: Vec<String> = Query::ALL.iter().map(|q| q.name()).collect();
                format!("unknown query {s:?}; known: {} (or all)", known.join(", "))
            })
    }
}

/// An event time that prints as `yyyy-MM-dd HH:mm:ss.SSS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ts(pub Millis);

impl Serialize for Ts {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&timestamp(self.0))
    }
}

/// `0.908 * price` as `DECIMAL(23, 3)`: thousandths of a euro, printed with three decimals.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Euros(pub u64);

impl Euros {
    /// Dollars (cents) to euros at Nexmark's fixed rate of 0.908.
    pub fn of(price: u64) -> Euros {
        Euros(price * 908)
    }
}

impl Serialize for Euros {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}.{:03}", self.0 / 1000, self.0 % 1000))
    }
}

/// Sends a query's rows to `out`: the collected CSV lines for [`Output::Collect`].
fn finish<R>(rows: Stream<impl Chain<Out = R>>, out: &Output) -> Result<Option<Collected<String>>>
where
    R: Serialize + Send + 'static,
{
    match out {
        Output::Discard => {
            rows.discard();
            Ok(None)
        }
        Output::Csv(dir) => {
            rows.write_csv_serde(dir, WriteOptions::default())?;
            Ok(None)
        }
        Output::Collect => Ok(Some(rows.map(|r| csv_line(&r)).collect())),
    }
}

/// One CSV line (without the line break) of a row.
pub fn csv_line<R: Serialize>(row: &R) -> String {
    let mut w = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    let line = w
        .serialize(row)
        .map_err(|e| e.to_string())
        .and_then(|()| w.into_inner().map_err(|e| e.to_string()))
        .and_then(|b| String::from_utf8(b).map_err(|e| e.to_string()));
    match line {
        Ok(mut s) => {
            while s.ends_with('\n') || s.ends_with('\r') {
                s.pop();
            }
            s
        }
        Err(e) => format!("<row not writable: {e}>"),
    }
}

/// Adds query `q` over `events` to the job, ending in `out`.
pub fn build(
    q: Query,
    events: Stream<impl Chain<Out = Event>>,
    out: &Output,
) -> Result<Option<Collected<String>>> {
    match q {
        Query::Q0 => finish(q0(events), out),
        Query::Q1 => finish(q1(events), out),
        Query::Q2 => finish(q2(events), out),
        Query::Q3 => finish(q3(events), out),
        Query::Q4 => finish(q4(events), out),
        Query::Q5 => finish(q5(events), out),
        Query::Q6 => finish(q6(events), out),
        Query::Q7 => finish(q7(events), out),
        Query::Q8 => finish(q8(events), out),
        Query::Q9 => finish(q9(events), out),
        Query::Q10 => q10_sink(q10(events), out),
        Query::Q11 => finish(q11(events), out),
        Query::Q12 => finish(q12(events), out),
        Query::Q13 => finish(q13(events, side_input()), out),
        Query::Q14 => finish(q14(events), out),
        Query::Q15 => finish(q15(events), out),
        Query::Q16 => finish(q16(events), out),
        Query::Q17 => finish(q17(events), out),
        Query::Q18 => finish(q18(events), out),
        Query::Q19 => finish(q19(events), out),
        Query::Q20 => finish(q20(events), out),
        Query::Q21 => finish(q21(events), out),
        Query::Q22 => finish(q22(events), out),
    }
}

/// q10 row: every bid with its partition columns.
#[derive(Clone, Debug, Serialize)]
pub struct Q10Row {
    auction: u64,
    bidder: u64,
    price: u64,
    date_time: Ts,
    extra: Str,
    /// `DATE_FORMAT(dateTime, 'yyyy-MM-dd')`.
    dt: String,
    /// `DATE_FORMAT(dateTime, 'HH:mm')`.
    hm: String,
}

/// q10 row as written to a partition's files: the partition columns are in its path.
#[derive(Clone, Debug, Serialize)]
pub struct Q10FileRow {
    auction: u64,
    bidder: u64,
    price: u64,
    date_time: Ts,
    extra: Str,
}

/// q10, logging to a file system: `SELECT auction, bidder, price, dateTime, extra,
/// DATE_FORMAT(dateTime, 'yyyy-MM-dd'), DATE_FORMAT(dateTime, 'HH:mm') FROM bid`, into a
/// sink `PARTITIONED BY (dt, hm)`.
#[track_caller]
pub fn q10(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q10Row>> {
    bids(events).map(|b| Q10Row {
        auction: b.auction,
        bidder: b.bidder,
        price: b.price,
        date_time: Ts(b.date_time),
        extra: b.extra,
        dt: crate::time::date(b.date_time),
        hm: crate::time::hour_minute(b.date_time),
    })
}

/// q10's sink: with [`Output::Csv`], Hive-style partition directories `dt=yyyy-MM-dd/hm=HH:mm`
/// holding the other columns (as Flink's filesystem sink writes them), exactly-once with
/// checkpoints; the other outputs as for every query.
fn q10_sink(
    rows: Stream<impl Chain<Out = Q10Row>>,
    out: &Output,
) -> Result<Option<Collected<String>>> {
    let Output::Csv(dir) = out else {
        return finish(rows, out);
    };
    rows.map(|r| Q10FileRow {
        auction: r.auction,
        bidder: r.bidder,
        price: r.price,
        date_time: r.date_time,
        extra: r.extra,
    })
    .write_csv_serde_bucketed(dir, WriteOptions::default(), |r, b| {
        use std::fmt::Write;
        let p = crate::time::parts(r.date_time.0);
        let _ = write!(
            b,
            "dt={:04}-{:02}-{:02}/hm={:02}:{:02}",
            p.year, p.month, p.day, p.hour, p.minute
        );
    })?;
    Ok(None)
}

/// The bids of an event stream.
#[track_caller]
pub fn bids(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Bid>> {
    events.filter_map(Event::into_bid)
}

/// A substring of a [`Str`] that stays a borrowed slice of the pool when the string is one.
fn slice(s: &Str, r: std::ops::Range<usize>) -> Str {
    match s {
        Cow::Borrowed(b) => Cow::Borrowed(&b[r]),
        Cow::Owned(o) => Cow::Owned(o[r].to_string()),
    }
}

/// A bid's columns: `auction, bidder, price, channel, url, dateTime, extra`.
#[derive(Clone, Debug, Serialize)]
pub struct BidRow {
    auction: u64,
    bidder: u64,
    price: u64,
    channel: Str,
    url: Str,
    date_time: Ts,
    extra: Str,
}

impl From<Bid> for BidRow {
    fn from(b: Bid) -> BidRow {
        BidRow {
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            channel: b.channel,
            url: b.url,
            date_time: Ts(b.date_time),
            extra: b.extra,
        }
    }
}

// ----------------------------------------------------------------------------------------
// q0–q2, q13, q14, q21, q22: projections, filters, string functions, a lookup join

/// q0 row.
#[derive(Clone, Debug, Serialize)]
pub struct Q0Row {
    auction: u64,
    bidder: u64,
    price: u64,
    date_time: Ts,
    extra: Str,
}

/// q0, pass-through: `SELECT auction, bidder, price, dateTime, extra FROM bid`.
#[track_caller]
pub fn q0(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q0Row>> {
    bids(events).map(|b| Q0Row {
        auction: b.auction,
        bidder: b.bidder,
        price: b.price,
        date_time: Ts(b.date_time),
        extra: b.extra,
    })
}

/// q1 row.
#[derive(Clone, Debug, Serialize)]
pub struct Q1Row {
    auction: u64,
    bidder: u64,
    price: Euros,
    date_time: Ts,
    extra: Str,
}

/// q1, currency conversion: `SELECT auction, bidder, 0.908 * price AS price, dateTime, extra
/// FROM bid`.
#[track_caller]
pub fn q1(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q1Row>> {
    bids(events).map(|b| Q1Row {
        auction: b.auction,
        bidder: b.bidder,
        price: Euros::of(b.price),
        date_time: Ts(b.date_time),
        extra: b.extra,
    })
}

/// q2, selection: `SELECT auction, price FROM bid WHERE MOD(auction, 123) = 0`.
#[track_caller]
pub fn q2(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = (u64, u64)>> {
    events.filter_map(|e| match e {
        Event::Bid(b) if b.auction % 123 == 0 => Some((b.auction, b.price)),
        _ => None,
    })
}

/// q13 row.
#[derive(Clone, Debug, Serialize)]
pub struct Q13Row {
    auction: u64,
    bidder: u64,
    price: u64,
    date_time: Ts,
    value: Shared,
}

/// Text shared by every row that carries it (q13's side-input values).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shared(pub Arc<str>);

impl Serialize for Shared {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

/// q13's side input: Flink's 10,000-row file of `key,value` with `value = key`.
pub fn side_input() -> Arc<FxHashMap<u64, Shared>> {
    Arc::new(
        (0..10_000u64)
            .map(|i| (i, Shared(Arc::from(i.to_string()))))
            .collect(),
    )
}

/// q13, bounded side input join: `SELECT B.auction, B.bidder, B.price, B.dateTime, S.value
/// FROM bid B JOIN side_input FOR SYSTEM_TIME AS OF B.p_time S ON MOD(B.auction, 10000) =
/// S.key`. The side input is a table shared by every subtask; a bid without a row is dropped
/// (an inner join).
#[track_caller]
pub fn q13(
    events: Stream<impl Chain<Out = Event>>,
    side: Arc<FxHashMap<u64, Shared>>,
) -> Stream<impl Chain<Out = Q13Row>> {
    bids(events).filter_map(move |b| {
        side.get(&(b.auction % 10_000)).map(|v| Q13Row {
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            date_time: Ts(b.date_time),
            value: v.clone(),
        })
    })
}

/// q14 row.
#[derive(Clone, Debug, Serialize)]
pub struct Q14Row {
    auction: u64,
    bidder: u64,
    price: Euros,
    bid_time_type: &'static str,
    date_time: Ts,
    extra: Str,
    c_counts: u64,
}

/// q14, a filter and a user-defined function: bids whose euro price is between 1e6 and 5e7
/// exclusive, with `dayTime` (hours 8–18), `nightTime` (up to 6 and from 20) or `otherTime`,
/// and `count_char(extra, 'c')`.
#[track_caller]
pub fn q14(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q14Row>> {
    events.filter_map(|e| {
        let b = e.into_bid()?;
        let euros = Euros::of(b.price);
        if !(euros.0 > 1_000_000_000 && euros.0 < 50_000_000_000) {
            return None;
        }
        let hour = parts(b.date_time).hour;
        let bid_time_type = if (8..=18).contains(&hour) {
            "dayTime"
        } else if hour <= 6 || hour >= 20 {
            "nightTime"
        } else {
            "otherTime"
        };
        let c_counts = b.extra.bytes().filter(|&c| c == b'c').count() as u64;
        Some(Q14Row {
            auction: b.auction,
            bidder: b.bidder,
            price: euros,
            bid_time_type,
            date_time: Ts(b.date_time),
            extra: b.extra,
            c_counts,
        })
    })
}

/// q21 row.
#[derive(Clone, Debug, Serialize)]
pub struct Q21Row {
    auction: u64,
    bidder: u64,
    price: u64,
    channel: Str,
    channel_id: Str,
}

/// `REGEXP_EXTRACT(url, '(&|^)channel_id=([^&]*)', 2)`: where the value of the first
/// `channel_id=` parameter at the start of the url or after a `&` is.
fn channel_id(url: &str) -> Option<std::ops::Range<usize>> {
    static NEEDLE: LazyLock<memmem::Finder<'static>> =
        LazyLock::new(|| memmem::Finder::new(b"channel_id="));
    let bytes = url.as_bytes();
    let mut from = 0;
    while let Some(i) = NEEDLE.find(&bytes[from..]) {
        let at = from + i;
        if at == 0 || bytes[at - 1] == b'&' {
            let start = at + NEEDLE.needle().len();
            let end = memchr::memchr(b'&', &bytes[start..]).map_or(url.len(), |e| start + e);
            return Some(start..end);
        }
        from = at + 1;
    }
    None
}

/// q21, string functions: the channel id of hot channels by name (`apple` 0, `google` 1,
/// `facebook` 2, `baidu` 3, case-insensitive), of others from the url's `channel_id`
/// parameter; bids with neither are dropped.
#[track_caller]
pub fn q21(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q21Row>> {
    events.filter_map(|e| {
        let b = e.into_bid()?;
        const HOT: [&str; 4] = ["apple", "google", "facebook", "baidu"];
        const IDS: [&str; 4] = ["0", "1", "2", "3"];
        let id = match HOT.iter().position(|h| b.channel.eq_ignore_ascii_case(h)) {
            Some(i) => Cow::Borrowed(IDS[i]),
            None => slice(&b.url, channel_id(&b.url)?),
        };
        Some(Q21Row {
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            channel: b.channel,
            channel_id: id,
        })
    })
}

/// q22 row.
#[derive(Clone, Debug, Serialize)]
pub struct Q22Row {
    auction: u64,
    bidder: u64,
    price: u64,
    channel: Str,
    dir1: Option<Str>,
    dir2: Option<Str>,
    dir3: Option<Str>,
}

/// `SPLIT_INDEX(s, '/', 3)`, `4` and `5`: the fourth to sixth pieces of `s` split at `/`
/// (`None` where `s` has fewer), found in one pass.
fn dirs(s: &Str) -> [Option<Str>; 3] {
    let mut slashes = [0usize; 6];
    let mut n = 0;
    for (slot, i) in slashes
        .iter_mut()
        .zip(memchr::memchr_iter(b'/', s.as_bytes()))
    {
        *slot = i;
        n += 1;
    }
    std::array::from_fn(|k| {
        let piece = k + 3;
        (n >= piece).then(|| {
            let end = if n > piece { slashes[piece] } else { s.len() };
            slice(s, slashes[piece - 1] + 1..end)
        })
    })
}

/// q22, string splitting: the url's first three directories (`SPLIT_INDEX(url, '/', 3)` to
/// `5`).
#[track_caller]
pub fn q22(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q22Row>> {
    bids(events).map(|b| {
        let [dir1, dir2, dir3] = dirs(&b.url);
        Q22Row {
            auction: b.auction,
            bidder: b.bidder,
            price: b.price,
            channel: b.channel,
            dir1,
            dir2,
            dir3,
        }
    })
}

// ----------------------------------------------------------------------------------------
// q3, q20: stream joins with unbounded state

/// A person of q3: `name, city, state`.
type Seller = (Str, Str, Str);

/// q3's join: per person id, the person (once seen) and the auctions that came first.
#[derive(Clone)]
struct SellerJoin;

/// q3's join state of one person id.
#[derive(Default, Serialize, Deserialize)]
struct SellerState {
    person: Option<Seller>,
    waiting: Vec<u64>,
}

impl KeyedCoProcessFunction<u64, u64, Seller> for SellerJoin {
    type State = SellerState;
    type Out = (Str, Str, Str, u64);
    fn process_left(
        &mut self,
        _seller: &u64,
        auction: u64,
        st: &mut SellerState,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        match &st.person {
            Some((name, city, state)) => {
                ctx.emit((name.clone(), city.clone(), state.clone(), auction))
            }
            None => st.waiting.push(auction),
        }
    }
    fn process_right(
        &mut self,
        _id: &u64,
        p: Seller,
        st: &mut SellerState,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        for a in st.waiting.drain(..) {
            ctx.emit((p.0.clone(), p.1.clone(), p.2.clone(), a));
        }
        st.waiting.shrink_to_fit();
        st.person = Some(p);
    }
}

/// Splits events into auctions (left) and persons (right), each mapped or dropped.
#[track_caller]
fn auctions_and_persons<A, P>(
    events: Stream<impl Chain<Out = Event>>,
    fa: impl Fn(Auction) -> Option<A> + Clone + Send + 'static,
    fp: impl Fn(Person) -> Option<P> + Clone + Send + 'static,
) -> (Stream<impl Chain<Out = A>>, Stream<impl Chain<Out = P>>)
where
    A: Send + 'static,
    P: Send + 'static,
{
    events
        .filter_map(move |e| match e {
            Event::Auction(a) => fa(a).map(Either::Left),
            Event::Person(p) => fp(*p).map(Either::Right),
            Event::Bid(_) => None,
        })
        .split()
}

/// q3, local item suggestion: `SELECT P.name, P.city, P.state, A.id FROM auction A JOIN
/// person P ON A.seller = P.id WHERE A.category = 10 AND P.state IN ('OR', 'ID', 'CA')`.
/// Both filters run before the join; the join keeps each matching person for ever and the
/// auctions that arrive before their seller until the seller does.
#[track_caller]
pub fn q3(
    events: Stream<impl Chain<Out = Event>>,
) -> Stream<impl Chain<Out = (Str, Str, Str, u64)>> {
    let (auctions, persons) = auctions_and_persons(
        events,
        |a| (a.category == 10).then_some((a.seller, a.id)),
        |p| matches!(&*p.state, "OR" | "ID" | "CA").then_some((p.id, (p.name, p.city, p.state))),
    );
    auctions
        .key_by(|a: &(u64, u64)| a.0)
        .connect(persons.key_by(|p: &(u64, Seller)| p.0))
        .process(Unpair(SellerJoin))
}

/// Adapts a co-process function of values to inputs of `(key, value)` pairs.
#[derive(Clone)]
struct Unpair<F>(F);

impl<K, A, B, F> KeyedCoProcessFunction<K, (K, A), (K, B)> for Unpair<F>
where
    F: KeyedCoProcessFunction<K, A, B>,
{
    type State = F::State;
    type Out = F::Out;
    fn process_left(&mut self, k: &K, a: (K, A), st: &mut F::State, ctx: &mut Context<'_, F::Out>) {
        self.0.process_left(k, a.1, st, ctx)
    }
    fn process_right(
        &mut self,
        k: &K,
        b: (K, B),
        st: &mut F::State,
        ctx: &mut Context<'_, F::Out>,
    ) {
        self.0.process_right(k, b.1, st, ctx)
    }
    fn on_timer(&mut self, k: &K, ts: Millis, st: &mut F::State, ctx: &mut Context<'_, F::Out>) {
        self.0.on_timer(k, ts, st, ctx)
    }
}

/// q20 row: the bid's columns, then the auction's.
#[derive(Clone, Debug, Serialize)]
pub struct Q20Row {
    auction: u64,
    bidder: u64,
    price: u64,
    channel: Str,
    url: Str,
    bid_date_time: Ts,
    bid_extra: Str,
    item_name: Str,
    description: Str,
    initial_bid: u64,
    reserve: u64,
    auction_date_time: Ts,
    expires: Ts,
    seller: u64,
    category: u64,
    auction_extra: Str,
}

fn q20_row(b: Bid, a: &Auction) -> Q20Row {
    Q20Row {
        auction: b.auction,
        bidder: b.bidder,
        price: b.price,
        channel: b.channel,
        url: b.url,
        bid_date_time: Ts(b.date_time),
        bid_extra: b.extra,
        item_name: a.item_name.clone(),
        description: a.description.clone(),
        initial_bid: a.initial_bid,
        reserve: a.reserve,
        auction_date_time: Ts(a.date_time),
        expires: Ts(a.expires),
        seller: a.seller,
        category: a.category,
        auction_extra: a.extra.clone(),
    }
}

/// q20's join state of one auction id.
#[derive(Default, Serialize, Deserialize)]
enum BidJoinState {
    /// The auction has not arrived: its bids wait.
    #[default]
    Unknown,
    Waiting(Vec<Bid>),
    /// A category-10 auction.
    Open(Box<Auction>),
    /// An auction of another category: its bids are dropped.
    Other,
}

/// q20's join: bids with their category-10 auction.
#[derive(Clone)]
struct BidJoin;

impl KeyedCoProcessFunction<u64, Bid, Auction> for BidJoin {
    type State = BidJoinState;
    type Out = Q20Row;
    fn process_left(
        &mut self,
        _id: &u64,
        b: Bid,
        st: &mut BidJoinState,
        ctx: &mut Context<'_, Q20Row>,
    ) {
        match st {
            BidJoinState::Open(a) => ctx.emit(q20_row(b, a)),
            BidJoinState::Other => {}
            BidJoinState::Waiting(w) => w.push(b),
            BidJoinState::Unknown => *st = BidJoinState::Waiting(vec![b]),
        }
    }
    fn process_right(
        &mut self,
        _id: &u64,
        a: Auction,
        st: &mut BidJoinState,
        ctx: &mut Context<'_, Q20Row>,
    ) {
        let waiting = match std::mem::take(st) {
            BidJoinState::Waiting(w) => w,
            _ => Vec::new(),
        };
        if a.category == 10 {
            for b in waiting {
                ctx.emit(q20_row(b, &a));
            }
            *st = BidJoinState::Open(Box::new(a));
        } else {
            *st = BidJoinState::Other;
        }
    }
}

/// Splits events into bids (left) and auctions (right).
#[track_caller]
fn bids_and_auctions(
    events: Stream<impl Chain<Out = Event>>,
) -> (
    Stream<impl Chain<Out = Bid>>,
    Stream<impl Chain<Out = Auction>>,
) {
    events
        .filter_map(|e| match e {
            Event::Bid(b) => Some(Either::Left(b)),
            Event::Auction(a) => Some(Either::Right(a)),
            Event::Person(_) => None,
        })
        .split()
}

/// q20, expanded bids: `SELECT B.*, A.* FROM bid B JOIN auction A ON B.auction = A.id WHERE
/// A.category = 10` (the bid's columns, then the auction's but its id). The join keeps each
/// category-10 auction for ever, a marker for other auctions, and the bids that arrive
/// before their auction until it does.
#[track_caller]
pub fn q20(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q20Row>> {
    let (bids, auctions) = bids_and_auctions(events);
    bids.key_by(|b: &Bid| b.auction)
        .connect(auctions.key_by(|a: &Auction| a.id))
        .process(BidJoin)
}

// ----------------------------------------------------------------------------------------
// q4, q9: the winning bid of each auction (an interval join of bids with their auction)

/// The order of bids for the win: the higher price, then the earlier bid, then the other
/// columns (a tie-break the SQL leaves open, fixed so results do not depend on arrival
/// order). `Less` means `a` wins.
fn winner_order(a: &Bid, b: &Bid) -> Ordering {
    b.price
        .cmp(&a.price)
        .then(a.date_time.cmp(&b.date_time))
        .then(a.bidder.cmp(&b.bidder))
        .then_with(|| a.channel.cmp(&b.channel))
        .then_with(|| a.url.cmp(&b.url))
        .then_with(|| a.extra.cmp(&b.extra))
}

/// The winning-bid join's state of one auction id.
#[derive(Default, Serialize, Deserialize)]
struct AuctionBids {
    auction: Option<Auction>,
    best: Option<Bid>,
    /// Bids that came before the auction; each waits until the watermark passes its time,
    /// after which no auction it could join (one that started no later) can arrive.
    early: Vec<Bid>,
}

/// Joins each auction with its bids from `A.dateTime` to `A.expires` (inclusive) and emits
/// the auction with its best bid when the watermark passes `expires`; auctions without bids
/// emit nothing (an inner join).
#[derive(Clone)]
struct WinningBids;

impl WinningBids {
    fn offer(st: &mut AuctionBids, b: Bid) {
        let Some(a) = &st.auction else { return };
        if b.date_time < a.date_time || b.date_time > a.expires {
            return;
        }
        match &st.best {
            Some(best) if winner_order(best, &b) != Ordering::Greater => {}
            _ => st.best = Some(b),
        }
    }
}

impl KeyedCoProcessFunction<u64, Bid, Auction> for WinningBids {
    type State = AuctionBids;
    type Out = (Auction, Bid);
    fn process_left(
        &mut self,
        _id: &u64,
        b: Bid,
        st: &mut AuctionBids,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        if st.auction.is_some() {
            Self::offer(st, b);
        } else {
            ctx.register_event_time_timer(b.date_time);
            st.early.push(b);
        }
    }
    fn process_right(
        &mut self,
        _id: &u64,
        a: Auction,
        st: &mut AuctionBids,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        ctx.register_event_time_timer(a.expires);
        st.auction = Some(a);
        for b in std::mem::take(&mut st.early) {
            Self::offer(st, b);
        }
    }
    fn on_timer(
        &mut self,
        _id: &u64,
        ts: Millis,
        st: &mut AuctionBids,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        match &st.auction {
            Some(a) if ts >= a.expires => {
                if let (Some(a), Some(b)) = (st.auction.take(), st.best.take()) {
                    ctx.emit((a, b));
                }
                ctx.clear_state();
            }
            Some(_) => {}
            None => {
                let wm = ctx.current_watermark().max(ts);
                st.early.retain(|b| b.date_time > wm);
                if st.early.is_empty() {
                    ctx.clear_state();
                }
            }
        }
    }
}

/// Each auction with its winning bid (see [`WinningBids`]).
#[track_caller]
fn winning_bids(
    events: Stream<impl Chain<Out = Event>>,
) -> Stream<impl Chain<Out = (Auction, Bid)>> {
    let (bids, auctions) = bids_and_auctions(events);
    bids.key_by(|b: &Bid| b.auction)
        .connect(auctions.key_by(|a: &Auction| a.id))
        .process(WinningBids)
}

/// `AVG` of a `BIGINT`, as Flink computes it: the sum divided by the count, truncated.
#[derive(Clone)]
pub struct IntAvg;

impl Aggregate<(u64, u64)> for IntAvg {
    type Acc = (u64, u64);
    type Out = u64;
    fn create(&mut self, item: (u64, u64)) -> (u64, u64) {
        (item.1, 1)
    }
    fn add(&mut self, acc: &mut (u64, u64), item: (u64, u64)) {
        acc.0 += item.1;
        acc.1 += 1;
    }
    fn merge(&mut self, a: &mut (u64, u64), b: (u64, u64)) {
        a.0 += b.0;
        a.1 += b.1;
    }
    fn result(&mut self, acc: (u64, u64)) -> u64 {
        acc.0 / acc.1.max(1)
    }
}

/// q4's join state of one auction id: only the columns q4 reads, as Flink's planner prunes
/// the others before the join (q9, which selects them all, keeps [`AuctionBids`]).
#[derive(Default, Serialize, Deserialize)]
struct AuctionMax {
    /// The auction's start, expiry and category, once it arrived.
    auction: Option<(Millis, Millis, u64)>,
    /// The highest price of its bids from its start to its expiry so far.
    best: Option<u64>,
    /// Bids (time, price) that came before the auction, waiting as in [`WinningBids`].
    early: Vec<(Millis, u64)>,
}

/// q4's join: per auction, the highest price of its bids between `A.dateTime` and
/// `A.expires`, emitted with its category when the watermark passes `expires` ([`WinningBids`]
/// without the columns q4 does not read: the highest price does not depend on which of
/// several bids at that price wins).
#[derive(Clone)]
struct MaxBidPrice;

impl MaxBidPrice {
    fn offer(st: &mut AuctionMax, (time, price): (Millis, u64)) {
        let Some((start, expires, _)) = st.auction else {
            return;
        };
        if time < start || time > expires {
            return;
        }
        st.best = Some(st.best.map_or(price, |b| b.max(price)));
    }
}

impl KeyedCoProcessFunction<u64, (u64, Millis, u64), (u64, Millis, Millis, u64)> for MaxBidPrice {
    type State = AuctionMax;
    type Out = (u64, u64);
    fn process_left(
        &mut self,
        _id: &u64,
        (_, time, price): (u64, Millis, u64),
        st: &mut AuctionMax,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        if st.auction.is_some() {
            Self::offer(st, (time, price));
        } else {
            ctx.register_event_time_timer(time);
            st.early.push((time, price));
        }
    }
    fn process_right(
        &mut self,
        _id: &u64,
        (_, start, expires, category): (u64, Millis, Millis, u64),
        st: &mut AuctionMax,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        ctx.register_event_time_timer(expires);
        st.auction = Some((start, expires, category));
        for b in std::mem::take(&mut st.early) {
            Self::offer(st, b);
        }
    }
    fn on_timer(
        &mut self,
        _id: &u64,
        ts: Millis,
        st: &mut AuctionMax,
        ctx: &mut Context<'_, Self::Out>,
    ) {
        match st.auction {
            Some((_, expires, category)) if ts >= expires => {
                if let Some(best) = st.best.take() {
                    ctx.emit((category, best));
                }
                ctx.clear_state();
            }
            Some(_) => {}
            None => {
                let wm = ctx.current_watermark().max(ts);
                st.early.retain(|&(t, _)| t > wm);
                if st.early.is_empty() {
                    ctx.clear_state();
                }
            }
        }
    }
}

/// q4, average price per category: `SELECT category, AVG(final) FROM (SELECT MAX(B.price)
/// AS final, A.category FROM auction A, bid B WHERE A.id = B.auction AND B.dateTime BETWEEN
/// A.dateTime AND A.expires GROUP BY A.id, A.category) GROUP BY category`. Both sides are
/// projected to the columns the query reads before the join ([`MaxBidPrice`]).
#[track_caller]
pub fn q4(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = (u64, u64)>> {
    let (bids, auctions) = bids_and_auctions(events);
    bids.map(|b: Bid| (b.auction, b.date_time, b.price))
        .key_by(|b: &(u64, Millis, u64)| b.0)
        .connect(
            auctions
                .map(|a: Auction| (a.id, a.date_time, a.expires, a.category))
                .key_by(|a: &(u64, Millis, Millis, u64)| a.0),
        )
        .process(MaxBidPrice)
        .key_by(|r: &(u64, u64)| r.0)
        .aggregate(IntAvg)
}

/// q9 row: the auction's columns, then the winning bid's.
#[derive(Clone, Debug, Serialize)]
pub struct Q9Row {
    id: u64,
    item_name: Str,
    description: Str,
    initial_bid: u64,
    reserve: u64,
    date_time: Ts,
    expires: Ts,
    seller: u64,
    category: u64,
    extra: Str,
    auction: u64,
    bidder: u64,
    price: u64,
    bid_date_time: Ts,
    bid_extra: Str,
}

/// q9, winning bids: each auction with its highest bid between its start and expiry
/// (`ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime ASC) = 1` over
/// the join of q4).
#[track_caller]
pub fn q9(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q9Row>> {
    winning_bids(events).map(|(a, b)| Q9Row {
        id: a.id,
        item_name: a.item_name,
        description: a.description,
        initial_bid: a.initial_bid,
        reserve: a.reserve,
        date_time: Ts(a.date_time),
        expires: Ts(a.expires),
        seller: a.seller,
        category: a.category,
        extra: a.extra,
        auction: b.auction,
        bidder: b.bidder,
        price: b.price,
        bid_date_time: Ts(b.date_time),
        bid_extra: b.extra,
    })
}

/// q6's state of one seller: the winning prices of its last 10 closed auctions, and the
/// auctions that closed but wait for the watermark to be taken in order.
#[derive(Default, Serialize, Deserialize)]
struct SellerPrices {
    last: std::collections::VecDeque<u64>,
    closed: Vec<(Millis, u64, u64)>,
}

/// q6, average selling price by seller: for each closed auction with a winning bid, the
/// average (a truncated `BIGINT`) of the seller's last 10 winning prices, this one included:
/// `AVG(final) OVER (PARTITION BY seller ORDER BY expires, id ROWS BETWEEN 9 PRECEDING AND
/// CURRENT ROW)` over the winning bids of q9. Flink cannot run it (FLINK-19059: its SQL
/// needs an `OVER` aggregate on an update stream). Closed auctions are taken in the order of
/// their expiry (then id) once the watermark passes it, so results do not depend on arrival
/// order.
#[track_caller]
pub fn q6(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = (u64, u64)>> {
    winning_bids(events)
        .map(|(a, b)| (a.seller, a.expires, a.id, b.price))
        .key_by(|w: &(u64, Millis, u64, u64)| w.0)
        .process_fn_with_timer(
            |_seller: &u64, w, st: &mut SellerPrices, ctx| {
                ctx.register_event_time_timer(w.1);
                st.closed.push((w.1, w.2, w.3));
            },
            |seller, ts, st, ctx| {
                st.closed.sort_unstable();
                let ready = st.closed.partition_point(|c| c.0 <= ts);
                for (_, _, price) in st.closed.drain(..ready) {
                    if st.last.len() == 10 {
                        st.last.pop_front();
                    }
                    st.last.push_back(price);
                    let sum: u64 = st.last.iter().sum();
                    ctx.emit((*seller, sum / st.last.len() as u64));
                }
            },
        )
}

// ----------------------------------------------------------------------------------------
// q5, q7, q8, q11, q12: windows

/// q5, hot items: per 10 s window sliding by 2 s, the auctions with the most bids
/// (`count(*)` per auction and window, joined with the window's maximum count, `num >=
/// maxn`). Counts per auction and window run keyed by auction; the maximum per window keyed
/// by the window's start, in a 2 s tumbling window that holds exactly that window's counts.
#[track_caller]
pub fn q5(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = (u64, u64)>> {
    bids(events)
        .map(|b| b.auction)
        .key_by(|a: &u64| *a)
        .window(SlidingEventTimeWindows::of(
            Duration::from_secs(10),
            Duration::from_secs(2),
        ))
        .count()
        .map(|w| (w.window.start, w.key, w.value))
        .key_by(|r: &(Millis, u64, u64)| r.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(2)))
        .process(
            |_start: &Millis, _info: &WindowInfo, counts: Vec<(Millis, u64, u64)>| {
                let max = counts.iter().map(|c| c.2).max().unwrap_or(0);
                counts
                    .into_iter()
                    .filter(move |c| c.2 >= max)
                    .map(|c| (c.1, c.2))
            },
        )
}

/// The highest bids of one auction in one window: the price and every bid at it.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct MaxBids {
    price: u64,
    bids: Vec<Bid>,
}

impl MaxBids {
    fn offer(&mut self, b: Bid) {
        match b.price.cmp(&self.price) {
            Ordering::Greater => {
                self.price = b.price;
                self.bids.clear();
                self.bids.push(b);
            }
            Ordering::Equal => self.bids.push(b),
            Ordering::Less => {}
        }
    }
    fn merge(&mut self, other: MaxBids) {
        match other.price.cmp(&self.price) {
            Ordering::Greater => *self = other,
            Ordering::Equal => self.bids.extend(other.bids),
            Ordering::Less => {}
        }
    }
}

/// The aggregate of [`MaxBids`].
#[derive(Clone)]
struct MaxBidsAgg;

impl Aggregate<Bid> for MaxBidsAgg {
    type Acc = MaxBids;
    type Out = MaxBids;
    fn create(&mut self, b: Bid) -> MaxBids {
        MaxBids {
            price: b.price,
            bids: vec![b],
        }
    }
    fn add(&mut self, acc: &mut MaxBids, b: Bid) {
        acc.offer(b)
    }
    fn merge(&mut self, a: &mut MaxBids, b: MaxBids) {
        a.merge(b)
    }
    fn result(&mut self, acc: MaxBids) -> MaxBids {
        acc
    }
}

/// q7's input to the per-window stage: a window's start and either an auction's highest
/// bids in it or a bid at the window's end (which `BETWEEN` includes).
type Q7Part = (Millis, Either<MaxBids, Bid>);

/// q7's per-window state: the highest bids so far and the bids at the window's end.
#[derive(Default, Serialize, Deserialize)]
struct Q7State {
    max: MaxBids,
    at_end: Vec<Bid>,
}

/// q7, highest bid: `SELECT B.auction, B.price, B.bidder, B.dateTime, B.extra FROM bid B JOIN
/// (SELECT MAX(price) AS maxprice, window_end AS dateTime FROM TUMBLE(bid, 10 s) GROUP BY
/// window) B1 ON B.price = B1.maxprice WHERE B.dateTime BETWEEN B1.dateTime - 10 s AND
/// B1.dateTime`. The highest bids per auction and window are found keyed by auction; the
/// window's highest keyed by its start, with the bids at exactly the window's end, which the
/// inclusive `BETWEEN` also joins.
#[track_caller]
pub fn q7(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q7Row>> {
    const SIZE: Millis = 10_000;
    let [bids, edges] = bids(events).fan_out::<2>();
    let maxes = bids
        .key_by(|b: &Bid| b.auction)
        .window(TumblingEventTimeWindows::of(Duration::from_millis(
            SIZE as u64,
        )))
        .aggregate(MaxBidsAgg)
        .map(|w| -> Q7Part { (w.window.start, Either::Left(w.value)) });
    let edges = edges.filter_map(|b: Bid| -> Option<Q7Part> {
        (b.date_time.rem_euclid(SIZE) == 0).then(|| (b.date_time - SIZE, Either::Right(b)))
    });
    maxes
        .union(edges)
        .key_by(|p: &Q7Part| p.0)
        .process_fn_with_timer(
            |start: &Millis, p: Q7Part, st: &mut Q7State, ctx| {
                ctx.register_event_time_timer(start + SIZE);
                match p.1 {
                    Either::Left(m) => st.max.merge(m),
                    Either::Right(b) => st.at_end.push(b),
                }
            },
            |_start, _ts, st, ctx| {
                let st = std::mem::take(st);
                let price = st.max.price;
                for b in st.max.bids.into_iter().chain(st.at_end) {
                    if b.price == price && price > 0 {
                        ctx.emit(Q7Row {
                            auction: b.auction,
                            price: b.price,
                            bidder: b.bidder,
                            date_time: Ts(b.date_time),
                            extra: b.extra,
                        });
                    }
                }
                ctx.clear_state();
            },
        )
}

/// q7 row, in the SQL's column order: `auction, price, bidder, dateTime, extra`.
#[derive(Clone, Debug, Serialize)]
pub struct Q7Row {
    auction: u64,
    price: u64,
    bidder: u64,
    date_time: Ts,
    extra: Str,
}

/// q8's records of one person id: the person's name, or one of their auctions.
type Q8Side = (u64, Option<Str>);

/// q8, monitor new users: `SELECT P.id, P.name, P.starttime FROM (persons per id, name and
/// 10 s tumbling window) P JOIN (auctions per seller and window) A ON P.id = A.seller AND
/// the same window`: people who opened an auction in the window they registered in.
#[track_caller]
pub fn q8(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = (u64, Str, Ts)>> {
    events
        .filter_map(|e| -> Option<Q8Side> {
            match e {
                Event::Person(p) => Some((p.id, Some(p.name))),
                Event::Auction(a) => Some((a.seller, None)),
                Event::Bid(_) => None,
            }
        })
        .key_by(|s: &Q8Side| s.0)
        .window(TumblingEventTimeWindows::of(Duration::from_secs(10)))
        .process(|id: &u64, info: &WindowInfo, items: Vec<Q8Side>| {
            let sold = items.iter().any(|s| s.1.is_none());
            let mut names: Vec<Str> = items.into_iter().filter_map(|s| s.1).collect();
            names.sort();
            names.dedup();
            let (id, start) = (*id, Ts(info.window.start));
            names
                .into_iter()
                .filter(move |_| sold)
                .map(move |n| (id, n, start))
        })
}

/// q11 row: `bidder, bid_count, starttime, endtime`.
#[derive(Clone, Debug, Serialize)]
pub struct SessionRow {
    bidder: u64,
    bid_count: u64,
    start: Ts,
    end: Ts,
}

/// q11, user sessions: bids per bidder in sessions that end after 10 s without a bid
/// (`SESSION(dateTime, INTERVAL '10' SECOND)`), with the session's start and end.
#[track_caller]
pub fn q11(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = SessionRow>> {
    bids(events)
        .map(|b| b.bidder)
        .key_by(|b: &u64| *b)
        .window(EventTimeSessionWindows::with_gap(Duration::from_secs(10)))
        .count()
        .map(|w| SessionRow {
            bidder: w.key,
            bid_count: w.value,
            start: Ts(w.window.start),
            end: Ts(w.window.end),
        })
}

/// q12, processing-time windows: bids per bidder in 10 s tumbling windows of processing
/// time (`TUMBLE(PROCTIME(), INTERVAL '10' SECOND)`), with the window's start and end.
#[track_caller]
pub fn q12(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = SessionRow>> {
    bids(events)
        .map(|b| b.bidder)
        .key_by(|b: &u64| *b)
        .window(TumblingProcessingTimeWindows::of(Duration::from_secs(10)))
        .count()
        .map(|w| SessionRow {
            bidder: w.key,
            bid_count: w.value,
            start: Ts(w.window.start),
            end: Ts(w.window.end),
        })
}

// ----------------------------------------------------------------------------------------
// q15, q16: distinct counts with filters

/// Price ranks of q15–q17: below 10,000, below 1,000,000, and the rest.
fn rank(price: u64) -> usize {
    if price < 10_000 {
        0
    } else if price < 1_000_000 {
        1
    } else {
        2
    }
}

/// Counters of q15 and q16: bids, distinct bidders and distinct auctions, each in all and per
/// price rank, and the latest minute of the day (q16).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// `[all, rank 1, rank 2, rank 3]` for bids, bidders and auctions.
    pub n: [[u64; 4]; 3],
    /// The latest bid's minute of the day, or -1.
    pub minute: i64,
}

impl Counts {
    fn none() -> Counts {
        Counts {
            n: [[0; 4]; 3],
            minute: -1,
        }
    }
    fn add(&mut self, o: &Counts) {
        for (a, b) in self.n.iter_mut().zip(&o.n) {
            for (x, y) in a.iter_mut().zip(b) {
                *x += y;
            }
        }
        self.minute = self.minute.max(o.minute);
    }
}

/// What one record adds to a group's [`Counts`]: a bid of a price rank in a minute of the
/// day, or the ranks in which a bidder (`which` 1) or an auction (`which` 2) is seen for the
/// first time (bit 0: at all; bit `1 + r`: in rank `r`).
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
enum Part {
    Bid { rank: u8, minute: i16 },
    Seen { which: u8, bits: u8 },
}

impl Part {
    fn add_to(self, c: &mut Counts) {
        match self {
            Part::Bid { rank, minute } => {
                c.n[0][0] += 1;
                c.n[0][1 + rank as usize] += 1;
                c.minute = c.minute.max(i64::from(minute));
            }
            Part::Seen { which, bits } => {
                for (i, n) in c.n[which as usize].iter_mut().enumerate() {
                    *n += u64::from(bits >> i & 1);
                }
            }
        }
    }
}

/// Sums [`Part`]s into [`Counts`] per key.
#[derive(Clone)]
struct SumParts;

impl<K> Aggregate<(K, Part)> for SumParts {
    type Acc = Counts;
    type Out = Counts;
    fn create(&mut self, item: (K, Part)) -> Counts {
        let mut c = Counts::none();
        item.1.add_to(&mut c);
        c
    }
    fn add(&mut self, acc: &mut Counts, item: (K, Part)) {
        item.1.add_to(acc)
    }
    fn merge(&mut self, a: &mut Counts, b: Counts) {
        a.add(&b)
    }
    fn result(&mut self, acc: Counts) -> Counts {
        acc
    }
}

/// A bid as the distinct step sees it: the group, the value with which it is in its top bit
/// ([`tagged`]), and the bid's price rank and minute of the day.
type Candidate<K> = (K, u64, u8, i16);

/// Which value a candidate counts (1 bidder, 2 auction) in the top bit of the value itself
/// (ids stay far below 2^63): the distinct step's keys, of which there are one or two per
/// bid, are 8 bytes smaller than with a separate field, and so is its hash table.
fn tagged(which: u8, value: u64) -> u64 {
    (u64::from(which == 2) << 63) | value
}

/// The `which` of a [`tagged`] value.
fn which_of(tagged: u64) -> u8 {
    1 + (tagged >> 63) as u8
}

/// Per group `K` of bids: the bid counts, and exact distinct counts of bidders and auctions,
/// in all and per price rank (SQL's `count(DISTINCT x) FILTER (WHERE ...)`).
///
/// Distinct values are counted in two steps, as Flink's split-distinct optimisation does, so
/// that one big group does not serialise the job. Each bid becomes two candidates, its bidder
/// and its auction, keyed by `(group, value)` (which value it is tagged in its top bit); there a process function keeps which
/// ranks the value has been seen in (4 bits) and sends on only the ranks it sees for the
/// first time, and the bidder candidate also carries the bid's own count. Keyed by the group,
/// a rolling sum (pre-aggregated before its exchange) adds these up. As a value's ranks only
/// grow, each is counted once, in bounded and unbounded jobs alike.
#[track_caller]
fn distinct_counts<K>(
    bids: Stream<impl Chain<Out = Bid>>,
    group: impl Fn(&Bid) -> K + Clone + Send + 'static,
) -> Stream<impl Chain<Out = (K, Counts)>>
where
    K: StateKey + Ord,
{
    bids.flat_map(move |b: Bid| {
        let g = group(&b);
        let r = rank(b.price) as u8;
        let minute = (b.date_time.rem_euclid(86_400_000) / 60_000) as i16;
        [
            (g.clone(), tagged(1, b.bidder), r, minute),
            (g, tagged(2, b.auction), r, minute),
        ]
    })
    .key_by(|c: &Candidate<K>| (c.0.clone(), c.1))
    .process_fn(
        |k: &(K, u64), c: Candidate<K>, seen: &mut u8, ctx: &mut Context<'_, (K, Part)>| {
            let (_, value, rank, minute) = c;
            let which = which_of(value);
            if which == 1 {
                ctx.emit((k.0.clone(), Part::Bid { rank, minute }));
            }
            let new = (1u8 | (2 << rank)) & !*seen;
            if new != 0 {
                *seen |= new;
                ctx.emit((k.0.clone(), Part::Seen { which, bits: new }));
            }
        },
    )
    .key_by(|r: &(K, Part)| r.0.clone())
    .aggregate(SumParts)
}

/// q15 row.
#[derive(Clone, Debug, Serialize)]
pub struct Q15Row {
    day: String,
    total_bids: u64,
    rank1_bids: u64,
    rank2_bids: u64,
    rank3_bids: u64,
    total_bidders: u64,
    rank1_bidders: u64,
    rank2_bidders: u64,
    rank3_bidders: u64,
    total_auctions: u64,
    rank1_auctions: u64,
    rank2_auctions: u64,
    rank3_auctions: u64,
}

/// q15, bidding statistics per day: bids, distinct bidders and distinct auctions, in all and
/// for prices below 10,000, below 1,000,000 and from 1,000,000 (`count(DISTINCT ...) FILTER
/// (WHERE ...)` grouped by `DATE_FORMAT(dateTime, 'yyyy-MM-dd')`).
#[track_caller]
pub fn q15(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q15Row>> {
    distinct_counts(bids(events), |b| day_number(b.date_time)).map(|(day, c)| {
        let [b, u, a] = c.n;
        Q15Row {
            day: date(day * 86_400_000),
            total_bids: b[0],
            rank1_bids: b[1],
            rank2_bids: b[2],
            rank3_bids: b[3],
            total_bidders: u[0],
            rank1_bidders: u[1],
            rank2_bidders: u[2],
            rank3_bidders: u[3],
            total_auctions: a[0],
            rank1_auctions: a[1],
            rank2_auctions: a[2],
            rank3_auctions: a[3],
        }
    })
}

/// q16 row.
#[derive(Clone, Debug, Serialize)]
pub struct Q16Row {
    channel: Str,
    day: String,
    minute: String,
    total_bids: u64,
    rank1_bids: u64,
    rank2_bids: u64,
    rank3_bids: u64,
    total_bidders: u64,
    rank1_bidders: u64,
    rank2_bidders: u64,
    rank3_bidders: u64,
    total_auctions: u64,
    rank1_auctions: u64,
    rank2_auctions: u64,
    rank3_auctions: u64,
}

/// q16, channel statistics per day: q15 grouped by `(channel, day)`, with the latest minute
/// (`max(DATE_FORMAT(dateTime, 'HH:mm'))`).
#[track_caller]
pub fn q16(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q16Row>> {
    distinct_counts(bids(events), |b| {
        (b.channel.clone(), day_number(b.date_time))
    })
    .map(|((channel, day), c)| {
        let [b, u, a] = c.n;
        Q16Row {
            channel,
            day: date(day * 86_400_000),
            minute: hour_minute(c.minute * 60_000),
            total_bids: b[0],
            rank1_bids: b[1],
            rank2_bids: b[2],
            rank3_bids: b[3],
            total_bidders: u[0],
            rank1_bidders: u[1],
            rank2_bidders: u[2],
            rank3_bidders: u[3],
            total_auctions: a[0],
            rank1_auctions: a[1],
            rank2_auctions: a[2],
            rank3_auctions: a[3],
        }
    })
}

// ----------------------------------------------------------------------------------------
// q17–q19: per-key aggregates, deduplication, top-N

/// q17's accumulator: bids in all and per rank, min, max and sum of prices.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct PriceStats {
    n: [u64; 4],
    min: u64,
    max: u64,
    sum: u64,
}

/// Aggregates [`PriceStats`].
#[derive(Clone)]
struct PriceStatsAgg;

impl Aggregate<((u64, i64), u64)> for PriceStatsAgg {
    type Acc = PriceStats;
    type Out = PriceStats;
    fn create(&mut self, item: ((u64, i64), u64)) -> PriceStats {
        let mut s = PriceStats {
            n: [1, 0, 0, 0],
            min: item.1,
            max: item.1,
            sum: item.1,
        };
        s.n[1 + rank(item.1)] = 1;
        s
    }
    fn add(&mut self, acc: &mut PriceStats, item: ((u64, i64), u64)) {
        let p = item.1;
        acc.n[0] += 1;
        acc.n[1 + rank(p)] += 1;
        acc.min = acc.min.min(p);
        acc.max = acc.max.max(p);
        acc.sum += p;
    }
    fn merge(&mut self, a: &mut PriceStats, b: PriceStats) {
        for (x, y) in a.n.iter_mut().zip(b.n) {
            *x += y;
        }
        a.min = a.min.min(b.min);
        a.max = a.max.max(b.max);
        a.sum += b.sum;
    }
    fn result(&mut self, acc: PriceStats) -> PriceStats {
        acc
    }
}

/// q17 row.
#[derive(Clone, Debug, Serialize)]
pub struct Q17Row {
    auction: u64,
    day: String,
    total_bids: u64,
    rank1_bids: u64,
    rank2_bids: u64,
    rank3_bids: u64,
    min_price: u64,
    max_price: u64,
    avg_price: u64,
    sum_price: u64,
}

/// q17, auction statistics per day: per `(auction, day)`, bids in all and per price rank,
/// min, max, average (a `BIGINT`, truncated) and sum of prices.
#[track_caller]
pub fn q17(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q17Row>> {
    bids(events)
        .map(|b| ((b.auction, day_number(b.date_time)), b.price))
        .key_by(|r: &((u64, i64), u64)| r.0)
        .aggregate(PriceStatsAgg)
        .map(|((auction, day), s)| Q17Row {
            auction,
            day: date(day * 86_400_000),
            total_bids: s.n[0],
            rank1_bids: s.n[1],
            rank2_bids: s.n[2],
            rank3_bids: s.n[3],
            min_price: s.min,
            max_price: s.max,
            avg_price: s.sum / s.n[0].max(1),
            sum_price: s.sum,
        })
}

/// The order of q18's deduplication: the later bid, then the other columns descending.
fn latest_order(a: &Bid, b: &Bid) -> Ordering {
    a.date_time
        .cmp(&b.date_time)
        .then(a.price.cmp(&b.price))
        .then_with(|| a.channel.cmp(&b.channel))
        .then_with(|| a.url.cmp(&b.url))
        .then_with(|| a.extra.cmp(&b.extra))
}

/// q18, last bid per bidder and auction: `ROW_NUMBER() OVER (PARTITION BY bidder, auction
/// ORDER BY dateTime DESC) = 1` (ties broken by price, channel, url and extra, descending).
#[track_caller]
pub fn q18(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = BidRow>> {
    bids(events)
        .key_by(|b: &Bid| (b.bidder, b.auction))
        .reduce(|a, b| {
            if latest_order(&a, &b) == Ordering::Less {
                b
            } else {
                a
            }
        })
        .map(BidRow::from)
}

/// The `n` highest records by a total order, as an [`Aggregate`]: the accumulator is the
/// sorted top `n`, and merging two keeps the top `n` of both. `order(a, b)` is `Less` when `a`
/// ranks higher.
#[derive(Clone)]
pub struct TopN<F> {
    n: usize,
    order: F,
}

impl<F> TopN<F> {
    /// The top `n` by `order`.
    pub fn new(n: usize, order: F) -> TopN<F> {
        TopN { n, order }
    }
}

impl<T, F> Aggregate<T> for TopN<F>
where
    T: Clone + Send + 'static,
    F: Fn(&T, &T) -> Ordering + Clone + Send + 'static,
{
    type Acc = Vec<T>;
    type Out = Vec<T>;
    fn create(&mut self, item: T) -> Vec<T> {
        vec![item]
    }
    fn add(&mut self, acc: &mut Vec<T>, item: T) {
        if acc.len() == self.n {
            match acc.last() {
                Some(last) if (self.order)(&item, last) == Ordering::Less => {
                    acc.pop();
                }
                _ => return,
            }
        }
        let at = acc.partition_point(|x| (self.order)(x, &item) != Ordering::Greater);
        acc.insert(at, item);
    }
    fn merge(&mut self, a: &mut Vec<T>, b: Vec<T>) {
        for x in b {
            self.add(a, x);
        }
    }
    fn result(&mut self, acc: Vec<T>) -> Vec<T> {
        acc
    }
}

/// q19 row: a bid and its rank.
#[derive(Clone, Debug, Serialize)]
pub struct Q19Row {
    auction: u64,
    bidder: u64,
    price: u64,
    channel: Str,
    url: Str,
    date_time: Ts,
    extra: Str,
    rank_number: u64,
}

/// q19, top 10 bids per auction: `ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price
/// DESC) <= 10` (ties broken by time, then the other columns). In an unbounded job, each
/// change of an auction's top 10 emits all of its rows.
#[track_caller]
pub fn q19(events: Stream<impl Chain<Out = Event>>) -> Stream<impl Chain<Out = Q19Row>> {
    bids(events)
        .key_by(|b: &Bid| b.auction)
        .aggregate(TopN::new(10, winner_order))
        .flat_map(|(_, top)| {
            top.into_iter().enumerate().map(|(i, b)| Q19Row {
                auction: b.auction,
                bidder: b.bidder,
                price: b.price,
                channel: b.channel,
                url: b.url,
                date_time: Ts(b.date_time),
                extra: b.extra,
                rank_number: i as u64 + 1,
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_are_extracted_as_the_regex_does() {
        let id = |u: &'static str| channel_id(u).map(|r| &u[r]);
        assert_eq!(id("a?x=1&channel_id=42"), Some("42"));
        assert_eq!(id("channel_id=7&b=1"), Some("7"));
        assert_eq!(id("a?xchannel_id=7"), None);
        assert_eq!(id("a?xchannel_id=7&channel_id=9"), Some("9"));
        assert_eq!(id("https://x/item.htm?query=1"), None);
    }

    #[test]
    fn dirs_are_split_index_3_to_5() {
        let d = |u: &'static str| dirs(&Cow::Borrowed(u)).map(|x| x.map(|s| s.into_owned()));
        let some = |s: &str| Some(s.to_string());
        assert_eq!(
            d("https://w.com/a/b/c/x.htm"),
            [some("a"), some("b"), some("c")]
        );
        assert_eq!(d("https://w.com/a/b"), [some("a"), some("b"), None]);
        assert_eq!(d("https://w.com/a//"), [some("a"), some(""), some("")]);
        assert_eq!(d("x"), [None, None, None]);
    }

    #[test]
    fn euros_print_with_three_decimals() {
        assert_eq!(csv_line(&Euros::of(100)), "90.800");
        assert_eq!(csv_line(&Euros::of(12_345)), "11209.260");
    }

    #[test]
    fn top_n_keeps_the_highest_in_order() {
        let mut t = TopN::new(3, |a: &u32, b: &u32| b.cmp(a));
        let mut acc = t.create(5);
        for x in [1, 9, 7, 3, 9] {
            t.add(&mut acc, x);
        }
        assert_eq!(acc, vec![9, 9, 7]);
        let mut other = t.create(8);
        t.add(&mut other, 10);
        t.merge(&mut acc, other);
        assert_eq!(acc, vec![10, 9, 9]);
    }
}
