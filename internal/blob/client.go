package blob

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/tanglemail/tanglemail/internal/p2p"
)

// Dialer is what Client needs of the network. *p2p.ClientHost has it; NodeDialer adapts a *p2p.Node.
type Dialer interface {
	Connect(ctx context.Context, ai peer.AddrInfo) error
	OpenStream(ctx context.Context, p peer.ID, proto string) (p2p.Stream, error)
}

// NodeDialer adapts a full node to Dialer.
func NodeDialer(n *p2p.Node) Dialer { return nodeDialer{n} }

type nodeDialer struct{ n *p2p.Node }

func (d nodeDialer) Connect(ctx context.Context, ai peer.AddrInfo) error {
	return d.n.Host().Connect(ctx, ai)
}

func (d nodeDialer) OpenStream(ctx context.Context, p peer.ID, proto string) (p2p.Stream, error) {
	return d.n.OpenStream(ctx, p, proto)
}

// Via says how a route reaches a holder.
type Via uint8

// Route kinds (§13.5).
const (
	Direct  Via = iota // dial the holder's own addresses
	Relayed            // through a circuit relay the recipient chose; the holder never learns its address
)

// Route is one way to reach one holder.
type Route struct {
	Peer  peer.ID
	Addrs []ma.Multiaddr // Direct: the holder's; Relayed: <relay>/p2p/<relay id>/p2p-circuit
	Via   Via
}

func (r Route) String() string {
	if r.Via == Relayed {
		return "holder " + r.Peer.ShortString() + " via relay"
	}
	return "holder " + r.Peer.ShortString()
}

// Plan lists the routes a recipient may use to fetch ref (§13.5), best first. A holder whose peer id
// is in trusted (the recipient's own storage/public nodes) is dialled directly. Every other holder is
// dialled directly only when the sender is one of the recipient's contacts; for a stranger's mail it is
// reached only through the relays given (the recipient's own providers), so the stranger's nodes never
// learn the recipient's address, whatever the ref claims about which holder is the sender's.
func Plan(ref Ref, contact bool, trusted map[peer.ID]bool, relays []peer.AddrInfo) []Route {
	var first, rest []Route
	for _, h := range ref.Holders {
		switch {
		case trusted[h.Peer]:
			first = append(first, Route{Peer: h.Peer, Addrs: h.Addrs, Via: Direct})
		case contact:
			rest = append(rest, Route{Peer: h.Peer, Addrs: h.Addrs, Via: Direct})
		default:
			for _, rl := range relays {
				if rl.ID == h.Peer {
					continue
				}
				var addrs []ma.Multiaddr
				for _, a := range rl.Addrs {
					c, err := ma.NewMultiaddr(a.String() + "/p2p/" + rl.ID.String() + "/p2p-circuit")
					if err == nil {
						addrs = append(addrs, c)
					}
				}
				if len(addrs) > 0 {
					rest = append(rest, Route{Peer: h.Peer, Addrs: addrs, Via: Relayed})
				}
			}
		}
	}
	return append(first, rest...)
}

// Client fetches blobs into its Store and uploads blobs from it.
type Client struct {
	Net   Dialer
	Store *Store
	Proto string // Protocol(p2p.ProtocolPrefix(netID))
	// Batch is the number of chunks per get-chunks request, made durable together (default 64, 4 MiB).
	Batch int
	// Attempts per route before moving to the next (default 3); an attempt after a broken stream
	// resumes from the chunks already durable.
	Attempts int
	// Timeout bounds the silence on a stream (default 30 s).
	Timeout time.Duration
	Metrics *Metrics
	// Uploaded, if set, is called by Put after each chunk it wrote: chunks of blob id up to index done
	// (exclusive) are with the provider or on their way, of total (the sender's progress display).
	Uploaded func(id ID, done, total int)
}

func (c *Client) metrics() *Metrics {
	if c.Metrics == nil {
		c.Metrics = &Metrics{}
	}
	return c.Metrics
}

func (c *Client) timeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return 30 * time.Second
}

// Fetch makes the blob of ref complete and durable in the store (kept until expires), pulling it over
// routes in order: it checks the manifest against the id and the size against the ref (a holder cannot
// make it download more than the ref says), writes only chunks whose hash matches, resumes after a
// broken stream from what is durable, and leaves a holder at its first bad chunk for the next route.
func (c *Client) Fetch(ctx context.Context, ref Ref, routes []Route, expires time.Time) error {
	if ref.Size > MaxSize {
		return ErrTooLarge
	}
	if c.Store.Complete(ref.ID) {
		return c.Store.Extend(ref.ID, expires)
	}
	m := c.metrics()
	attempts := c.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	var errs []error
	tried := false
	for _, r := range routes {
		for a := 0; a < attempts; a++ {
			if tried {
				m.Retries.Add(1)
			}
			tried = true
			err := c.fetchFrom(ctx, ref, r, expires)
			if err == nil {
				m.Fetches.Add(1)
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			errs = append(errs, fmt.Errorf("%s: %w", r, err))
			var re *Error
			if errors.Is(err, ErrAuth) || errors.As(err, &re) || errors.Is(err, errBadManifest) {
				break // this holder will not do better: next route
			}
			select {
			case <-time.After(time.Duration(100<<a) * time.Millisecond):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	m.FetchFailures.Add(1)
	if len(routes) == 0 {
		return errors.New("blob: no route to any holder")
	}
	return fmt.Errorf("blob: fetch failed on every route: %w", errors.Join(errs...))
}

var errBadManifest = errors.New("blob: holder sent a manifest that does not match the ref")

func (c *Client) open(ctx context.Context, r Route) (p2p.Stream, error) {
	if len(r.Addrs) > 0 {
		if err := c.Net.Connect(ctx, peer.AddrInfo{ID: r.Peer, Addrs: r.Addrs}); err != nil {
			return nil, err
		}
	}
	return c.Net.OpenStream(ctx, r.Peer, c.Proto)
}

// session opens a stream to r that ctx's end resets. The caller defers end(&err): it closes the
// stream, or resets it when *err is not nil.
func (c *Client) session(ctx context.Context, r Route) (st p2p.Stream, end func(*error), err error) {
	st, err = c.open(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { st.Reset() })
	return st, func(err *error) {
		stop()
		if *err != nil {
			st.Reset()
		} else {
			st.Close()
		}
	}, nil
}

func (c *Client) fetchFrom(ctx context.Context, ref Ref, r Route, expires time.Time) (err error) {
	st, end, err := c.session(ctx, r)
	if err != nil {
		return err
	}
	defer end(&err)
	br := bufio.NewReaderSize(st, 128<<10)
	bw := bufio.NewWriterSize(st, 4<<10)
	var buf []byte
	if _, ok := c.Store.Manifest(ref.ID); !ok {
		st.SetDeadline(time.Now().Add(c.timeout()))
		if err := writeFrame(bw, tGetManifest, ref.ID[:]); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		typ, body, nb, err := readFrame(br, buf)
		buf = nb
		if err != nil {
			return err
		}
		if typ != tManifest {
			return fmt.Errorf("blob: frame %#x, want a manifest", typ)
		}
		man, err := DecodeManifest(body)
		if err != nil || man.ID() != ref.ID || man.Size != ref.Size {
			return errBadManifest
		}
		if err := c.Store.Begin(man, expires); err != nil {
			return err
		}
	}
	missing, err := c.Store.Missing(ref.ID)
	if err != nil {
		return err
	}
	batch := c.Batch
	if batch <= 0 {
		batch = 64
	}
	// Ranges of contiguous missing chunks, at most batch each; all requested at once, so the holder
	// streams without a round trip between ranges.
	type rng struct{ first, count int }
	var ranges []rng
	for _, i := range missing {
		if n := len(ranges); n > 0 && ranges[n-1].first+ranges[n-1].count == i && ranges[n-1].count < batch {
			ranges[n-1].count++
		} else {
			ranges = append(ranges, rng{i, 1})
		}
	}
	st.SetDeadline(time.Now().Add(c.timeout()))
	for _, g := range ranges {
		if err := writeFrame(bw, tGetChunks, ref.ID[:], le32(uint32(g.first)), le32(uint32(g.count))); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	m := c.metrics()
	for _, g := range ranges {
		for i := g.first; i < g.first+g.count; i++ {
			st.SetDeadline(time.Now().Add(c.timeout()))
			typ, body, nb, err := readFrame(br, buf)
			buf = nb
			if err != nil {
				c.Store.Sync(ref.ID) // keep what arrived for the next attempt
				return err
			}
			if typ != tChunk || len(body) < 4 || int(binary.LittleEndian.Uint32(body)) != i {
				c.Store.Sync(ref.ID)
				return fmt.Errorf("blob: unexpected frame %#x for chunk %d", typ, i)
			}
			if err := c.Store.WriteChunk(ref.ID, i, body[4:]); err != nil {
				if errors.Is(err, ErrAuth) {
					m.BadChunks.Add(1)
				}
				c.Store.Sync(ref.ID)
				return fmt.Errorf("chunk %d: %w", i, err)
			}
			m.ChunksFetched.Add(1)
		}
		if _, err := c.Store.Sync(ref.ID); err != nil {
			return err
		}
	}
	done, err := c.Store.Sync(ref.ID)
	if err != nil {
		return err
	}
	if !done {
		return errors.New("blob: incomplete after every range")
	}
	return nil
}

// Put uploads a complete blob from the store to a provider (route r), to be kept for ttl, and returns
// once the provider acknowledged it durable. Chunks the provider already holds are not sent again.
func (c *Client) Put(ctx context.Context, r Route, id ID, ttl time.Duration) (err error) {
	man, ok := c.Store.Manifest(id)
	if !ok || !c.Store.Complete(id) {
		return ErrNotFound
	}
	st, end, err := c.session(ctx, r)
	if err != nil {
		return err
	}
	defer end(&err)
	br := bufio.NewReaderSize(st, 4<<10)
	bw := bufio.NewWriterSize(st, 128<<10)
	secs := min(ttl/time.Second, 1<<32-1)
	st.SetDeadline(time.Now().Add(c.timeout()))
	if err := writeFrame(bw, tPut, id[:], le32(uint32(secs)), man.Encode()); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	typ, have, _, err := readFrame(br, nil)
	if err != nil {
		return err
	}
	if typ != tPutReady || len(have) != (len(man.Hashes)+7)/8 {
		return fmt.Errorf("blob: frame %#x, want put-ready", typ)
	}
	var cbuf []byte
	for i := range man.Hashes {
		if bit(have, i) {
			continue
		}
		cb, err := c.Store.ReadChunk(id, i, cbuf)
		if err != nil {
			return err
		}
		cbuf = cb
		st.SetDeadline(time.Now().Add(c.timeout()))
		if err := writeFrame(bw, tChunk, le32(uint32(i)), cb); err != nil {
			return err
		}
		if c.Uploaded != nil {
			c.Uploaded(id, i+1, len(man.Hashes))
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	st.SetDeadline(time.Now().Add(c.timeout()))
	typ, body, _, err := readFrame(br, nil)
	if err != nil {
		return err
	}
	if typ != tStored || len(body) != 32 || ID(body) != id {
		return fmt.Errorf("blob: frame %#x, want stored", typ)
	}
	c.metrics().PutsSent.Add(1)
	return nil
}
