//! The three event types of Nexmark, with Flink's field names.
//!
//! Strings are [`Str`]: most are slices of pools the generator builds once (names, channels,
//! urls, padding), so making an event allocates only a person's e-mail address and credit
//! card number. Restored from a checkpoint, a `Str` owns its text.
use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// Event time in milliseconds since the Unix epoch (UTC).
pub type Millis = i64;

/// A string of an event: a slice of a shared pool, or owned text.
pub type Str = Cow<'static, str>;

/// A person registering on the auction site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Person {
    /// Person id, from 1000 up.
    pub id: u64,
    /// `first last`.
    pub name: Str,
    /// `aaaaaaa@bbbbb.com`.
    pub email_address: String,
    /// Four groups of four digits.
    pub credit_card: String,
    /// One of ten US cities.
    pub city: Str,
    /// One of six US states (upper case).
    pub state: Str,
    /// Event time.
    pub date_time: Millis,
    /// Padding to Nexmark's average person size.
    pub extra: Str,
}

/// An auction opened by a seller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Auction {
    /// Auction id, from 1000 up.
    pub id: u64,
    /// Item name.
    pub item_name: Str,
    /// Item description.
    pub description: Str,
    /// Starting price.
    pub initial_bid: u64,
    /// Reserve price (above the starting price).
    pub reserve: u64,
    /// Event time.
    pub date_time: Millis,
    /// When the auction closes.
    pub expires: Millis,
    /// The seller's person id.
    pub seller: u64,
    /// Category id, 10 to 14.
    pub category: u64,
    /// Padding to Nexmark's average auction size.
    pub extra: Str,
}

/// A bid on an auction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    /// The auction's id.
    pub auction: u64,
    /// The bidder's person id (offset as Flink's generator does; see the crate docs).
    pub bidder: u64,
    /// Price in cents.
    pub price: u64,
    /// Channel the bid came through.
    pub channel: Str,
    /// Referring url.
    pub url: Str,
    /// Event time.
    pub date_time: Millis,
    /// Padding to Nexmark's average bid size.
    pub extra: Str,
}

/// One Nexmark event. A person is boxed: it is 2% of events and the largest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// `event_type` 0.
    Person(Box<Person>),
    /// `event_type` 1.
    Auction(Auction),
    /// `event_type` 2.
    Bid(Bid),
}

impl Event {
    /// The event time.
    pub fn date_time(&self) -> Millis {
        match self {
            Event::Person(p) => p.date_time,
            Event::Auction(a) => a.date_time,
            Event::Bid(b) => b.date_time,
        }
    }

    /// Flink's `event_type`: 0 person, 1 auction, 2 bid.
    pub fn event_type(&self) -> u8 {
        match self {
            Event::Person(_) => 0,
            Event::Auction(_) => 1,
            Event::Bid(_) => 2,
        }
    }

    /// The bid, if this is one.
    pub fn into_bid(self) -> Option<Bid> {
        match self {
            Event::Bid(b) => Some(b),
            _ => None,
        }
    }

    /// The auction, if this is one.
    pub fn into_auction(self) -> Option<Auction> {
        match self {
            Event::Auction(a) => Some(a),
            _ => None,
        }
    }

    /// The person, if this is one.
    pub fn into_person(self) -> Option<Person> {
        match self {
            Event::Person(p) => Some(*p),
            _ => None,
        }
    }
}
