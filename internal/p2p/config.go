package p2p

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tanglemail/tanglemail/internal/atomicfile"
)

// Files the node keeps in Config.DataDir.
const (
	KeyFile   = "p2p.key"        // the host's Ed25519 key, PKCS#8 PEM, mode 0600
	PeersFile = "p2p-peers.json" // the peer table: when each peer was last in contact, and its addresses
)

// Default listen addresses: loopback only. A node that should be reachable from the LAN or the Internet is
// given its addresses explicitly (Config.ListenAddrs or WithListenAddrs).
var DefaultListenAddrs = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}

// Config is the part of the node's configuration that belongs in a config file. Its zero value is the
// safe default for tests: loopback listeners, no bootstrap peers, mDNS and DHT off, an ephemeral key, all
// shards. DefaultConfig gives the product defaults.
type Config struct {
	// DataDir holds KeyFile and PeersFile. Empty: a fresh key each start and nothing persisted.
	DataDir string `json:"data_dir,omitempty"`
	// ListenAddrs are multiaddrs (TCP and/or QUIC). Empty: DefaultListenAddrs.
	ListenAddrs []string `json:"listen_addrs,omitempty"`
	// Bootstrap are multiaddrs with a /p2p/<peer id> suffix, dialled at start and re-dialled whenever
	// they are not connected (Limits.RedialBackoffMax). There is no built-in list.
	Bootstrap []string `json:"bootstrap,omitempty"`
	// MDNS announces and finds peers on the local network.
	MDNS bool `json:"mdns"`
	// DHT runs a Kademlia DHT in the private /tanglemail protocol namespace, seeded only by Bootstrap and
	// the peers the node meets, and uses it to find peers of its shards.
	DHT bool `json:"dht"`
	// Shards to subscribe to. Empty: every shard of the network (2^s).
	Shards []uint32 `json:"shards,omitempty"`
	// RelayService makes this a public node's host: reachability fixed to public, the circuit relay v2
	// service for nodes behind NAT (bounded by Limits.Relay*), and the AutoNAT services (relay.go).
	RelayService bool `json:"relay_service,omitempty"`
	// Relays are public nodes (multiaddrs with /p2p/<peer id>) to reserve a relay slot on while this
	// node is not publicly reachable (AutoRelay with static relays), so that peers reach it through
	// them; hole punching then tries to make such connections direct.
	Relays []string `json:"relays,omitempty"`
	// Reachability fixes the node's reachability: "public" or "private". Empty: AutoNAT finds it out.
	Reachability string `json:"reachability,omitempty"`
}

// DefaultConfig is the configuration of a product node: mDNS and the DHT on. Listen addresses stay the
// loopback defaults until the caller sets them.
func DefaultConfig(dataDir string) Config {
	return Config{DataDir: dataDir, MDNS: true, DHT: true}
}

// Limits bound what the node accepts and spends. DefaultLimits documents the chosen values; tests and
// benchmarks shorten the timers.
type Limits struct {
	// Gossip: per-peer token bucket over blocks received on the gossip topics (before validation).
	// Blocks over the budget are ignored (not forwarded, not penalised).
	GossipRate  float64 // blocks per second
	GossipBurst int

	// A peer whose misbehaviour score (invalid blocks, each weighted; decaying with MisbehaviourHalfLife)
	// reaches BanThreshold is disconnected and refused for BanDuration.
	BanThreshold         float64
	MisbehaviourHalfLife time.Duration
	BanDuration          time.Duration

	// Request/response protocol.
	MaxIDsPerGet     int           // ids per get-blocks request
	MaxIDsPerPage    int           // ids per get-ids response
	MaxResponseBytes int           // block bytes per blocks response
	RequestTimeout   time.Duration // one request, stream open to last byte read
	MaxInbound       int           // concurrent inbound streams, all peers
	MaxInboundPeer   int           // concurrent inbound streams per peer
	RequestRate      float64       // inbound requests per second per peer
	RequestBurst     int
	FetchParallel    int // concurrent get-blocks requests of one catch-up session

	// Solidification: missing parents are asked for every SolidifyRetry and given up SolidifyGiveUp after
	// the first request (the store then treats them as unavailable).
	SolidifyInterval time.Duration
	SolidifyRetry    time.Duration
	SolidifyGiveUp   time.Duration
	MaxMissing       int // missing ids tracked at once

	// Catch-up. A peer met before is asked for blocks issued since it was last in contact minus
	// CatchUpMargin; a new peer for everything issued within CatchUpWindow (at most the maximum TTL).
	CatchUpMargin time.Duration
	CatchUpWindow time.Duration
	MaxCatchUps   int // concurrent catch-up sessions
	// Anti-entropy: every AntiEntropyInterval, and AntiEntropyDelay after a peer connects, the last ten
	// minutes are compared with one peer by per-minute digests, and differing minutes are fetched.
	AntiEntropyInterval time.Duration
	AntiEntropyDelay    time.Duration
	AnnounceCooldown    time.Duration // minimum time between two announce-triggered catch-ups with one peer
	NotifyQueue         int           // OnBlock queue; when full, ingestion waits (backpressure)
	SeenCache           int           // recently handled block ids kept in memory
	ReconnectInterval   time.Duration // DHT discovery rounds
	ValidationParallel  int           // concurrent gossip validations (each may hold a block)

	// Re-dialling known peers (see redial.go). The bootstrap peers and the RedialPeers most recently
	// seen peers of the peer table (seen within RedialWindow, with known addresses) are re-dialled
	// whenever they are not connected, whether or not the node has other peers, with a per-peer
	// back-off from 1 s doubling up to RedialBackoffMax. Every back-off is reset when a link comes back
	// (any peer connects) or the local network changes (an interface, address or link state).
	RedialPeers      int
	RedialWindow     time.Duration
	RedialBackoffMax time.Duration
	DialTimeout      time.Duration // one re-dial
	// Liveness: every connected peer is pinged (libp2p ping) every PingInterval, and a connection from
	// which no byte at all has arrived for PingTimeout is closed: a dead link is noticed within
	// PingTimeout + 1 s, over TCP and QUIC alike.
	PingInterval time.Duration
	PingTimeout  time.Duration

	// Circuit relay service of a public node (relay.go): reservations held at once, in all and from one
	// IP address, how long a reservation lasts before the client must refresh it, and relayed
	// connections per reserving peer at once. Zero: the default.
	RelayMaxReservations      int
	RelayMaxReservationsPerIP int
	RelayMaxCircuits          int
	RelayReservationTTL       time.Duration
}

// DefaultLimits are the limits of a product node.
func DefaultLimits() Limits {
	return Limits{
		GossipRate:           300,
		GossipBurst:          3000,
		BanThreshold:         5,
		MisbehaviourHalfLife: 10 * time.Minute,
		BanDuration:          30 * time.Minute,
		MaxIDsPerGet:         256,
		MaxIDsPerPage:        4096,
		MaxResponseBytes:     4 << 20,
		RequestTimeout:       20 * time.Second,
		MaxInbound:           64,
		MaxInboundPeer:       8,
		RequestRate:          50,
		RequestBurst:         200,
		FetchParallel:        4,
		SolidifyInterval:     time.Second,
		SolidifyRetry:        3 * time.Second,
		SolidifyGiveUp:       15 * time.Second,
		MaxMissing:           1024,
		CatchUpMargin:        10 * time.Minute,
		CatchUpWindow:        2_419_200 * time.Second,
		MaxCatchUps:          2,
		AntiEntropyInterval:  10 * time.Second,
		AntiEntropyDelay:     3 * time.Second,
		AnnounceCooldown:     2 * time.Second,
		NotifyQueue:          4096,
		SeenCache:            1 << 16,
		ReconnectInterval:    30 * time.Second,
		ValidationParallel:   256,
		RedialPeers:          32,
		RedialWindow:         7 * 24 * time.Hour,
		RedialBackoffMax:     5 * time.Second,
		DialTimeout:          5 * time.Second,
		PingInterval:         2 * time.Second,
		PingTimeout:          6 * time.Second,

		RelayMaxReservations:      128,
		RelayMaxReservationsPerIP: 8,
		RelayMaxCircuits:          16,
		RelayReservationTTL:       time.Hour,
	}
}

// settings is Config plus everything the options set.
type settings struct {
	Config
	limits  Limits
	key     ed25519.PrivateKey
	keyFile string
	now     func() time.Time
	log     *slog.Logger
	gossip  gossipTuning

	// Tests on loopback: relayAnyAddr lets the relay service put non-public addresses in reservations;
	// refuseInbound refuses every inbound connection that is not relayed (a simulated NAT).
	relayAnyAddr, refuseInbound bool
}

// Option changes a node setting; options override Config.
type Option func(*settings)

// WithListenAddrs sets the listen multiaddrs (TCP /tcp/<port> and QUIC /udp/<port>/quic-v1).
func WithListenAddrs(addrs ...string) Option {
	return func(s *settings) { s.ListenAddrs = append([]string(nil), addrs...) }
}

// WithBootstrap sets the bootstrap multiaddrs (each with /p2p/<peer id>).
func WithBootstrap(addrs ...string) Option {
	return func(s *settings) { s.Bootstrap = append([]string(nil), addrs...) }
}

// WithMDNS turns LAN discovery on or off.
func WithMDNS(on bool) Option { return func(s *settings) { s.MDNS = on } }

// WithDHT turns the Kademlia DHT on or off.
func WithDHT(on bool) Option { return func(s *settings) { s.DHT = on } }

// WithShards sets the shards to subscribe to.
func WithShards(shards ...uint32) Option {
	return func(s *settings) { s.Shards = append([]uint32(nil), shards...) }
}

// WithKey sets the host key (otherwise it is loaded from or created in Config.DataDir, or ephemeral).
func WithKey(key ed25519.PrivateKey) Option { return func(s *settings) { s.key = key } }

// WithKeyFile loads the host key from path, creating it on first use (see LoadOrCreateKey).
func WithKeyFile(path string) Option { return func(s *settings) { s.keyFile = path } }

// WithClock sets the clock used for validity windows and catch-up times (tests). Timers still run on
// real time.
func WithClock(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// WithLogger sets the logger. Logs carry peer ids, block ids and counts, never block content.
func WithLogger(l *slog.Logger) Option { return func(s *settings) { s.log = l } }

// WithRelayService turns the circuit relay v2 service of a public node on or off (Config.RelayService).
func WithRelayService(on bool) Option { return func(s *settings) { s.RelayService = on } }

// WithRelays sets the static relays (Config.Relays).
func WithRelays(addrs ...string) Option {
	return func(s *settings) { s.Relays = append([]string(nil), addrs...) }
}

// WithReachability fixes the reachability: "public", "private", or "" to detect it (Config.Reachability).
func WithReachability(r string) Option { return func(s *settings) { s.Reachability = r } }

// WithLimits replaces DefaultLimits.
func WithLimits(l Limits) Option { return func(s *settings) { s.limits = l } }

// LoadOrCreateKey reads the Ed25519 key at path (PKCS#8 PEM), or creates one there (mode 0600, written
// atomically) when the file does not exist. The key gives the node a stable peer id across restarts.
func LoadOrCreateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err == nil {
		return parseKey(data)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("p2p: read key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("p2p: generate key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("p2p: encode key: %w", err)
	}
	pemData := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeFileAtomic(path, pemData, 0o600); err != nil {
		return nil, fmt.Errorf("p2p: save key: %w", err)
	}
	return priv, nil
}

func parseKey(data []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(data)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("p2p: key file is not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("p2p: parse key: %w", err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("p2p: key file does not hold an Ed25519 key")
	}
	return priv, nil
}

// writeFileAtomic creates path's directory if need be and replaces path with data (atomicfile.Write:
// temporary file, fsync, rename, directory fsync).
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return atomicfile.Write(path, data, mode)
}
