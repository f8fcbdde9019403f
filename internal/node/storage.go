package node

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/storage"
	"github.com/tanglemail/tanglemail/internal/tangle"
	"github.com/tanglemail/tanglemail/internal/tangle/dag"
	"github.com/tanglemail/tanglemail/internal/web"
)

// StorageConfig configures the node's storage provider (protocol.md §12; flags --storage,
// --storage-cap, --public, --storage-allow).
type StorageConfig struct {
	Enabled  bool
	CapBytes int64 // the disk cap (0: storage's default, 1 GiB)
	// Public also serves light clients: publish (PoW first, per-client rate limit) and tips.
	Public bool
	// Allow lists subscription keys activated without a grant.
	Allow []ed25519.PublicKey
	// Payments, if set, sells subscriptions for IOTA (payment.go; protocol.md §14).
	Payments *StoragePaymentsConfig
	// Now is the provider's clock for subscription periods and payments (tests; nil: time.Now).
	Now func() time.Time
}

// ParseStorageKey reads a subscription key for --storage-allow: 32 bytes in hex or base64.
func ParseStorageKey(s string) (ed25519.PublicKey, error) {
	s = strings.TrimSpace(s)
	if b, err := hex.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
		return b, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == ed25519.PublicKeySize {
			return b, nil
		}
	}
	return nil, fmt.Errorf("--storage-allow %q: want a 32-byte Ed25519 public key in hex or base64", s)
}

// storageFeed batches the blocks the node stores for the provider: the OnBlock handler only queues
// (bounded: a full queue holds up ingestion rather than drop a block), and one goroutine offers the
// queue in batches of up to 256 blocks, one transaction each.
const storageFeedQueue = 4096

// storageRescanWindow bounds the blocks offered again at start, by issuing time: everything the block
// store can still hold. A block lives at most the maximum TTL (protocol.md §1) after it was issued, and
// may reach the node at any point of its life (catch-up after a downtime brings blocks issued days ago),
// so a shorter window would miss a block that reached the block store but not the provider (see
// rescanStorage).
const storageRescanWindow = time.Duration(tangle.MaxTTL) * time.Second

// storageSide is the node's storage provider and the goroutines that feed it. It has its own context
// and wait group, so that it can start anywhere after the network and stop in Close before the network.
type storageSide struct {
	p          *storage.Provider
	unregister func()
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	pay        *StoragePayments // nil unless Payments
}

func (s *storageSide) goRun(n *Node, name string, f func() error) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := f(); err != nil {
			n.log.Error(name+" stopped", "err", err)
		}
	}()
}

// startStorage opens the provider (if enabled), registers its stream protocol and feeds it the node's
// validated blocks. It runs after the network and the metrics registry exist. A storage node of a
// network with shard bits should subscribe to every shard; all networks have none today.
func (n *Node) startStorage() error {
	sc := n.cfg.Storage
	if !sc.Enabled {
		return nil
	}
	if n.net == nil {
		return errors.New("storage: a storage provider needs a full node (not a light client)")
	}
	cfg := storage.Config{
		Dir:      n.cfg.DataDir,
		Params:   n.cfg.Network,
		Log:      n.log.With("sub", "storage"),
		CapBytes: sc.CapBytes,
		Allow:    sc.Allow,
		Public:   sc.Public,
		Now:      sc.Now,
	}
	if sc.Public {
		cfg.Publisher, cfg.Tips = n.net, n.store
	}
	p, err := storage.Open(cfg)
	if err != nil {
		return fmt.Errorf("open storage provider: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	side := &storageSide{p: p, cancel: cancel}
	n.provider = side
	if n.metrics != nil {
		n.metrics.MustRegister(p.Collectors()...)
	}
	n.net.HandleStream(p.Protocol(), p.Serve)
	if err := n.startStoragePayments(side); err != nil {
		return err
	}
	feed := make(chan *tangle.Block, storageFeedQueue)
	side.unregister = n.net.OnBlock(func(b *tangle.Block) {
		select {
		case feed <- b:
		case <-ctx.Done():
		}
	})
	side.goRun(n, "storage feed", func() error { n.feedStorage(ctx, feed); return nil })
	side.goRun(n, "storage pruning", func() error { return ignoreCanceled(p.Run(ctx)) })
	side.goRun(n, "storage rescan", func() error { return ignoreCanceled(n.rescanStorage(ctx)) })
	n.log.Info("storage provider started", "public", sc.Public, "cap_bytes", p.Stats().CapBytes)
	return nil
}

func (n *Node) feedStorage(ctx context.Context, feed <-chan *tangle.Block) {
	batch := make([]*tangle.Block, 0, 256)
	for {
		select {
		case <-ctx.Done():
			return
		case b := <-feed:
			batch = append(batch[:0], b)
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case b := <-feed:
				batch = append(batch, b)
			default:
				break drain
			}
		}
		for {
			err := n.provider.p.Offer(ctx, batch)
			if err == nil || ctx.Err() != nil || errors.Is(err, storage.ErrClosed) {
				break
			}
			n.log.Warn("storage: offering blocks failed; retrying", "blocks", len(batch), "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}
}

// rescanStorage offers the stored, unexpired blocks of every shard once at start, so that every block
// the block store committed reaches the provider: those the node stored just before it stopped or
// crashed (the OnBlock queue and the feed are in memory), and those catch-up stored at this start before
// startStorage registered its OnBlock handler (the network starts first). Either kind may have been
// issued long ago — catch-up after a downtime fetches blocks of any age up to their TTL — so the look-back
// is storageRescanWindow, all the block store can hold, not a recent window (an hour lost the blocks
// of a storage node that was down for longer). Blocks already stored for a subscription are skipped by
// the provider.
//
// A block a subscriber already fetched and released is not stored for it again: the provider remembers
// released block ids until no block store can hold them (protocol.md §12.4).
func (n *Node) rescanStorage(ctx context.Context) error {
	since := time.Now().Add(-storageRescanWindow)
	for _, shard := range n.net.Status().Shards {
		var after dag.Cursor
		for {
			page, err := n.store.IDsSince(shard, since, after, 256)
			if err != nil {
				return fmt.Errorf("storage rescan: %w", err)
			}
			batch := make([]*tangle.Block, 0, len(page))
			for _, c := range page {
				b, err := n.store.Get(c.ID)
				if errors.Is(err, dag.ErrNotFound) {
					continue
				}
				if err != nil {
					return fmt.Errorf("storage rescan: %w", err)
				}
				batch = append(batch, b)
			}
			if err := n.provider.p.Offer(ctx, batch); err != nil {
				return fmt.Errorf("storage rescan: %w", err)
			}
			if len(page) < 256 {
				break
			}
			after = page[len(page)-1]
		}
	}
	return nil
}

// Storage is the node's storage provider; nil unless --storage.
func (n *Node) Storage() *storage.Provider {
	if n.provider == nil {
		return nil
	}
	return n.provider.p
}

// StorageStatus is GET /api/storage (web.Storage).
func (n *Node) StorageStatus() api.StorageStatus {
	if n.provider == nil {
		return api.StorageStatus{Addrs: []string{}}
	}
	st := n.provider.p.Stats()
	return api.StorageStatus{Enabled: true, Public: st.Public, Protocol: n.provider.p.Protocol(), PeerID: n.net.ID(),
		Addrs: n.net.Addrs(), Pending: st.Pending, Active: st.Active, Expired: st.Expired, StoredBytes: st.StoredBytes,
		CommittedBytes: st.CommittedBytes, CapBytes: st.CapBytes}
}

// StorageGrant issues a one-time grant token (POST /api/storage/grants, web.Storage).
func (n *Node) StorageGrant(ctx context.Context, req api.StorageGrantRequest) (api.StorageGrant, error) {
	if n.provider == nil {
		return api.StorageGrant{}, web.ErrStorageOff
	}
	tok, err := n.provider.p.Grant(ctx, req.QuotaMiB, req.Days)
	if err != nil {
		if errors.Is(err, storage.ErrInvalid) {
			return api.StorageGrant{}, &web.InvalidError{Msg: err.Error()}
		}
		return api.StorageGrant{}, err
	}
	g := api.StorageGrant{Token: tok, QuotaMiB: req.QuotaMiB, Days: req.Days}
	if addrs := n.net.Addrs(); len(addrs) > 0 {
		g.Provider = addrs[0]
	}
	return g, nil
}

// closeStorage stops feeding and closes the provider; Close calls it before the network closes.
func (n *Node) closeStorage() error {
	side := n.provider
	if side == nil {
		return nil
	}
	side.cancel()
	if side.unregister != nil {
		side.unregister()
	}
	side.wg.Wait()
	if side.pay != nil {
		side.pay.Close()
	}
	return side.p.Close()
}
