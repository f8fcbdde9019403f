package wire

import (
	"bytes"
	"reflect"
	"testing"
)

// FuzzDecode: any frame body decodes to a message or a clear error, never a panic; a decoded message
// encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	for _, m := range sampleMsgs() {
		b, _ := Encode(m)
		f.Add(b[4:])
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		m, err := Decode(frame)
		if err != nil {
			return
		}
		b, err := Encode(m)
		if err != nil {
			t.Fatalf("decoded %T does not encode: %v", m, err)
		}
		if !bytes.Equal(b[4:], frame) {
			t.Fatalf("%T: re-encoded %x, want %x", m, b[4:], frame)
		}
		m2, err := Decode(b[4:])
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("%T: second decode %v", m, err)
		}
	})
}

// FuzzReadMsg: any byte stream yields messages or an error, within the frame bound.
func FuzzReadMsg(f *testing.F) {
	for _, m := range sampleMsgs() {
		b, _ := Encode(m)
		f.Add(b)
	}
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{0x00, 0x00, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for range 64 {
			if _, err := ReadMsg(r); err != nil {
				return
			}
		}
	})
}
