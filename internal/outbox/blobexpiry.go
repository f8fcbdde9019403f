package outbox

import (
	"time"

	"github.com/tanglemail/tanglemail/internal/store"
)

// BlobHolder is an optional interface of a BlobSealer: whether outbox item id (created at created) was
// sealed into a blob. Such mail cannot be delivered after its TTL, since its holders delete the blob then
// (protocol.md §13.8, sender rule 4): a recipient without a receipt by the TTL fails at once with a
// bounce (mail.BlobNotFetched), with no delay notice and no grace period.
type BlobHolder interface {
	HoldsBlob(id store.OutboxID, created time.Time) bool
}

// blobMail reports whether it was sent as blob mail (BlobHolder).
func (o *Outbox) blobMail(it *item) bool {
	bh, ok := o.blobs.(BlobHolder)
	return ok && bh.HoldsBlob(it.id, it.created)
}
