CREATE TABLE provider (
	name        TEXT PRIMARY KEY,          -- the provider's key (its peer id and subscription)
	cursor      INTEGER NOT NULL DEFAULT 0, -- exclusive fetch cursor: everything ≤ it is filed
	noticed     INTEGER NOT NULL DEFAULT 0, -- quota notices sent: 0 none, 80 the 80 % one, 100 both
	updated_at  INTEGER NOT NULL DEFAULT 0  -- Unix ms
);

CREATE TABLE subscription (
	name        TEXT PRIMARY KEY,  -- the provider's key
	sub_id      BLOB NOT NULL,     -- the subscription id the provider gave
	key_seed    BLOB NOT NULL,     -- Ed25519 seed of the subscription's own key (never the identity key)
	created_at  INTEGER NOT NULL   -- Unix ms
);
