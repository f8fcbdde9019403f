package p2p

// PeerCount is the number of peers connected now: cheaper than Status for callers that only need to
// know whether publishing can reach anyone (the outbox).
func (n *Node) PeerCount() int { return len(n.host.Network().Peers()) }
