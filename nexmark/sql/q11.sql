-- SESSION(dateTime, 10 s): a bid within 10 s of the previous one (touching windows merge,
-- as in Flink) continues the session, which ends 10 s after its last bid.
WITH b AS (SELECT bidder, epoch_ms(dateTime) AS t FROM bid),
s AS (
    SELECT bidder, t,
           CASE WHEN t - lag(t) OVER (PARTITION BY bidder ORDER BY t) <= 10000 THEN 0 ELSE 1 END AS new
    FROM b
),
g AS (
    SELECT bidder, t,
           sum(new) OVER (PARTITION BY bidder ORDER BY t ROWS UNBOUNDED PRECEDING) AS session
    FROM s
)
SELECT bidder, count(*), ts(epoch_ms(min(t))), ts(epoch_ms(max(t) + 10000))
FROM g GROUP BY bidder, session
