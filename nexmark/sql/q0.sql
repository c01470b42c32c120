SELECT auction, bidder, price, ts(dateTime), extra FROM bid
