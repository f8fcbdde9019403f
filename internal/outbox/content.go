package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/tanglemail/tanglemail/internal/mail"
	"github.com/tanglemail/tanglemail/internal/seal"
	"github.com/tanglemail/tanglemail/internal/store"
)

// kindOf says how an outbox item travels: an item with a chat content (store.OutboxNew.Content, which
// the chat layer sets) is chat (kind 2, short TTL), anything else is mail (kind 1).
func kindOf(content []byte) seal.Kind {
	if content != nil {
		return seal.KindChat
	}
	return seal.KindMail
}

// ttlOf is the TTL of the blocks of a kind, and so also how long a recipient waits for its receipt.
func (o *Outbox) ttlOf(k seal.Kind) uint32 {
	if k == seal.KindChat {
		return o.params.DefaultChatTTL
	}
	return o.params.DefaultMailTTL
}

// BlobSealer stores a large message as one sealed blob (package blob, protocol.md §13.7); the node
// implements it. SealBlob returns the encoded ref (§13.2) of the blob holding msg (read to EOF, unless the
// item's blob exists already), kept at least until expires: the same ref for every call with the same outbox item (id and created: an id alone may be
// reused after its item is deleted), so all recipients share one blob, also across restarts. It
// returns only once the blob is durable.
type BlobSealer interface {
	SealBlob(ctx context.Context, id store.OutboxID, created time.Time, msg io.Reader, expires time.Time) ([]byte, error)
}

type part struct {
	kind    seal.Kind
	content []byte
}

// parts turns a message into the envelope contents that carry it, the main envelope last
// (protocol.md §10.1): mail is the message without Bcc, inline, or chunks and then their manifest;
// chat is the item's chat content (protocol.md §10.3), in one envelope. Every
// recipient gets the same contents; the chunked form's message id is derived from the sender's key and
// the outbox item, so it is the same for every recipient even when they are sealed at different times
// or by a restarted process, and unpredictable to anyone else.
func (o *Outbox) parts(ctx context.Context, it *item) ([]part, *mail.Reason, error) {
	if it.kind == seal.KindChat {
		if len(it.content) > seal.MaxContent {
			r := mail.TooLarge(int64(len(it.content)), seal.MaxContent)
			r.Text = "chat " + r.Text
			return nil, &r, nil
		}
		return []part{{seal.KindChat, it.content}}, nil, nil
	}
	if it.large {
		// Only the header is in memory (item): the blob is sealed from the store's reader.
		br, err := o.st.OutboxReader(ctx, it.id)
		if err != nil {
			return nil, nil, err
		}
		hdr := mail.StripBcc(br.Header())
		size := int64(len(hdr)) + br.Size() - int64(len(br.Header()))
		if 1+size > seal.MaxContent && !o.prepares(it, size) {
			if size > mail.MaxMessageSize {
				r := mail.TooLarge(size, mail.MaxMessageSize)
				return nil, &r, nil
			}
			return o.blobParts(ctx, it, io.MultiReader(bytes.NewReader(hdr), br.Text()), hdr)
		}
		// Small once Bcc is removed: the in-memory forms below.
		if it.raw, err = o.st.OutboxRaw(ctx, it.id); err != nil {
			return nil, nil, err
		}
		it.large = false
	}
	content := mail.StripBcc(it.raw)
	if o.prepares(it, int64(len(content))) {
		p, err := o.prepare(ctx, it.rcpts, content)
		if err != nil {
			return nil, nil, fmt.Errorf("preparing the relay message: %w", err)
		}
		content = p.Message
		if p.Encrypted {
			if err := o.st.MarkSentCopy(ctx, it.id, store.E2EKeyword, nil); err != nil {
				return nil, nil, fmt.Errorf("marking the Sent copy encrypted: %w", err)
			}
		}
	}
	if o.blobs != nil && 1+len(content) > seal.MaxContent {
		if len(content) > mail.MaxMessageSize {
			r := mail.TooLarge(int64(len(content)), mail.MaxMessageSize)
			return nil, &r, nil
		}
		return o.blobParts(ctx, it, bytes.NewReader(content), content)
	}
	mc, chunks, err := mail.SplitID(content, seal.MaxContent, o.messageID(it))
	if err != nil {
		r := mail.TooLarge(int64(len(content)), mail.MaxMessageSize)
		return nil, &r, nil
	}
	out := make([]part, 0, len(chunks)+1)
	for _, c := range chunks {
		out = append(out, part{seal.KindChunk, c})
	}
	return append(out, part{seal.KindMail, mc}), nil, nil
}

// prepares reports whether Config.PrepareRelay rewrites the item (a relay message of size bytes).
func (o *Outbox) prepares(it *item, size int64) bool {
	return o.prepare != nil && it.kind == seal.KindMail && mail.IsRelay(it.raw) && size <= o.prepareMax
}

// blobParts seals msg, the message without Bcc, into the item's blob and returns the mail envelope
// that carries its ref and, when it fits, a copy of the header section (of hdr, the message's start)
// for a notice (protocol.md §13.7): the whole message goes into one blob for every recipient.
func (o *Outbox) blobParts(ctx context.Context, it *item, msg io.Reader, hdr []byte) ([]part, *mail.Reason, error) {
	ref, err := o.blobs.SealBlob(ctx, it.id, it.created, msg, it.deadline)
	if err != nil {
		return nil, nil, fmt.Errorf("sealing the blob: %w", err)
	}
	hdr = mail.HeaderSection(hdr)
	if 3+len(ref)+len(hdr) > seal.MaxContent {
		hdr = nil
	}
	mc, err := mail.EncodeBlob(ref, hdr)
	if err != nil {
		return nil, nil, err
	}
	return []part{{seal.KindMail, mc}}, nil, nil
}

// messageID is the chunked form's message id for an outbox item: a MAC of the item under a key only
// this identity has, indistinguishable from the fresh random id protocol.md §10.1 asks for.
func (o *Outbox) messageID(it *item) [mail.IDSize]byte {
	key := blake2b.Sum256(append([]byte("tanglemail/outbox/message-id"), o.id.Seed()...))
	h, _ := blake2b.New256(key[:])
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], uint64(it.id))
	binary.LittleEndian.PutUint64(b[8:], uint64(it.created.UnixMilli()))
	h.Write(b[:])
	var id [mail.IDSize]byte
	copy(id[:], h.Sum(nil))
	return id
}
