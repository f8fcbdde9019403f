-- payment.db (internal/payment, docs/protocol.md §14).

-- Subscriber: the signed transaction that pays each quote, written before it is sent (Pay is
-- idempotent per quote: a retry re-sends this transaction, never a new one).
CREATE TABLE sent_tx (
  quote_digest BLOB PRIMARY KEY,  -- SHA-256 of the quote's encoding
  tx_id        BLOB NOT NULL,
  raw          BLOB NOT NULL,     -- the signed transaction
  quote        BLOB NOT NULL,     -- the quote's encoding
  created_at   INTEGER NOT NULL   -- Unix ms
);

-- Provider: every transaction counted, once, ever.
CREATE TABLE counted_tx (
  tx_id        BLOB PRIMARY KEY,
  quote_digest BLOB NOT NULL UNIQUE,  -- one quote is paid once
  sub          BLOB NOT NULL,
  quote        BLOB NOT NULL,
  value_wei    TEXT NOT NULL,
  block        INTEGER NOT NULL,
  paid_until   INTEGER NOT NULL,      -- Unix s: max(counted_at, the sub's previous paid_until) + days
  counted_at   INTEGER NOT NULL,      -- Unix s
  activated_at INTEGER                -- Unix s; NULL until Activate returned
);
CREATE INDEX counted_tx_sub ON counted_tx (sub, paid_until);
