package api

// LightProvider is one storage subscription as GET /api/status shows it (Status.Storage): the
// provider's peer id, whether a session is up, the fetch cursor, the subscription's usage (the quota
// notices of docs/protocol.md §12 come at 80 % and at 100 %) and counters since start.
type LightProvider struct {
	Provider     string `json:"provider"`
	Connected    bool   `json:"connected"`
	Cursor       uint64 `json:"cursor"`
	State        string `json:"state,omitempty"` // "pending", "active", "expired" ("" before the first status)
	UsedBytes    uint64 `json:"used_bytes"`
	QuotaBytes   uint64 `json:"quota_bytes"`
	QuotaPercent int    `json:"quota_percent"`
	Expires      string `json:"expires,omitempty"`   // RFC 3339
	LastSync     string `json:"last_sync,omitempty"` // RFC 3339: the last fetch that reached the provider's end
	LastError    string `json:"last_error,omitempty"`
	Fetched      uint64 `json:"fetched"`
	Pushed       uint64 `json:"pushed"`
	Filed        uint64 `json:"filed"`
	Refused      uint64 `json:"refused"` // blocks the provider refused to publish
}
