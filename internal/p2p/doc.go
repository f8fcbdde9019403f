// Package p2p is the tanglemail network layer (protocol.md §7): a libp2p host, GossipSub dissemination of
// blocks per shard with validation before relay, a request/response protocol for blocks by id and for
// catch-up, solidification of missing parents, anti-entropy, peer discovery, peer scoring, rate limits
// and bans. It owns no blocks: it validates them with package tangle and keeps them in a Store (package
// dag). libp2p is pre-1.0, so none of its types appear in this package's API: peer ids and multiaddrs
// are strings.
//
// # Network
//
// A Node listens on TCP and QUIC (Noise, yamux), by default on loopback only. It dials only what it is
// given: Config.Bootstrap (there is no built-in list, and never libp2p's public IPFS peers), peers that
// connect to it, peers found by mDNS on the LAN (Config.MDNS), and peers found through the Kademlia DHT
// (Config.DHT), which runs in the private /tanglemail protocol namespace and is seeded only with the
// bootstrap peers. Relay, hole punching, NAT port mapping and AutoNAT probing are off (reachability is
// fixed to private), and metrics are not registered in any global registry.
//
// Healing (redial.go): the peer table keeps every peer's last contact time and addresses (the address
// dialled, the listen addresses announced in identify) in Config.DataDir/p2p-peers.json. The node
// re-dials its bootstrap peers and its Limits.RedialPeers most recently seen peers whenever they are
// not connected (back-off 1 s doubling to Limits.RedialBackoffMax, 5 s, past libp2p's own back-off;
// reset when a link comes back or the local network changes), and pings every connected peer every
// Limits.PingInterval, closing a link from which nothing has arrived for Limits.PingTimeout. A block
// published while its shard's mesh is empty is announced to the connected peers.
//
// # Gossip
//
// One GossipSub topic per shard: /tanglemail/<NID hex>/shard/<s>/<index>. Messages are the raw blocks,
// unsigned and without author or sequence number (StrictNoSign: a block is anonymous), and the message
// id is the block id, so duplicate suppression and IDONTWANT work on block ids. The topic validator runs
// before a message is forwarded, in this order: the sender's token bucket (Limits.GossipRate/Burst; over
// budget: ignored, not forwarded, not penalised), tangle.Params.Validate (size, version, network, PoW
// over the raw bytes, decode, fields), the gossip freshness window (FreshEnough), the topic's shard,
// duplicates (a FIFO set of recent ids, then store.Has: ignored), then store.Put. Only a stored block is
// accepted, which makes GossipSub forward it. Invalid blocks are rejected, so GossipSub's P4 penalty hits
// the sender; the node also keeps its own decaying misbehaviour score per peer and bans (disconnects and
// gates for Limits.BanDuration) a peer that reaches Limits.BanThreshold or falls below the graylist
// threshold. Scoring parameters and thresholds are documented at scoreParams (gossip.go).
//
// Mesh parameters: D=3, Dlo=2, Dhi=4, Dlazy=3, gossip factor 0.1, IHAVE for one heartbeat (1 s),
// prune backoff 15 s, IDONTWANT for messages of 512 bytes or more, flood publishing and peer exchange
// off. A mail network is dominated by 1–32 KiB blocks, so bytes per block matter more than the last
// milliseconds. In BenchmarkGossipAmplification (50 nodes, 1 KiB blocks) each node received, per block,
// about 4.5 block sizes with the libp2p defaults (D=6), 3.0 with D=4 and 1.76–1.80 with these settings:
// one copy, about 0.55–0.6 duplicate copies IDONTWANT did not suppress, 0.15 of control messages, and
// message framing. Flood publishing would halve p99 latency (about 25 ms instead of 40–120 ms, against a
// 500 ms target) for about 0.1 more; the budget (2.0) is the tighter constraint. A thinner mesh leaves
// occasional gaps (a node, or a publisher, whose peers pruned it): IHAVE gossip at the next heartbeat,
// missing-parent requests (every block references recent tips) and anti-entropy repair them. With D=3,
// GossipSub's rule Dout < D/2 forces Dout=0: the mesh keeps no quota of outbound peers, and eclipse
// resistance rests on scoring, bans and the node's own dials.
//
// Every newly stored block, whatever the path (gossip, request, catch-up, anti-entropy, Publish), is
// handed once to the OnBlock handlers, in store order, from one goroutine.
//
// # Request/response protocol
//
// Protocol id /tanglemail/<NID hex>/blocks/1. One request and one response per stream; the requester
// closes its write side after the request. Every message is a frame:
//
//	frame = length u32 ‖ body          (length = len(body), 1 ≤ length; little-endian like protocol.md)
//	body  = type u8 ‖ fields
//
// Requests (responder's answer in brackets):
//
//	0x01 get-blocks  count u16 (1..1024), count × id[32]                         [blocks]
//	0x03 get-ids     shard u32, since i64 ms, after.time i64 ms, after.id[32],
//	                 limit u16 (1..8192)                                          [ids]
//	0x05 announce    shard u32, since i64 ms                                      [ok]
//	0x07 get-digest  shard u32, start i64 ms, slot u32 ms (≥ 1), count u16 (1..64) [digest]
//
// Responses:
//
//	0x02 blocks   count u16, count × (len u32, block[len ≤ 32768])
//	0x04 ids      more u8 (0/1), count u16, count × (time i64 ms, id[32])
//	0x06 ok       (empty)
//	0x08 digest   count u16, count × (n u32, xor[32])
//	0x7f error    code u8: 1 bad request, 2 busy (retry later), 3 responder's store failed
//
// Trailing bytes, counts over the bounds and unknown types make a message invalid. A node reads request
// frames of at most 32,771 bytes and response frames of at most 8 MiB plus one block; it sends at most
// Limits.MaxResponseBytes (4 MiB) of blocks per response and lists at most Limits.MaxIDsPerPage ids.
//
//   - get-blocks returns the requested blocks it has and that have not expired, in request order, up to
//     the byte budget; missing ids are left out. The requester validates every block (without the gossip
//     freshness rule) and checks that it asked for it.
//   - get-ids returns ids of stored, unexpired blocks of the shard issued at or after since, in
//     (issuing time, id) order, strictly after the cursor; more = 1 when the page is full. since is
//     raised to now − max TTL.
//   - announce says: "I just stored blocks of this shard issued since this time, by catch-up"; the
//     receiver schedules a catch-up with the announcer from since − clock skew.
//   - get-digest returns, for count slots of slot ms from start, the number of stored unexpired blocks of
//     the shard issued in the slot and the XOR of their ids.
//
// Bounds on the responder: Limits.MaxInbound concurrent streams in all, Limits.MaxInboundPeer per peer, a
// token bucket of Limits.RequestRate requests per second per peer (over it: error busy), a deadline of
// Limits.RequestTimeout per stream. Malformed requests and responses, invalid or unsolicited blocks count
// as misbehaviour.
//
// # Service streams (stream.go)
//
// Services above this layer (storage, blobs; protocol.md §12, §13) register stream protocols
// "<ProtocolPrefix(netID)>/<service>/<version>" with HandleStream and open them with OpenStream; the
// package carries the streams (Stream: read, write, half-close, reset, deadlines, the remote peer and
// address) and leaves framing, authentication and limits to the service. A handler's panic is logged
// and resets its stream. ClientHost is a minimal host for light clients: a fresh random peer id per
// ClientHost, no gossip, no block protocol, no listening unless asked; it identifies itself with the
// agent "tanglemail-light". Once identify names that agent, the node drops the peer from its peer
// tables (no catch-up, no re-dial, not in the peers file) and PeerCount does not count it, so light
// clients connected to a public node do not make it believe it has gossip peers.
//
// # Solidification, catch-up, anti-entropy
//
// Solidification: every Limits.SolidifyInterval, and at once when a stored block names a parent the node
// has not seen, the node lists store.Missing and asks two connected peers for each missing id (get-blocks,
// up to 256 ids per request), rotating peers on each retry (every Limits.SolidifyRetry), and gives an id
// up (store.GiveUp) Limits.SolidifyGiveUp after the first request. A fetched parent still well inside
// the gossip window is relayed on gossip once, since the peers that saw its child lack it too.
//
// Catch-up: when a peer connects, the node pages through the peer's ids of each subscribed shard since
// the last contact with that peer minus Limits.CatchUpMargin (a peer never met: Limits.CatchUpWindow,
// at most the maximum TTL), and fetches the ids it lacks in batches, Limits.FetchParallel requests at a
// time. The peer table (each peer's last contact time) is kept in Config.DataDir/p2p-peers.json across
// restarts. After a catch-up that stored blocks, the node announces to its other peers, so blocks that
// crossed a healed partition spread to nodes without a link across it.
//
// Anti-entropy: Limits.AntiEntropyDelay (3 s) after a connect, and every Limits.AntiEntropyInterval
// (10 s) with a random caught-up peer, the node compares per-minute digests of the last ten minutes (the newest five
// seconds excluded) and lists and fetches only the minutes that differ. It repairs what gossip missed: a
// mesh not yet formed after a connect, messages dropped by a full validation queue or a rate limit.
//
// # Implementation notes
//
//   - Locking: Node.mu guards the peer tables, topics and score snapshot; it is never held across I/O or
//     a store call. The limiters, the misbehaviour table, the gater, the seen set, the notifier, the
//     solidifier and the catch-up scheduler have their own small locks.
//   - Every call that may use the store (validators, stream handlers, background rounds) is registered
//     with Node.enter/leave; Close refuses new ones and waits for the running ones, so after Close
//     returns the node never touches the store, and the caller may close it.
//   - Every per-peer table is bounded (4096 peers; stale entries evicted); the seen set, the OnBlock queue
//     and the missing-id table have fixed capacities; GossipSub's RPC size and validation queue are
//     bounded. The OnBlock queue applies backpressure to ingestion rather than dropping blocks.
//   - Logs carry peer ids, block ids, counts and reasons, never block content.
//   - Validity windows and catch-up times use the node clock (WithClock); timers, rate limits and
//     decays use real time.
package p2p
