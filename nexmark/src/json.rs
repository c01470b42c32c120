//! Events as JSON lines with Flink's field names, for other engines to run the same data.
//!
//! One object per line: `event_type` (0 person, 1 auction, 2 bid), `person`, `auction` and
//! `bid` (the one that is set, the others `null`) and `dateTime`. Times are
//! `yyyy-MM-dd HH:mm:ss.SSS` in UTC, as Flink's JSON format writes a `TIMESTAMP(3)`.
use crate::model::Event;
use crate::time::timestamp;
use serde_json::{json, Value};
use std::io::Write;

/// The JSON object of one event.
pub fn event_json(e: &Event) -> Value {
    let (person, auction, bid) = match e {
        Event::Person(p) => (
            json!({
                "id": p.id, "name": p.name, "emailAddress": p.email_address,
                "creditCard": p.credit_card, "city": p.city, "state": p.state,
                "dateTime": timestamp(p.date_time), "extra": p.extra,
            }),
            Value::Null,
            Value::Null,
        ),
        Event::Auction(a) => (
            Value::Null,
            json!({
                "id": a.id, "itemName": a.item_name, "description": a.description,
                "initialBid": a.initial_bid, "reserve": a.reserve,
                "dateTime": timestamp(a.date_time), "expires": timestamp(a.expires),
                "seller": a.seller, "category": a.category, "extra": a.extra,
            }),
            Value::Null,
        ),
        Event::Bid(b) => (
            Value::Null,
            Value::Null,
            json!({
                "auction": b.auction, "bidder": b.bidder, "price": b.price,
                "channel": b.channel, "url": b.url, "dateTime": timestamp(b.date_time),
                "extra": b.extra,
            }),
        ),
    };
    json!({
        "event_type": e.event_type(),
        "person": person,
        "auction": auction,
        "bid": bid,
        "dateTime": timestamp(e.date_time()),
    })
}

/// Writes events as JSON lines.
pub fn write_events(
    out: &mut impl Write,
    events: impl IntoIterator<Item = Event>,
) -> std::io::Result<()> {
    for e in events {
        serde_json::to_writer(&mut *out, &event_json(&e))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
