-- Flink writes the rows to a filesystem sink PARTITIONED BY (dt, hm); the flow test compares
-- the rows with their partition columns (and, separately, the partition directories).
SELECT auction, bidder, price, ts(dateTime), extra,
       strftime(dateTime, '%Y-%m-%d') AS dt, strftime(dateTime, '%H:%M') AS hm
FROM bid
