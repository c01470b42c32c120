"""Runs the Nexmark queries in this directory with DuckDB on events written by
`nexmark --dump-events`, and writes each query's rows as CSV to OUT_DIR/qN.csv.

usage: run.py EVENTS.jsonl OUT_DIR [q0 q1 ...]
"""
import csv
import os
import sys

import duckdb

HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = {
    "event_type": "INTEGER",
    "person": "STRUCT(id BIGINT, name VARCHAR, emailAddress VARCHAR, creditCard VARCHAR, "
    "city VARCHAR, state VARCHAR, dateTime TIMESTAMP, extra VARCHAR)",
    "auction": "STRUCT(id BIGINT, itemName VARCHAR, description VARCHAR, initialBid BIGINT, "
    "reserve BIGINT, dateTime TIMESTAMP, expires TIMESTAMP, seller BIGINT, category BIGINT, "
    "extra VARCHAR)",
    "bid": "STRUCT(auction BIGINT, bidder BIGINT, price BIGINT, channel VARCHAR, url VARCHAR, "
    "dateTime TIMESTAMP, extra VARCHAR)",
    "dateTime": "TIMESTAMP",
}


def main():
    events, out_dir, *queries = sys.argv[1:]
    if not queries:
        queries = sorted(
            (f[:-4] for f in os.listdir(HERE) if f.endswith(".sql")),
            key=lambda q: int(q[1:]),
        )
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in SCHEMA.items()) + "}"
    con.execute(
        f"CREATE TABLE events AS SELECT * FROM read_json('{events}', "
        f"format = 'newline_delimited', columns = {columns}, "
        f"timestampformat = '%Y-%m-%d %H:%M:%S.%g')"
    )
    con.execute("CREATE VIEW person AS SELECT unnest(person) FROM events WHERE event_type = 0")
    con.execute("CREATE VIEW auction AS SELECT unnest(auction) FROM events WHERE event_type = 1")
    con.execute("CREATE VIEW bid AS SELECT unnest(bid) FROM events WHERE event_type = 2")
    con.execute("CREATE MACRO ts(t) AS strftime(t, '%Y-%m-%d %H:%M:%S.%g')")
    os.makedirs(out_dir, exist_ok=True)
    for q in queries:
        with open(os.path.join(HERE, f"{q}.sql")) as f:
            sql = f.read()
        rows = con.execute(sql).fetchall()
        with open(os.path.join(out_dir, f"{q}.csv"), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            for r in rows:
                w.writerow(["" if v is None else v for v in r])
        print(f"{q}: {len(rows)} rows")


if __name__ == "__main__":
    main()
