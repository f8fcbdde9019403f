package blob

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/tanglemail/tanglemail/internal/p2p"
)

// Op is what a request wants of a holder.
type Op uint8

// Operations passed to Authorize.
const (
	OpGet Op = iota + 1 // get-manifest and get-chunks
	OpPut               // upload
)

// Request is what Authorize decides on.
type Request struct {
	Peer peer.ID
	Op   Op
	ID   ID
	Size uint64 // plaintext size (puts: from the manifest; gets: of the stored blob)
	// Expires is how long a put's blob is to be kept (its TTL, capped at MaxTTL); zero for gets.
	Expires time.Time
}

// Server answers <prefix>/blob/1 streams from its Store (protocol.md §13.3). The zero Authorize
// serves gets of complete blobs to anyone who knows the id and refuses every put.
type Server struct {
	Store *Store
	// Authorize is asked before every request; a non-nil error refuses it with an unauthorized frame
	// (a quota-full frame when it wraps ErrBudget: a put over the uploader's quota).
	Authorize func(ctx context.Context, r Request) error
	// MaxTTL caps the expiry a put may ask for (default 28 days, the maximum block TTL).
	MaxTTL time.Duration
	// IdleTimeout closes a stream that sends nothing for this long (default 60 s).
	IdleTimeout time.Duration
	Metrics     *Metrics
	// Served, if set, is called after each chunk of blob id was sent (the sender's progress display).
	// It runs on the serving goroutine: keep it quick.
	Served func(id ID)
	// ResetAfter, when > 0, ends each stream after serving that many chunks (tests: a broken link).
	ResetAfter int
}

func (s *Server) idle() time.Duration {
	if s.IdleTimeout > 0 {
		return s.IdleTimeout
	}
	return 60 * time.Second
}

func (s *Server) metrics() *Metrics {
	if s.Metrics == nil {
		s.Metrics = &Metrics{}
	}
	return s.Metrics
}

func (s *Server) authorize(ctx context.Context, r Request) error {
	if s.Authorize == nil {
		if r.Op == OpGet {
			return nil
		}
		return errors.New("this node accepts no uploads")
	}
	return s.Authorize(ctx, r)
}

// Stream is what Server needs of a stream (p2p.Stream has it).
type Stream interface {
	io.ReadWriteCloser
	Reset() error
	SetDeadline(time.Time) error
	RemotePeer() peer.ID
}

var _ Stream = p2p.Stream(nil)

// Serve answers requests on st until the peer closes it, an error, or the idle timeout. It owns st.
func (s *Server) Serve(st Stream) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := s.metrics()
	br := bufio.NewReaderSize(st, 64<<10)
	bw := bufio.NewWriterSize(st, 64<<10)
	var buf, cbuf []byte
	served := 0
	refuse := func(code Code, msg string) {
		m.Refused.Add(1)
		writeError(bw, code, msg)
		st.Close()
	}
	for {
		st.SetDeadline(time.Now().Add(s.idle()))
		typ, body, nb, err := readFrame(br, buf)
		buf = nb
		if err != nil {
			if errors.Is(err, io.EOF) {
				st.Close()
			} else {
				st.Reset()
			}
			return
		}
		switch typ {
		case tGetManifest:
			if len(body) != 32 {
				refuse(CodeMalformed, "get-manifest is 32 bytes")
				return
			}
			id := ID(body)
			man, ok := s.Store.Manifest(id)
			if !ok || !s.Store.Complete(id) {
				refuse(CodeNotFound, "")
				return
			}
			if err := s.authorize(ctx, Request{Peer: st.RemotePeer(), Op: OpGet, ID: id, Size: man.Size}); err != nil {
				refuse(CodeUnauthorized, err.Error())
				return
			}
			if writeFrame(bw, tManifest, man.Encode()) != nil || bw.Flush() != nil {
				st.Reset()
				return
			}
		case tGetChunks:
			if len(body) != 40 {
				refuse(CodeMalformed, "get-chunks is 40 bytes")
				return
			}
			id := ID(body[:32])
			first, count := int(binary.LittleEndian.Uint32(body[32:])), int(binary.LittleEndian.Uint32(body[36:]))
			man, ok := s.Store.Manifest(id)
			if !ok || !s.Store.Complete(id) {
				refuse(CodeNotFound, "")
				return
			}
			n := len(man.Hashes)
			if count < 1 || first >= n || count > n-first {
				refuse(CodeMalformed, "chunk range out of bounds")
				return
			}
			if err := s.authorize(ctx, Request{Peer: st.RemotePeer(), Op: OpGet, ID: id, Size: man.Size}); err != nil {
				refuse(CodeUnauthorized, err.Error())
				return
			}
			for i := first; i < first+count; i++ {
				if s.ResetAfter > 0 && served >= s.ResetAfter {
					// Close, not Reset: the chunks already sent arrive, then the stream ends
					// mid-range, so a test sees the same break on a loaded machine.
					bw.Flush()
					st.Close()
					return
				}
				c, err := s.Store.ReadChunk(id, i, cbuf)
				if err != nil {
					refuse(CodeInternal, "reading the blob failed")
					return
				}
				cbuf = c
				st.SetDeadline(time.Now().Add(s.idle()))
				if writeFrame(bw, tChunk, le32(uint32(i)), c) != nil {
					st.Reset()
					return
				}
				served++
				m.ChunksServed.Add(1)
				if s.Served != nil {
					s.Served(id)
				}
			}
			if bw.Flush() != nil {
				st.Reset()
				return
			}
		case tPut:
			if !s.servePut(ctx, st, br, bw, body) {
				return
			}
		default:
			refuse(CodeMalformed, "unknown frame type")
			return
		}
	}
}

// servePut handles one upload; it reports whether the stream may go on.
func (s *Server) servePut(ctx context.Context, st Stream, br *bufio.Reader, bw *bufio.Writer, body []byte) bool {
	m := s.metrics()
	refuse := func(code Code, msg string) bool {
		m.Refused.Add(1)
		writeError(bw, code, msg)
		st.Close()
		return false
	}
	if len(body) < 36 {
		return refuse(CodeMalformed, "put too short")
	}
	id := ID(body[:32])
	ttl := time.Duration(binary.LittleEndian.Uint32(body[32:36])) * time.Second
	man, err := DecodeManifest(body[36:])
	if err != nil || man.ID() != id {
		return refuse(CodeMalformed, "manifest does not match the id")
	}
	maxTTL := s.MaxTTL
	if maxTTL <= 0 {
		maxTTL = 28 * 24 * time.Hour
	}
	if ttl > maxTTL {
		ttl = maxTTL
	}
	expires := time.Now().Add(ttl)
	if err := s.authorize(ctx, Request{Peer: st.RemotePeer(), Op: OpPut, ID: id, Size: man.Size, Expires: expires}); err != nil {
		if errors.Is(err, ErrBudget) {
			return refuse(CodeQuotaFull, err.Error()) // the uploader's quota, say how far
		}
		return refuse(CodeUnauthorized, err.Error())
	}
	if err := s.Store.Begin(man, expires); err != nil {
		if errors.Is(err, ErrBudget) {
			return refuse(CodeQuotaFull, "")
		}
		return refuse(CodeInternal, "")
	}
	have, err := s.Store.Have(id)
	if err != nil {
		return refuse(CodeInternal, "")
	}
	missing, _ := s.Store.Missing(id)
	need := make(map[int]bool, len(missing))
	for _, i := range missing {
		need[i] = true
	}
	if writeFrame(bw, tPutReady, have) != nil || bw.Flush() != nil {
		st.Reset()
		return false
	}
	var buf []byte
	sinceSync := 0
	for len(need) > 0 {
		st.SetDeadline(time.Now().Add(s.idle()))
		typ, cb, nb, err := readFrame(br, buf)
		buf = nb
		if err != nil {
			s.Store.Sync(id) // keep what arrived: the uploader resumes from it
			st.Reset()
			return false
		}
		if typ != tChunk || len(cb) < 4 {
			s.Store.Sync(id)
			return refuse(CodeMalformed, "expected a chunk")
		}
		i := int(binary.LittleEndian.Uint32(cb))
		if err := s.Store.WriteChunk(id, i, cb[4:]); err != nil {
			s.Store.Sync(id)
			if errors.Is(err, ErrAuth) {
				return refuse(CodeBadChunk, "")
			}
			return refuse(CodeMalformed, "chunk out of range")
		}
		delete(need, i)
		if sinceSync++; sinceSync == 64 {
			sinceSync = 0
			if _, err := s.Store.Sync(id); err != nil {
				return refuse(CodeInternal, "")
			}
		}
	}
	done, err := s.Store.Sync(id)
	if err != nil || !done {
		return refuse(CodeInternal, "")
	}
	m.PutsStored.Add(1)
	if writeFrame(bw, tStored, id[:]) != nil || bw.Flush() != nil {
		st.Reset()
		return false
	}
	return true
}
