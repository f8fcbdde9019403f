-- openpgp-peers.db (internal/e2e, docs/protocol.md §15.3): the OpenPGP keys of Internet correspondents
-- learnt from the Autocrypt headers of their mail (Autocrypt Level 1 §2.3, simplified: newest date wins).
CREATE TABLE peer (
  addr           TEXT PRIMARY KEY,   -- lower-cased e-mail address
  fingerprint    TEXT NOT NULL,      -- upper-case hex
  keydata        BLOB NOT NULL,      -- the binary certificate, as the header carried it
  prefer_encrypt INTEGER NOT NULL,   -- 1: prefer-encrypt=mutual
  autocrypt_at   INTEGER NOT NULL,   -- the effective date of the mail that carried it, Unix seconds
  updated_at     INTEGER NOT NULL    -- when this row was written, Unix seconds
);
