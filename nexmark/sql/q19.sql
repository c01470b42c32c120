-- Ties in price are broken by time, then the remaining columns, as flow's job does.
SELECT auction, bidder, price, channel, url, ts(dateTime), extra, rank_number
FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY auction
                                 ORDER BY price DESC, dateTime ASC, bidder ASC, channel ASC,
                                          url ASC, extra ASC) AS rank_number
    FROM bid
)
WHERE rank_number <= 10
