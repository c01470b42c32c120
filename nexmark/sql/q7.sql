WITH B1 AS (
    SELECT max(price) AS maxprice, (epoch_ms(dateTime) // 10000) * 10000 + 10000 AS window_end
    FROM bid GROUP BY 2
)
SELECT B.auction, B.price, B.bidder, ts(B.dateTime), B.extra
FROM bid B JOIN B1 ON B.price = B1.maxprice
WHERE epoch_ms(B.dateTime) BETWEEN B1.window_end - 10000 AND B1.window_end
