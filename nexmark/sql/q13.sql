WITH side_input AS (SELECT i AS key, CAST(i AS VARCHAR) AS value FROM range(0, 10000) t(i))
SELECT B.auction, B.bidder, B.price, ts(B.dateTime), S.value
FROM bid B JOIN side_input S ON B.auction % 10000 = S.key
