-- HOP(dateTime, 2 s slide, 10 s size) as the five 2 s-aligned windows containing each bid.
WITH hop AS (
    SELECT auction, (epoch_ms(dateTime) // 2000 - k) * 2000 AS starttime
    FROM bid, range(0, 5) r(k)
),
AuctionBids AS (
    SELECT auction, count(*) AS num, starttime FROM hop GROUP BY auction, starttime
),
MaxBids AS (
    SELECT max(num) AS maxn, starttime FROM AuctionBids GROUP BY starttime
)
SELECT AuctionBids.auction, AuctionBids.num
FROM AuctionBids JOIN MaxBids
  ON AuctionBids.starttime = MaxBids.starttime AND AuctionBids.num >= MaxBids.maxn
