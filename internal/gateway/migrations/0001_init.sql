-- Claims: which tanglemail address each claimed local@domain delivers to (gateway/claims.go).
CREATE TABLE claim (
	addr     TEXT PRIMARY KEY,  -- local@domain, lower case
	claimant BLOB NOT NULL,     -- the claimant's address, binary form (identity.Address.Binary)
	created  INTEGER NOT NULL   -- Unix ms
) STRICT;
CREATE INDEX claim_claimant ON claim (claimant);

-- Nonces of accepted claim requests, kept until their request could no longer pass the time check.
CREATE TABLE claim_nonce (
	nonce   BLOB PRIMARY KEY,
	expires INTEGER NOT NULL    -- Unix ms
) STRICT;
