WITH P AS (
    SELECT id, name, (epoch_ms(dateTime) // 10000) * 10000 AS starttime FROM person GROUP BY ALL
),
A AS (
    SELECT seller, (epoch_ms(dateTime) // 10000) * 10000 AS starttime FROM auction GROUP BY ALL
)
SELECT P.id, P.name, ts(epoch_ms(P.starttime))
FROM P JOIN A ON P.id = A.seller AND P.starttime = A.starttime
