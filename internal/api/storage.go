package api

// StorageStatus is GET /api/storage (and `tanglemail storage status --json`): the node's storage
// provider (protocol.md §12). Enabled is false when the node runs no provider (--storage); the other
// fields are then zero.
type StorageStatus struct {
	Enabled        bool     `json:"enabled"`
	Public         bool     `json:"public"`   // serves light clients' publish and tips (--public)
	Protocol       string   `json:"protocol"` // the stream protocol id
	PeerID         string   `json:"peer_id"`
	Addrs          []string `json:"addrs"` // where clients reach it (with /p2p/…)
	Pending        int      `json:"pending"`
	Active         int      `json:"active"`
	Expired        int      `json:"expired"`
	StoredBytes    uint64   `json:"stored_bytes"`
	CommittedBytes uint64   `json:"committed_bytes"` // the active subscriptions' quotas
	CapBytes       uint64   `json:"cap_bytes"`       // --storage-cap
}

// StorageGrantRequest is the body of POST /api/storage/grants.
type StorageGrantRequest struct {
	QuotaMiB uint32 `json:"quota_mib"`
	Days     uint32 `json:"days"`
}

// StorageGrant is the answer of POST /api/storage/grants: a one-time token that activates one
// subscription (the provider keeps only its hash: it is shown once).
type StorageGrant struct {
	Token    string `json:"token"`
	QuotaMiB uint32 `json:"quota_mib"`
	Days     uint32 `json:"days"`
	Provider string `json:"provider"` // a multiaddr with /p2p/… for `tanglemail light --provider`
}
