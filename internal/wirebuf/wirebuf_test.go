package wirebuf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

var errTest = errors.New("test: truncated")

// op is one read of a table case: kind names the method, n the length of Take/Copy, want the value
// (uint64 for U8..U64, []byte for Take/Copy).
type op struct {
	kind string
	n    int
	want any
}

func run(r *Reader, o op) any {
	switch o.kind {
	case "u8":
		return uint64(r.U8())
	case "u16":
		return uint64(r.U16())
	case "u32":
		return uint64(r.U32())
	case "u64":
		return r.U64()
	case "take":
		return r.Take(o.n)
	case "copy":
		return r.Copy(o.n)
	}
	panic("unknown op " + o.kind)
}

func same(a, b any) bool {
	if x, ok := a.([]byte); ok {
		y, ok := b.([]byte)
		return ok && bytes.Equal(x, y) && (x == nil) == (y == nil)
	}
	return a == b
}

func TestReader(t *testing.T) {
	in := []byte{0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f}
	cases := []struct {
		name string
		in   []byte
		ops  []op
		left int   // Len after the ops
		err  error // Err after the ops
	}{
		{"u8", in, []op{{"u8", 0, uint64(0x01)}}, 14, nil},
		{"little-endian widths", in, []op{
			{"u8", 0, uint64(0x01)},
			{"u16", 0, uint64(0x0302)},
			{"u32", 0, uint64(0x07060504)},
			{"u64", 0, uint64(0x0f0e0d0c0b0a0908)},
		}, 0, nil},
		{"take and copy", in, []op{
			{"take", 3, []byte{1, 2, 3}},
			{"copy", 2, []byte{4, 5}},
			{"take", 0, []byte{}},
			{"copy", 0, []byte(nil)},
		}, 10, nil},
		{"empty input", nil, []op{{"u8", 0, uint64(0)}}, 0, errTest},
		{"short u16", []byte{1}, []op{{"u16", 0, uint64(0)}}, 1, errTest},
		{"short u32", []byte{1, 2, 3}, []op{{"u32", 0, uint64(0)}}, 3, errTest},
		{"short u64", in[:7], []op{{"u64", 0, uint64(0)}}, 7, errTest},
		{"short take", in[:4], []op{{"take", 5, []byte(nil)}}, 4, errTest},
		{"negative take", in, []op{{"take", -1, []byte(nil)}}, 15, errTest},
		{"exact end", in[:2], []op{{"u16", 0, uint64(0x0201)}}, 0, nil},
		{"sticky: reads after a short read return zero", in[:3], []op{
			{"u8", 0, uint64(1)},
			{"u32", 0, uint64(0)}, // short: 2 bytes left
			{"u8", 0, uint64(0)},  // would fit, but the error sticks
			{"take", 1, []byte(nil)},
			{"copy", 1, []byte(nil)},
			{"take", 0, []byte(nil)},
		}, 2, errTest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := NewReader(c.in, errTest)
			for i, o := range c.ops {
				if got := run(r, o); !same(got, o.want) {
					t.Errorf("op %d %s(%d) = %#v, want %#v", i, o.kind, o.n, got, o.want)
				}
			}
			if r.Len() != c.left {
				t.Errorf("Len = %d, want %d", r.Len(), c.left)
			}
			if r.Err() != c.err {
				t.Errorf("Err = %v, want %v", r.Err(), c.err)
			}
		})
	}
}

// TestShortError: the caller's error is returned as it is (so errors.Is and == hold), and a nil one
// means ErrShort.
func TestShortError(t *testing.T) {
	wrapped := errors.Join(errTest)
	r := NewReader(nil, wrapped)
	r.U8()
	if r.Err() != wrapped || !errors.Is(r.Err(), errTest) {
		t.Errorf("Err = %v, want the caller's error", r.Err())
	}
	r = NewReader([]byte{1}, nil)
	r.U16()
	if r.Err() != ErrShort {
		t.Errorf("Err = %v, want ErrShort", r.Err())
	}
}

// TestTakeAliasesWithCappedCapacity: Take does not copy, but appending to its result cannot overwrite
// the input; Copy does not alias.
func TestTakeAliasesWithCappedCapacity(t *testing.T) {
	in := []byte{1, 2, 3, 4}
	r := NewReader(in, errTest)
	b := r.Take(2)
	if cap(b) != 2 {
		t.Errorf("cap(Take(2)) = %d, want 2", cap(b))
	}
	_ = append(b, 9)
	if in[2] != 3 {
		t.Errorf("append to Take's result overwrote the input: %v", in)
	}
	b[0] = 7
	if in[0] != 7 {
		t.Errorf("Take copied: input %v", in)
	}
	c := r.Copy(2)
	c[0] = 8
	if in[2] != 3 {
		t.Errorf("Copy aliases the input: %v", in)
	}
}

// FuzzReader runs a sequence of reads chosen by the input's own bytes over that input and checks
// each against a model: never a panic; a read that fits returns the little-endian value at the
// offset; the first read that does not fit sets the error, and every later read returns zero values
// and consumes nothing.
func FuzzReader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x00, 0x01, 0x02, 0x03})
	f.Add([]byte{0x0a, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0xfa, 0xf9, 0xf8, 0x07})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(data, errTest)
		off, failed := 0, false
		for i, op := range data {
			width := [...]int{1, 2, 4, 8, 0, 0}[op%6]
			n := int(op>>3) - 2 // Take/Copy length, -2..29
			if op%6 >= 4 {
				width = n
			}
			fits := !failed && width >= 0 && width <= len(data)-off
			var want []byte
			if fits {
				want = data[off : off+width]
			}
			var got []byte
			switch op % 6 {
			case 0:
				got = []byte{r.U8()}
			case 1:
				got = binary.LittleEndian.AppendUint16(nil, r.U16())
			case 2:
				got = binary.LittleEndian.AppendUint32(nil, r.U32())
			case 3:
				got = binary.LittleEndian.AppendUint64(nil, r.U64())
			case 4:
				got = r.Take(n)
			case 5:
				got = r.Copy(n)
			}
			if !fits && op%6 < 4 {
				want = make([]byte, width) // zero value
			}
			if !bytes.Equal(got, want) || (!fits && op%6 >= 4 && got != nil) {
				t.Fatalf("read %d (op %#x) at %d: got %x, want %x (fits %v)", i, op, off, got, want, fits)
			}
			if fits {
				off += width
			} else {
				failed = true
			}
			if r.Len() != len(data)-off {
				t.Fatalf("read %d: Len %d, want %d", i, r.Len(), len(data)-off)
			}
			if (r.Err() != nil) != failed || (failed && r.Err() != errTest) {
				t.Fatalf("read %d: Err %v, failed %v", i, r.Err(), failed)
			}
		}
	})
}
