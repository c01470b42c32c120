-- Ties in price and time are broken by the remaining columns, as flow's job does.
SELECT id, itemName, description, initialBid, reserve, ts(dateTime), ts(expires), seller,
       category, extra, auction, bidder, price, ts(bid_dateTime), bid_extra
FROM (
    SELECT A.*, B.auction, B.bidder, B.price, B.dateTime AS bid_dateTime, B.extra AS bid_extra,
           ROW_NUMBER() OVER (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime ASC,
                              B.bidder ASC, B.channel ASC, B.url ASC, B.extra ASC) AS rownum
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
)
WHERE rownum <= 1
