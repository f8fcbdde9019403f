package identity

import "fmt"

// bech32m (BIP-350), the checksum variant of bech32 (BIP-173) with constant 0x2bc830a3. Only what
// addresses need: encoding of 5-bit groups, decoding with all BIP-173 §"Bech32" structural rules,
// and 8↔5-bit regrouping. Nothing here panics on any input.

const (
	bech32Charset  = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
	bech32mConst   = 0x2bc830a3 // BIP-350
	bech32Const    = 1          // BIP-173, recognised only to give a precise error
	bech32MaxLen   = 90         // BIP-173: overall length limit
	bech32Checksum = 6          // checksum characters
)

// bech32Rev maps an ASCII byte to its 5-bit value, or -1.
var bech32Rev = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := 0; i < len(bech32Charset); i++ {
		t[bech32Charset[i]] = int8(i)
	}
	return t
}()

var bech32Gen = [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}

func polymodStep(chk uint32, v byte) uint32 {
	b := chk >> 25
	chk = (chk&0x1ffffff)<<5 ^ uint32(v)
	for i := range 5 {
		if (b>>uint(i))&1 == 1 {
			chk ^= bech32Gen[i]
		}
	}
	return chk
}

// hrpPolymod feeds the expanded human-readable part (BIP-173 hrp_expand) into the checksum.
func hrpPolymod(hrp string) uint32 {
	chk := uint32(1)
	for i := 0; i < len(hrp); i++ {
		chk = polymodStep(chk, hrp[i]>>5)
	}
	chk = polymodStep(chk, 0)
	for i := 0; i < len(hrp); i++ {
		chk = polymodStep(chk, hrp[i]&31)
	}
	return chk
}

// bech32mEncode encodes a lower-case hrp and 5-bit groups (each < 32) as a bech32m string.
func bech32mEncode(hrp string, data5 []byte) string {
	out := make([]byte, 0, len(hrp)+1+len(data5)+bech32Checksum)
	out = append(out, hrp...)
	out = append(out, '1')
	chk := hrpPolymod(hrp)
	for _, v := range data5 {
		chk = polymodStep(chk, v)
		out = append(out, bech32Charset[v&31])
	}
	for range bech32Checksum {
		chk = polymodStep(chk, 0)
	}
	chk ^= bech32mConst
	for i := range bech32Checksum {
		out = append(out, bech32Charset[(chk>>uint(5*(5-i)))&31])
	}
	return string(out)
}

// bech32mDecode parses s and verifies its bech32m checksum. If wantHRP is not empty, a different
// human-readable part is rejected with ErrPrefix before the checksum is looked at. It returns the
// lower-case hrp and the 5-bit data groups without the checksum.
func bech32mDecode(s, wantHRP string) (hrp string, data5 []byte, err error) {
	if len(s) > bech32MaxLen {
		return "", nil, fmt.Errorf("%w: %d characters, more than the bech32 limit of %d", ErrDataLength, len(s), bech32MaxLen)
	}
	var lower, upper bool
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c < 33 || c > 126:
			return "", nil, fmt.Errorf("%w: byte 0x%02x at position %d", ErrCharacter, c, i)
		case 'a' <= c && c <= 'z':
			lower = true
		case 'A' <= c && c <= 'Z':
			upper = true
		}
	}
	if lower && upper {
		return "", nil, fmt.Errorf("%w: mixed upper and lower case", ErrCharacter)
	}
	b := []byte(s)
	if upper {
		for i, c := range b {
			if 'A' <= c && c <= 'Z' {
				b[i] = c + ('a' - 'A')
			}
		}
	}
	sep := -1
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] == '1' {
			sep = i
			break
		}
	}
	if sep < 0 {
		return "", nil, fmt.Errorf("%w: no separator '1'", ErrPrefix)
	}
	if sep == 0 {
		return "", nil, fmt.Errorf("%w: empty human-readable part", ErrPrefix)
	}
	hrp = string(b[:sep])
	if wantHRP != "" && hrp != wantHRP {
		return "", nil, fmt.Errorf("%w: want %q", ErrPrefix, wantHRP+"1")
	}
	rest := b[sep+1:]
	if len(rest) < bech32Checksum {
		return "", nil, fmt.Errorf("%w: checksum too short", ErrChecksum)
	}
	data5 = make([]byte, len(rest))
	for i, c := range rest {
		v := bech32Rev[c]
		if v < 0 {
			return "", nil, fmt.Errorf("%w: %q at position %d is not a bech32 character", ErrCharacter, c, sep+1+i)
		}
		data5[i] = byte(v)
	}
	chk := hrpPolymod(hrp)
	for _, v := range data5 {
		chk = polymodStep(chk, v)
	}
	switch chk {
	case bech32mConst:
	case bech32Const:
		return "", nil, fmt.Errorf("%w: bech32 (BIP-173) checksum, addresses use bech32m (BIP-350)", ErrChecksum)
	default:
		return "", nil, fmt.Errorf("%w: checksum mismatch", ErrChecksum)
	}
	return hrp, data5[:len(data5)-bech32Checksum], nil
}

// to5 regroups bytes into 5-bit groups, zero-padding the last group (BIP-173 convertbits, pad=true).
func to5(data []byte) []byte {
	out := make([]byte, 0, (len(data)*8+4)/5)
	var acc uint32
	var bits uint
	for _, b := range data {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			out = append(out, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		out = append(out, byte(acc<<(5-bits))&31)
	}
	return out
}

// from5 regroups 5-bit groups into bytes (BIP-173 convertbits, pad=false): at most 4 padding bits,
// all zero.
func from5(data5 []byte) ([]byte, error) {
	out := make([]byte, 0, len(data5)*5/8)
	var acc uint32
	var bits uint
	for _, v := range data5 {
		acc = (acc<<5 | uint32(v&31)) & 0xfff
		bits += 5
		if bits >= 8 {
			bits -= 8
			out = append(out, byte(acc>>bits))
		}
	}
	if bits >= 5 {
		return nil, fmt.Errorf("%w: %d padding bits", ErrDataLength, bits)
	}
	if acc&(1<<bits-1) != 0 {
		return nil, fmt.Errorf("%w: non-zero padding bits", ErrDataLength)
	}
	return out, nil
}
