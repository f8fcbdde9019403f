package api

// Invite is GET /api/invite (and `tanglemail invite --json`): this node's invite (protocol.md §11).
type Invite struct {
	Invite  string   `json:"invite"`  // the link, tanglemail:invite?…
	Address string   `json:"address"` // whose invite: the node's address
	PeerID  string   `json:"peer_id"`
	Addrs   []string `json:"addrs"`   // the network addresses it carries, best first
	Reveals string   `json:"reveals"` // what sharing it gives away: show it before the invite is shared
}

// Join is the body of POST /api/join.
type Join struct {
	Invite  string `json:"invite"`
	Petname string `json:"petname,omitempty"` // for the inviter; empty: the name the invite suggests
}

// Joined is the answer of POST /api/join.
type Joined struct {
	Network   string        `json:"network"`
	Connected []string      `json:"connected"` // peer addresses (with /p2p/…) that connected
	Failed    []JoinFailure `json:"failed"`    // those that did not
	Contact   Contact       `json:"contact"`   // the inviter as a contact
	// ContactAdded is false when the inviter's address was already a contact (Contact is that one).
	ContactAdded bool `json:"contact_added"`
}

// JoinFailure is a peer address of an invite that could not be dialled, and why.
type JoinFailure struct {
	Addr  string `json:"addr"`
	Error string `json:"error"`
}
