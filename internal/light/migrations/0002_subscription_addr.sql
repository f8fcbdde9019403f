-- Where a subscription lives (its provider's multiaddr with /p2p/), so that one subscription record
-- serves both "tanglemail storage subscribe" (which creates and pays it) and the light client (which
-- uses it), and a light client can start from the subscriptions it holds.
ALTER TABLE subscription ADD COLUMN addr TEXT NOT NULL DEFAULT '';
