-- 0004: each outbox recipient's tangle address, parsed once when the item is enqueued (issue 13), so
-- that the outbox does not parse the bech32m string on every pass: identity.Address.Binary (33 bytes),
-- or an empty blob when the recipient is not a tangle address (the outbox bounces it). NULL: a row
-- from before this migration, not yet parsed; Open parses those (adoptRcptAddrs).
ALTER TABLE outbox_rcpt ADD COLUMN addr BLOB;
