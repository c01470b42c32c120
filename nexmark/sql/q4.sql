-- Flink's AVG of a BIGINT is a BIGINT: the sum divided by the count, truncated.
SELECT Q.category, SUM(Q.final) // COUNT(*)
FROM (
    SELECT MAX(B.price) AS final, A.category
    FROM auction A, bid B
    WHERE A.id = B.auction AND B.dateTime BETWEEN A.dateTime AND A.expires
    GROUP BY A.id, A.category
) Q
GROUP BY Q.category
