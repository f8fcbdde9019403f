package outbox

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tanglemail/tanglemail/internal/seal"
)

// A bundle is what the outbox stores as a recipient's "sealed envelope" (store.OutboxRcpt.Envelope):
// every sealed payload the recipient's copy needs, in publishing order, the main envelope last. A message
// that fits one envelope is a bundle of one; a chunked message is its chunks and then the envelope
// that completes it. The store does not interpret the bytes; only this package reads them.
//
//	bundle = 0x01 ‖ count u16 ‖ count × (length u32 ‖ payload)       (little-endian)
//
// The recipient's EnvelopeKey is the replay key (first 32 bytes) of the last payload: the key a receipt
// names.
const bundleVersion = 1

var errBundle = errors.New("outbox: corrupt stored envelope bundle")

func encodeBundle(payloads [][]byte) []byte {
	n := 3
	for _, p := range payloads {
		n += 4 + len(p)
	}
	out := make([]byte, 3, n)
	out[0] = bundleVersion
	binary.LittleEndian.PutUint16(out[1:], uint16(len(payloads)))
	for _, p := range payloads {
		out = binary.LittleEndian.AppendUint32(out, uint32(len(p)))
		out = append(out, p...)
	}
	return out
}

func decodeBundle(b []byte) ([][]byte, error) {
	if len(b) < 3 || b[0] != bundleVersion {
		return nil, errBundle
	}
	count := int(binary.LittleEndian.Uint16(b[1:]))
	b = b[3:]
	if count == 0 {
		return nil, errBundle
	}
	out := make([][]byte, 0, count)
	for range count {
		if len(b) < 4 {
			return nil, errBundle
		}
		n := int(binary.LittleEndian.Uint32(b))
		b = b[4:]
		if n < seal.MinPayload || n > seal.MaxPayload || n > len(b) {
			return nil, fmt.Errorf("%w: payload of %d bytes", errBundle, n)
		}
		out = append(out, b[:n:n])
		b = b[n:]
	}
	if len(b) != 0 {
		return nil, errBundle
	}
	return out, nil
}
