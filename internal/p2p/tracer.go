package p2p

import (
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"google.golang.org/protobuf/proto"
)

// meshTracer follows GossipSub's mesh (GRAFT/PRUNE; disconnected peers are removed by the node) and
// counts RPCs GossipSub dropped because a peer's bounded outbound queue was full. Its methods run on
// GossipSub's event loop and only take a short lock.
type meshTracer struct {
	mu         sync.Mutex
	mesh       map[string]map[peer.ID]struct{}
	lastChange time.Time // last GRAFT or PRUNE
	onChange   func()    // called (under mu, must not block) after every mesh change; tests wait on it

	droppedRPCs   atomic.Uint64
	undeliverable atomic.Uint64
	duplicates    atomic.Uint64 // message copies received after the first (GossipSub's seen cache)
	ctrlBytesIn   atomic.Uint64 // bytes of received control messages (IHAVE, IWANT, IDONTWANT, GRAFT, PRUNE)
}

var _ pubsub.RawTracer = (*meshTracer)(nil)

func newMeshTracer() *meshTracer {
	return &meshTracer{mesh: make(map[string]map[peer.ID]struct{})}
}

func (t *meshTracer) Graft(p peer.ID, topic string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.mesh[topic]
	if m == nil {
		m = make(map[peer.ID]struct{})
		t.mesh[topic] = m
	}
	m[p] = struct{}{}
	t.changedLocked()
}

// changedLocked records a mesh change.
func (t *meshTracer) changedLocked() {
	t.lastChange = time.Now()
	if t.onChange != nil {
		t.onChange()
	}
}

// setOnChange sets the function called after every mesh change (tests: an event to wait on).
func (t *meshTracer) setOnChange(f func()) {
	t.mu.Lock()
	t.onChange = f
	t.mu.Unlock()
}

func (t *meshTracer) Prune(p peer.ID, topic string) {
	t.mu.Lock()
	delete(t.mesh[topic], p)
	t.changedLocked()
	t.mu.Unlock()
}

// stableFor is how long the mesh has gone without a GRAFT or PRUNE.
func (t *meshTracer) stableFor() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return time.Since(t.lastChange)
}

// removePeer drops p from every mesh (GossipSub does not trace a disconnected peer's removal).
func (t *meshTracer) removePeer(p peer.ID) {
	t.mu.Lock()
	for _, m := range t.mesh {
		delete(m, p)
	}
	if t.onChange != nil {
		t.onChange()
	}
	t.mu.Unlock()
}

func (t *meshTracer) meshSize(topic string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.mesh[topic])
}

func (t *meshTracer) Leave(topic string) {
	t.mu.Lock()
	delete(t.mesh, topic)
	t.mu.Unlock()
}

func (t *meshTracer) DropRPC(*pubsub.RPC, peer.ID)             { t.droppedRPCs.Add(1) }
func (t *meshTracer) UndeliverableMessage(*pubsub.Message)     { t.undeliverable.Add(1) }
func (t *meshTracer) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (t *meshTracer) OnClosedOutboundStream(peer.ID)           {}
func (t *meshTracer) Join(string)                              {}
func (t *meshTracer) ValidateMessage(*pubsub.Message)          {}
func (t *meshTracer) DeliverMessage(*pubsub.Message)           {}
func (t *meshTracer) RejectMessage(*pubsub.Message, string)    {}
func (t *meshTracer) DuplicateMessage(*pubsub.Message)         { t.duplicates.Add(1) }
func (t *meshTracer) ThrottlePeer(peer.ID)                     {}
func (t *meshTracer) RecvRPC(rpc *pubsub.RPC) {
	if c := rpc.GetControl(); c != nil {
		t.ctrlBytesIn.Add(uint64(proto.Size(c)))
	}
}
func (t *meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (t *meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
