package outbox

import (
	"context"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/p2p"
	"github.com/tanglemail/tanglemail/internal/seal"
)

// SendNote seals content as a chat envelope (kind 2) from the outbox's identity to `to` and publishes
// it at once in a block with the given TTL, keeping nothing: for notices whose loss loses nothing, the
// typing and read notices of protocol.md §10.3. Nothing retries it; with no peers it fails with
// p2p.ErrNoPeers. It blocks for the block's proof of work (tens of milliseconds for a small note).
func (o *Outbox) SendNote(ctx context.Context, to identity.Address, content []byte, ttl uint32) error {
	if o.pub.PeerCount() == 0 {
		return p2p.ErrNoPeers
	}
	payload, err := seal.Seal(o.id, to, o.params.ID, seal.KindChat, o.now(), content)
	if err != nil {
		return err
	}
	job := &Job{Rcpt: to.Mail(), Kind: seal.KindChat, Block: 1, Blocks: 1}
	if _, err := o.publishPayload(ctx, job, to, payload, ttl); err != nil {
		return err
	}
	o.c.notesSent.Add(1)
	return nil
}
