-- Not in Flink's set (FLINK-19059). The winning bid of each auction as in q9; per seller, the
-- average of the last 10 winning prices in the order the auctions close (expiry, then id),
-- as a BIGINT (truncated, like Flink's AVG of a BIGINT).
WITH Q AS (
    SELECT A.id, A.seller, A.expires, MAX(B.price) AS final
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
    GROUP BY A.id, A.seller, A.expires
)
SELECT seller, sum(final) OVER w // count(*) OVER w
FROM Q
WINDOW w AS (PARTITION BY seller ORDER BY expires, id ROWS BETWEEN 9 PRECEDING AND CURRENT ROW)
