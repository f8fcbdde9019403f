package api

// Wallet is the payment wallet's balance (issue 10), as GET /api/status shows it (Status.Wallet) and
// POST /api/wallet/refresh answers. The node watches the wallet's address only (no key is opened);
// Balance and BalanceWei are the last good read, CheckedAt says when it was made, and Error says why
// the last read failed (the balance shown is then older) or why the balance is unknown (no payment
// chain configured, no wallet yet).
type Wallet struct {
	Address    string `json:"address,omitempty"`     // 0x…; "" while the data directory has no wallet
	ChainID    uint64 `json:"chain_id,omitempty"`    // the payment chain; 0: none configured (--payment-rpc)
	BalanceWei string `json:"balance_wei,omitempty"` // decimal, wei (10^-18 IOTA); "" before the first good read
	Balance    string `json:"balance,omitempty"`     // the same in IOTA for people, e.g. "12.5 IOTA"
	CheckedAt  string `json:"checked_at,omitempty"`  // RFC 3339: when the balance was read
	Error      string `json:"error,omitempty"`
}
