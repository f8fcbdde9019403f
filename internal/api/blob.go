package api

// PendingBlob is one mail carried by a blob (protocol.md §13.7) that this node has not filed yet: being
// fetched, or waiting for the recipient's consent (a stranger's mail above the automatic limit). GET
// /api/blobs lists them; POST /api/blobs/{key}/accept consents to one.
type PendingBlob struct {
	Key      string `json:"key"`    // the envelope's replay key (hex): names it in the accept request
	Sender   string `json:"sender"` // the verified sender, tm1…@tangle
	Contact  bool   `json:"contact"`
	Subject  string `json:"subject,omitempty"` // from the envelope's header copy, when it has one
	Size     uint64 `json:"size"`              // the message's size in bytes (what accepting downloads)
	Fetched  uint64 `json:"fetched"`           // bytes of it on disk so far
	Waiting  bool   `json:"waiting_for_consent"`
	Accepted bool   `json:"accepted"`
	Expires  string `json:"expires"` // RFC 3339: the latest it can be fetched
	Error    string `json:"last_error,omitempty"`
}

// BlobStatus is the blob section of GET /api/status: the node's sealed blobs and transfers.
type BlobStatus struct {
	Blobs       int    `json:"blobs"`      // blobs in the store (own large mail served, fetches)
	UsedBytes   uint64 `json:"used_bytes"` // their sealed size
	Pending     int    `json:"pending"`    // blob mails not filed yet (GET /api/blobs)
	Fetches     uint64 `json:"fetches"`    // blobs fetched complete since start
	ChunksOut   uint64 `json:"chunks_served"`
	ChunksIn    uint64 `json:"chunks_fetched"`
	BadChunks   uint64 `json:"bad_chunks"` // chunks refused (failed verification)
	FetchErrors uint64 `json:"fetch_failures"`
}
