package blob

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame types of <prefix>/blob/1 (protocol.md §13.3).
const (
	tGetManifest = 0x01
	tGetChunks   = 0x02
	tPut         = 0x03
	tChunk       = 0x04
	tManifest    = 0x81
	tPutReady    = 0x83
	tStored      = 0x84
	tError       = 0x7f
)

// maxFrame bounds a frame's type ‖ body: the largest is a chunk frame.
const maxFrame = 1 + 4 + SealedChunkSize

// Protocol is the blob protocol id under a network's stream prefix (p2p.ProtocolPrefix).
func Protocol(prefix string) string { return prefix + "/blob/1" }

// Code is an error frame's code.
type Code uint8

// Error codes (§13.3).
const (
	CodeUnauthorized Code = 1
	CodeNotFound     Code = 2
	CodeMalformed    Code = 3
	CodeQuotaFull    Code = 4
	CodeBadChunk     Code = 5
	CodeInternal     Code = 6
)

var codeNames = map[Code]string{CodeUnauthorized: "unauthorized", CodeNotFound: "not found",
	CodeMalformed: "malformed", CodeQuotaFull: "quota full", CodeBadChunk: "bad chunk", CodeInternal: "internal"}

// Error is an error frame from the remote side.
type Error struct {
	Code Code
	Msg  string
}

func (e *Error) Error() string {
	name, ok := codeNames[e.Code]
	if !ok {
		name = fmt.Sprintf("code %d", e.Code)
	}
	if e.Msg == "" {
		return "blob: remote: " + name
	}
	return "blob: remote: " + name + ": " + e.Msg
}

const maxErrMsg = 256

func writeFrame(w *bufio.Writer, typ byte, parts ...[]byte) error {
	n := 1
	for _, p := range parts {
		n += len(p)
	}
	if n > maxFrame {
		return errors.New("blob: frame too large")
	}
	var hdr [5]byte
	binary.LittleEndian.PutUint32(hdr[:4], uint32(n))
	hdr[4] = typ
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return nil
}

func writeError(w *bufio.Writer, code Code, msg string) error {
	if len(msg) > maxErrMsg {
		msg = msg[:maxErrMsg]
	}
	if err := writeFrame(w, tError, []byte{byte(code)}, []byte(msg)); err != nil {
		return err
	}
	return w.Flush()
}

// readFrame reads one frame into buf (grown up to maxFrame) and returns its type and body. An error
// frame is returned as *Error.
func readFrame(r *bufio.Reader, buf []byte) (byte, []byte, []byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return 0, nil, buf, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n < 1 || n > maxFrame {
		return 0, nil, buf, fmt.Errorf("blob: frame length %d out of bounds", n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, buf, err
	}
	typ, body := buf[0], buf[1:]
	if typ == tError {
		if len(body) < 1 || len(body) > 1+maxErrMsg {
			return 0, nil, buf, errors.New("blob: malformed error frame")
		}
		return typ, nil, buf, &Error{Code: Code(body[0]), Msg: string(body[1:])}
	}
	return typ, body, buf, nil
}

func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
