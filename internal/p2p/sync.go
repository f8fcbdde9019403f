package p2p

import (
	"context"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
)

// solidifier fetches missing parents (store.Missing) from peers: each id is asked for at once, then again
// every Limits.SolidifyRetry from other peers, and given up (store.GiveUp) Limits.SolidifyGiveUp after
// the first request. Its state is bounded by Limits.MaxMissing ids.
type solidifier struct {
	n    *Node
	wake chan struct{}
	sem  chan struct{} // concurrent outbound get-blocks requests

	mu      sync.Mutex
	pending map[tangle.ID]*missingState
}

type missingState struct {
	first, last time.Time
	tries       int
}

// askPeers is how many peers one attempt asks for the same missing id.
const askPeers = 2

func newSolidifier(n *Node) *solidifier {
	return &solidifier{n: n, wake: make(chan struct{}, 1), sem: make(chan struct{}, 8),
		pending: make(map[tangle.ID]*missingState)}
}

func (s *solidifier) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *solidifier) pendingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

func (s *solidifier) run(ctx context.Context) {
	tick := time.NewTicker(s.n.lim.SolidifyInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
		}
		s.round(ctx)
	}
}

func (s *solidifier) round(ctx context.Context) {
	n := s.n
	if !n.enter() {
		return
	}
	defer n.leave()
	ids, err := n.store.Missing(n.lim.MaxMissing)
	if err != nil {
		n.log.Error("p2p: store missing", "err", err)
		return
	}
	peers := n.connectedPeers()
	now := time.Now()
	type ask struct {
		id    tangle.ID
		tries int
	}
	var due []ask
	s.mu.Lock()
	keep := make(map[tangle.ID]bool, len(ids))
	for _, id := range ids {
		keep[id] = true
		st := s.pending[id]
		if st == nil {
			st = &missingState{}
			s.pending[id] = st
		}
		if st.tries > 0 && now.Sub(st.first) >= n.lim.SolidifyGiveUp {
			delete(s.pending, id)
			delete(keep, id)
			if err := n.store.GiveUp(id); err != nil {
				n.log.Error("p2p: store give up", "err", err)
			} else {
				n.ctr.solidifyGivenUp.Add(1)
				n.log.Debug("p2p: gave up on missing block", "block", id.Short())
			}
			continue
		}
		if len(peers) == 0 || (st.tries > 0 && now.Sub(st.last) < n.lim.SolidifyRetry) {
			continue
		}
		if st.tries == 0 {
			st.first = now
		}
		st.last = now
		st.tries++
		due = append(due, ask{id, st.tries})
	}
	for id := range s.pending {
		if !keep[id] {
			delete(s.pending, id)
		}
	}
	s.mu.Unlock()
	if len(due) == 0 {
		return
	}

	// Each attempt asks askPeers peers, rotating with the attempt number so retries reach other peers.
	byPeer := make(map[peer.ID][]tangle.ID)
	for _, a := range due {
		off := int(a.id[0]) + (a.tries-1)*askPeers
		for k := range min(askPeers, len(peers)) {
			p := peers[(off+k)%len(peers)]
			byPeer[p] = append(byPeer[p], a.id)
		}
	}
	for p, list := range byPeer {
		for len(list) > 0 {
			chunk := list[:min(len(list), n.lim.MaxIDsPerGet)]
			list = list[len(chunk):]
			select {
			case s.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			n.ctr.solidifyAsked.Add(uint64(len(chunk)))
			n.spawn(func() {
				defer func() { <-s.sem }()
				s.get(ctx, p, chunk)
			})
		}
	}
}

// get fetches missing parents from p. Fresh blocks obtained this way are relayed on gossip once: peers
// that saw the child are missing the parent too, and gossip reaches them faster than their own requests.
func (s *solidifier) get(ctx context.Context, p peer.ID, ids []tangle.ID) {
	n := s.n
	blocks, err := n.fetch(ctx, p, ids)
	if err != nil {
		n.log.Debug("p2p: missing-block request failed", "peer", p.String(), "err", err)
		return
	}
	if len(blocks) == 0 {
		return
	}
	now := n.now()
	for _, b := range blocks {
		// Relay only well inside the freshness window, so a receiver with a slightly different clock
		// does not reject the block and penalise us.
		if d := now.Sub(b.IssuedAt()); d.Abs() <= n.params.ClockSkew-time.Minute {
			if err := n.publishRaw(ctx, b); err == nil {
				n.ctr.regossiped.Add(1)
			}
		}
	}
	s.wakeUp() // the new blocks' own parents may be missing
}

// catchUpper runs catch-up sessions: for each subscribed shard, page through a peer's block ids issued
// since a start time (store.IDsSince on the peer) and fetch the ones the node lacks. A session runs when
// a peer connects (start: the peer's last contact minus Limits.CatchUpMargin, or Limits.CatchUpWindow
// for a new peer) and when a peer announces that it has just caught up on blocks issued since a time.
// After a session that stored blocks, the node announces to its other peers, so blocks that crossed a
// partition by catch-up spread to every node.
type catchUpper struct {
	n    *Node
	wake chan struct{}

	mu    sync.Mutex
	queue []peer.ID
	state map[peer.ID]*catchUpState
}

type catchUpState struct {
	queued, running bool
	connect         bool             // a connect-time session is wanted
	antiEntropy     bool             // a digest comparison of the recent window is wanted
	since           map[uint32]int64 // announced start times, per shard
	notBefore       time.Time        // announce cooldown
}

// catchUpKind says which session schedule asks for.
type catchUpKind int

const (
	kindConnect catchUpKind = iota
	kindAnnounce
	kindAntiEntropy
)

func newCatchUpper(n *Node) *catchUpper {
	return &catchUpper{n: n, wake: make(chan struct{}, 1), state: make(map[peer.ID]*catchUpState)}
}

// schedule queues a session with p: connect-time, anti-entropy, or from announced start times (since).
func (c *catchUpper) schedule(p peer.ID, kind catchUpKind, since map[uint32]int64) {
	c.mu.Lock()
	st := c.state[p]
	if st == nil {
		if len(c.state) >= maxTrackedPeers {
			c.gcLocked()
		}
		if len(c.state) >= maxTrackedPeers {
			c.mu.Unlock()
			return
		}
		st = &catchUpState{}
		c.state[p] = st
	}
	switch kind {
	case kindConnect:
		st.connect = true
	case kindAntiEntropy:
		st.antiEntropy = true
	case kindAnnounce:
		if st.since == nil {
			st.since = make(map[uint32]int64)
		}
		for sh, t := range since {
			if old, ok := st.since[sh]; !ok || t < old {
				st.since[sh] = t
			}
		}
	}
	if !st.queued && !st.running {
		st.queued = true
		c.queue = append(c.queue, p)
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// gcLocked drops idle entries (neither queued nor running).
func (c *catchUpper) gcLocked() {
	for p, st := range c.state {
		if !st.queued && !st.running {
			delete(c.state, p)
		}
	}
}

// forget drops an idle disconnected peer's state.
func (c *catchUpper) forget(p peer.ID) {
	c.mu.Lock()
	if st := c.state[p]; st != nil && !st.queued && !st.running {
		delete(c.state, p)
	}
	c.mu.Unlock()
}

func (c *catchUpper) counts() (queued, running int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, st := range c.state {
		if st.running {
			running++
		}
	}
	return len(c.queue), running
}

// next pops a peer whose session may run now.
func (c *catchUpper) next() (peer.ID, *catchUpState, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	wait := time.Duration(math.MaxInt64)
	for i, p := range c.queue {
		st := c.state[p]
		if d := st.notBefore.Sub(now); d > 0 && !st.connect {
			wait = min(wait, d)
			continue
		}
		c.queue = append(c.queue[:i], c.queue[i+1:]...)
		job := &catchUpState{connect: st.connect, antiEntropy: st.antiEntropy, since: st.since}
		st.queued, st.running, st.connect, st.antiEntropy, st.since = false, true, false, false, nil
		return p, job, 0
	}
	return "", nil, wait
}

func (c *catchUpper) done(p peer.ID) {
	c.mu.Lock()
	st := c.state[p]
	st.running = false
	st.notBefore = time.Now().Add(c.n.lim.AnnounceCooldown)
	if st.connect || st.antiEntropy || st.since != nil {
		st.queued = true
		c.queue = append(c.queue, p)
	} else if !c.n.isConnected(p) {
		delete(c.state, p)
	}
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *catchUpper) run(ctx context.Context) {
	for {
		p, job, wait := c.next()
		if job == nil {
			var timer *time.Timer
			var fire <-chan time.Time
			if wait < time.Duration(math.MaxInt64) {
				timer = time.NewTimer(wait)
				fire = timer.C
			}
			select {
			case <-ctx.Done():
			case <-c.wake:
			case <-fire:
			}
			if timer != nil {
				timer.Stop()
			}
			if ctx.Err() != nil {
				return
			}
			continue
		}
		c.session(ctx, p, job)
		c.done(p)
		// Pass the wake-up on: another worker may have been waiting for this peer's cooldown.
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
}

func (n *Node) isConnected(p peer.ID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.peers[p]
	return ok
}

// session catches up with p on every subscribed shard (connect) or the announced ones.
func (c *catchUpper) session(ctx context.Context, p peer.ID, job *catchUpState) {
	n := c.n
	if !n.enter() {
		return
	}
	defer n.leave()
	if !n.isConnected(p) || n.gater.isBanned(p) {
		return
	}
	n.setCatchingUp(p, true)
	defer n.setCatchingUp(p, false)
	now := n.now()
	floor := now.Add(-n.lim.CatchUpWindow).UnixMilli()
	start := make(map[uint32]int64)
	if job.connect {
		s := floor
		n.mu.Lock()
		if t, ok := n.peerTable[p]; ok {
			s = max(floor, t-n.lim.CatchUpMargin.Milliseconds())
		}
		n.mu.Unlock()
		for _, sh := range n.shards {
			start[sh] = s
		}
	}
	for sh, t := range job.since {
		t = max(floor, t-n.params.ClockSkew.Milliseconds())
		if old, ok := start[sh]; !ok || t < old {
			start[sh] = t
		}
	}
	total := 0
	for _, sh := range n.shards {
		since, ok := start[sh]
		if !ok {
			continue
		}
		got, minTime, err := c.shard(ctx, p, sh, since, 0)
		total += got
		if got > 0 {
			c.announce(ctx, p, sh, minTime)
		}
		if err != nil {
			n.ctr.catchUpsFailed.Add(1)
			n.log.Debug("p2p: catch-up failed", "peer", p.String(), "shard", sh, "err", err)
			return
		}
	}
	if job.antiEntropy {
		for _, sh := range n.shards {
			got, minTime, err := c.antiEntropy(ctx, p, sh)
			total += got
			if got > 0 {
				c.announce(ctx, p, sh, minTime)
			}
			if err != nil {
				n.log.Debug("p2p: anti-entropy failed", "peer", p.String(), "shard", sh, "err", err)
				return
			}
		}
		n.ctr.antiEntropy.Add(1)
		if !job.connect && job.since == nil {
			if total > 0 {
				n.log.Info("p2p: anti-entropy fetched blocks", "peer", p.String(), "blocks", total)
			}
			return
		}
	}
	n.ctr.catchUps.Add(1)
	n.mu.Lock()
	n.synced = true
	if ps := n.peers[p]; ps != nil {
		ps.caughtUp = true
	}
	n.mu.Unlock()
	if total > 0 {
		n.log.Info("p2p: caught up", "peer", p.String(), "blocks", total)
	}
}

func (n *Node) setCatchingUp(p peer.ID, on bool) {
	n.mu.Lock()
	if ps := n.peers[p]; ps != nil {
		ps.catchingUp = on
	}
	n.mu.Unlock()
}

// shard pages through p's ids of one shard issued at or after since and before until (Unix ms; until 0:
// no end) and fetches what the node lacks, Limits.FetchParallel requests at a time. It returns how many
// blocks it stored and the earliest issuing time among them.
func (c *catchUpper) shard(ctx context.Context, p peer.ID, shard uint32, since, until int64) (int, int64, error) {
	n := c.n
	var (
		mu      sync.Mutex
		got     int
		minTime int64 = math.MaxInt64
		ferr    error
		wg      sync.WaitGroup
	)
	sem := make(chan struct{}, n.lim.FetchParallel)
	fetchBatch := func(ids []tangle.ID) {
		defer wg.Done()
		defer func() { <-sem }()
		blocks, err := n.fetch(ctx, p, ids)
		mu.Lock()
		defer mu.Unlock()
		if err != nil && ferr == nil {
			ferr = err
		}
		got += len(blocks)
		for _, b := range blocks {
			minTime = min(minTime, b.Time)
		}
		n.ctr.catchUpBlocks.Add(uint64(len(blocks)))
	}
	after := cursor{}
	var batch []tangle.ID
	flush := func() {
		if len(batch) == 0 {
			return
		}
		ids := batch
		batch = nil
		sem <- struct{}{}
		wg.Add(1)
		go fetchBatch(ids)
	}
	var err error
	for {
		var resp *message
		resp, err = n.request(ctx, p, &message{Type: msgGetIDs, Shard: shard, Since: since, After: after, Limit: n.lim.MaxIDsPerPage})
		if err != nil {
			break
		}
		if resp.Type != msgIDs {
			n.offence(p, "response", 1)
			err = errors.New("p2p: unexpected response to get-ids")
			break
		}
		prev := after
		ended := false
		for _, it := range resp.Items {
			if !cursorLess(prev, it) || it.Time < since {
				n.offence(p, "response", 1)
				err = errors.New("p2p: ids out of order")
				break
			}
			prev = it
			if until != 0 && it.Time >= until {
				ended = true
				break
			}
			if n.seen.has(it.ID) {
				continue
			}
			has, herr := n.store.Has(it.ID)
			if herr != nil {
				err = herr
				break
			}
			if has {
				continue
			}
			batch = append(batch, it.ID)
			if len(batch) >= n.lim.MaxIDsPerGet {
				flush()
			}
		}
		if err != nil || ended || !resp.More || len(resp.Items) == 0 {
			break
		}
		after = prev
		mu.Lock()
		stop := ferr != nil
		mu.Unlock()
		if stop || ctx.Err() != nil {
			break
		}
	}
	flush()
	wg.Wait()
	if err == nil {
		err = ferr
	}
	if err == nil {
		err = ctx.Err()
	}
	return got, minTime, err
}

func cursorLess(a, b cursor) bool {
	if a.Time != b.Time {
		return a.Time < b.Time
	}
	for i := range a.ID {
		if a.ID[i] != b.ID[i] {
			return a.ID[i] < b.ID[i]
		}
	}
	return false
}

// announce tells every other connected peer that this node just stored blocks of shard issued since
// minTime, so they catch up with it in turn.
func (c *catchUpper) announce(ctx context.Context, from peer.ID, shard uint32, minTime int64) {
	n := c.n
	for _, q := range n.connectedPeers() {
		if q == from {
			continue
		}
		n.ctr.announcesSent.Add(1)
		n.spawn(func() {
			if _, err := n.request(ctx, q, &message{Type: msgAnnounce, Shard: shard, Since: minTime}); err != nil &&
				!errors.Is(err, context.Canceled) {
				n.log.Debug("p2p: announce failed", "peer", q.String(), "err", err)
			}
		})
	}
}

// Anti-entropy: the recent window is compared slot by slot with a peer's digests, and only the slots
// that differ are listed and fetched. It repairs what gossip lost (a mesh not yet formed after a
// connect, blocks dropped by a rate limit or a validation queue) at the cost of one small request when
// nothing is missing.
const (
	antiEntropySlot   = time.Minute
	antiEntropySlots  = 10              // window: 10 minutes, twice the gossip freshness window
	antiEntropySettle = 5 * time.Second // the newest seconds are left to gossip still in flight
	maxDigestIDs      = 1 << 17         // ids one digest request may read
)

var errDigestTooLarge = errors.New("p2p: digest window holds too many blocks")

// digests computes count slot digests of shard from start (Unix ms), each slot ms long.
func (n *Node) digests(shard uint32, start, slot int64, count int) ([]digest, error) {
	out := make([]digest, count)
	end := start + slot*int64(count)
	after := dag.Cursor{}
	const page = 4096
	for read := 0; read <= maxDigestIDs; {
		cs, err := n.store.IDsSince(shard, time.UnixMilli(start), after, page)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			if c.Time >= end {
				return out, nil
			}
			if c.Time >= start {
				out[(c.Time-start)/slot].add(c.ID)
			}
		}
		if len(cs) < page {
			return out, nil
		}
		read += len(cs)
		after = cs[len(cs)-1]
	}
	return nil, errDigestTooLarge
}

// antiEntropy compares the recent window of shard with p and fetches the blocks of differing slots.
func (c *catchUpper) antiEntropy(ctx context.Context, p peer.ID, shard uint32) (int, int64, error) {
	n := c.n
	slot := antiEntropySlot.Milliseconds()
	start := n.now().Add(-antiEntropySettle).UnixMilli() - slot*antiEntropySlots
	resp, err := n.request(ctx, p, &message{Type: msgGetDigest, Shard: shard, Since: start, Slot: slot,
		Digest: make([]digest, antiEntropySlots)})
	if err != nil {
		return 0, 0, err
	}
	if resp.Type != msgDigest || len(resp.Digest) != antiEntropySlots {
		n.offence(p, "response", 1)
		return 0, 0, errors.New("p2p: bad digest response")
	}
	local, err := n.digests(shard, start, slot, antiEntropySlots)
	if err != nil {
		return 0, 0, err
	}
	total, minTime := 0, int64(math.MaxInt64)
	for i := 0; i < antiEntropySlots; i++ {
		if resp.Digest[i].N == 0 || resp.Digest[i] == local[i] {
			continue
		}
		j := i // merge a run of differing slots into one listing
		for j+1 < antiEntropySlots && resp.Digest[j+1].N != 0 && resp.Digest[j+1] != local[j+1] {
			j++
		}
		got, mt, err := c.shard(ctx, p, shard, start+int64(i)*slot, start+int64(j+1)*slot)
		total += got
		minTime = min(minTime, mt)
		if err != nil {
			return total, minTime, err
		}
		i = j
	}
	return total, minTime, nil
}
