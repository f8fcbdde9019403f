package node

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tanglemail/tanglemail/internal/api"
	"github.com/tanglemail/tanglemail/internal/blob"
	"github.com/tanglemail/tanglemail/internal/store"
)

// The sender's view of its large mail (api.BlobSend). While SealBlob runs, its progress (sealing, then
// uploading to each storage provider) lives in blobSide.sealing; afterwards it is derived from the ref
// kept in out/ and the outbox item's recipients (a receipt means the recipient fetched the blob and
// filed the mail). progMu guards sealing, own and served; it is never held while calling out.

// sendForget is how long after its blob expired a large mail whose recipients are all final stays
// listed; then its ref in out/ is deleted.
const sendForget = 24 * time.Hour

// refPath is where the ref of outbox item id's blob is kept (SealBlob).
func (b *blobSide) refPath(id store.OutboxID, created time.Time) string {
	return filepath.Join(b.dir, "out", strconv.FormatInt(int64(id), 10)+"-"+strconv.FormatInt(created.UnixMilli(), 10)+".ref")
}

// HoldsBlob is outbox.BlobHolder: whether outbox item id was sent as blob mail.
func (b *blobSide) HoldsBlob(id store.OutboxID, created time.Time) bool {
	_, err := os.Stat(b.refPath(id, created))
	return err == nil
}

// progress runs f on the live progress of outbox item id, if it is being sealed.
func (b *blobSide) progress(id store.OutboxID, f func(*api.BlobSend)) {
	b.progMu.Lock()
	if s := b.sealing[id]; s != nil {
		f(s)
	}
	b.progMu.Unlock()
}

// startSend records that outbox item id's message of size bytes is being sealed.
func (b *blobSide) startSend(id store.OutboxID, size int64) {
	b.progMu.Lock()
	b.sealing[id] = &api.BlobSend{OutboxID: int64(id), Size: uint64(max(size, 0)), Stage: "sealing",
		Providers: len(b.n.cfg.StorageProviders), Recipients: []api.BlobRecipient{}}
	b.uploading = id
	b.progMu.Unlock()
}

// endSend ends SealBlob's live progress of id: forgotten once sealed (out/ has it now); after a
// failure kept, with the error, until the outbox's next attempt (the user sees why it waits).
func (b *blobSide) endSend(id store.OutboxID, err error) {
	b.progMu.Lock()
	defer b.progMu.Unlock()
	if s := b.sealing[id]; s != nil && err != nil {
		s.Error = err.Error()
		return
	}
	delete(b.sealing, id)
}

// uploaded is blob.Client.Uploaded: chunks done of total of the blob being uploaded (one SealBlob at
// a time: b.uploading).
func (b *blobSide) uploaded(_ blob.ID, done, total int) {
	b.progMu.Lock()
	if s := b.sealing[b.uploading]; s != nil && total > 0 {
		s.Uploaded = s.Size * uint64(done) / uint64(total)
	}
	b.progMu.Unlock()
}

// chunkServed is blob.Server.Served: one chunk of blob id went to a fetcher; counted for own blobs only.
func (b *blobSide) chunkServed(id blob.ID) {
	b.progMu.Lock()
	if b.own[id] {
		b.servedBytes[id] += blob.ChunkSize
	}
	b.progMu.Unlock()
}

// countingReader counts what the sealer read into the live progress.
type countingReader struct {
	r  io.Reader
	b  *blobSide
	id store.OutboxID
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.b.progress(c.id, func(s *api.BlobSend) { s.Sealed += uint64(n) })
	return n, err
}

// sends lists the node's large mail, newest first: being sealed now, then from out/ (sendForget).
func (b *blobSide) sends(ctx context.Context) []api.BlobSend {
	out := []api.BlobSend{}
	live := map[store.OutboxID]bool{}
	b.progMu.Lock()
	for id, s := range b.sealing {
		c := *s
		c.Recipients = []api.BlobRecipient{}
		out = append(out, c)
		live[id] = true
	}
	b.progMu.Unlock()
	ents, _ := os.ReadDir(filepath.Join(b.dir, "out"))
	own := map[blob.ID]bool{}
	first := len(out)
	var ids []blob.ID // of out[first:]
	ttl := time.Duration(b.n.cfg.Network.DefaultMailTTL) * time.Second
	now := time.Now()
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".ref")
		idText, createdText, ok2 := strings.Cut(name, "-")
		n, err1 := strconv.ParseInt(idText, 10, 64)
		ms, err2 := strconv.ParseInt(createdText, 10, 64)
		if !ok || !ok2 || err1 != nil || err2 != nil || live[store.OutboxID(n)] {
			continue
		}
		path := filepath.Join(b.dir, "out", e.Name())
		enc, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		ref, err := blob.DecodeRef(enc)
		if err != nil {
			continue
		}
		it, err := b.n.mail.OutboxItem(ctx, store.OutboxID(n))
		if errors.Is(err, store.ErrNoOutboxItem) || (err == nil && it.Created.UnixMilli() != ms) {
			os.Remove(path) // its item is gone (outbox ids are never reused)
			continue
		}
		if err != nil {
			continue
		}
		s := b.send(ctx, it, ref)
		deadline := it.Created.Add(ttl)
		if s.Stage == "done" && now.After(deadline.Add(sendForget)) {
			os.Remove(path)
			continue
		}
		s.Expires = deadline.UTC().Format(time.RFC3339)
		own[ref.ID] = true
		out = append(out, s)
		ids = append(ids, ref.ID)
	}
	b.progMu.Lock()
	for i, id := range ids {
		out[first+i].Served = b.servedBytes[id]
	}
	b.own = own
	for id := range b.servedBytes {
		if !own[id] {
			delete(b.servedBytes, id)
		}
	}
	b.progMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].OutboxID > out[j].OutboxID })
	return out
}

// send is the state of a sealed large mail from its outbox item.
func (b *blobSide) send(ctx context.Context, it store.OutboxItem, ref blob.Ref) api.BlobSend {
	s := api.BlobSend{OutboxID: int64(it.ID), Size: ref.Size, Sealed: ref.Size, Uploaded: ref.Size, Recipients: []api.BlobRecipient{}}
	for _, h := range ref.Holders {
		if !h.Sender {
			s.Providers++
		}
	}
	s.ProvidersDone = s.Providers
	if it.SentMailboxID != 0 {
		if hdr, err := b.n.mail.RawHeader(ctx, it.SentMailboxID, it.SentUID); err == nil {
			s.Subject = sanitize(store.ParseHeader(hdr).Get("Subject"))
		}
	}
	queued, offered := false, false
	for _, r := range it.Rcpts {
		br := api.BlobRecipient{Address: r.Rcpt}
		switch r.State {
		case store.RcptPending, store.RcptSealed:
			br.State, queued = "queued", true
		case store.RcptPublished, store.RcptDelayed:
			br.State, offered = "offered", true
		case store.RcptDelivered:
			br.State = "fetched"
		default:
			br.State, br.Error = "failed", r.LastError
		}
		s.Recipients = append(s.Recipients, br)
	}
	switch {
	case queued:
		s.Stage = "sending"
	case offered:
		s.Stage = "offered"
	default:
		s.Stage = "done"
	}
	return s
}

// BlobSends is GET /api/blobs/sent (web.Blobs).
func (n *Node) BlobSends(ctx context.Context) ([]api.BlobSend, error) {
	if n.blobs == nil {
		return []api.BlobSend{}, nil
	}
	return n.blobs.sends(ctx), nil
}
