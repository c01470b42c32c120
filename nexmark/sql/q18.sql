-- Ties in time are broken by the remaining columns, as flow's job does.
SELECT auction, bidder, price, channel, url, ts(dateTime), extra
FROM (
    SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder, auction
                                 ORDER BY dateTime DESC, price DESC, channel DESC, url DESC,
                                          extra DESC) AS rank_number
    FROM bid
)
WHERE rank_number <= 1
