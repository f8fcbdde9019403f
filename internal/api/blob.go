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
	// Sending is the node's own large mail, from sealing to every recipient's fetch (GET /api/blobs/sent).
	Sending []BlobSend `json:"sending,omitempty"`
}

// BlobSend is one large mail this node sends as a blob (protocol.md §13.8): GET /api/blobs/sent lists
// them, newest first, and GET /api/status has them in blobs.sending; the web client's compose tray and
// `tanglemail status` ("Large mail") show them.
type BlobSend struct {
	OutboxID int64  `json:"outbox_id"`
	Subject  string `json:"subject,omitempty"`
	Size     uint64 `json:"size"` // the message's bytes
	// Stage: sealing (encrypting into the blob), uploading (to the storage providers), sending (the
	// recipients' envelopes are being sealed and published), offered (waiting for the recipients to
	// fetch), done (every recipient fetched it or failed).
	Stage         string          `json:"stage"`
	Sealed        uint64          `json:"sealed"`            // bytes of the message sealed so far
	Uploaded      uint64          `json:"uploaded"`          // bytes of the blob uploaded to the provider being uploaded to now
	Providers     int             `json:"providers"`         // storage providers the blob goes to
	ProvidersDone int             `json:"providers_done"`    // of them, those done (acknowledged or failed)
	Served        uint64          `json:"served_bytes"`      // sealed bytes this node sent to fetchers since it started
	Expires       string          `json:"expires,omitempty"` // RFC 3339: the holders delete the blob then
	Error         string          `json:"error,omitempty"`   // why sealing or the upload failed last (retried)
	Recipients    []BlobRecipient `json:"recipients"`
}

// BlobRecipient is one recipient of a BlobSend.
type BlobRecipient struct {
	Address string `json:"address"`
	// State: queued (its envelope is not published yet), offered (published; its node has not
	// fetched the blob and filed the mail), fetched (its receipt came: the complete mail is filed),
	// failed (see error: not fetched before the blob expired, or never sent).
	State string `json:"state"`
	Error string `json:"error,omitempty"`
}
