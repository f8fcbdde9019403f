package chat

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tanglemail/tanglemail/internal/identity"
	"github.com/tanglemail/tanglemail/internal/protocoldoc"
)

const chatHeading = "### 10.3 Chat"

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestProtocolVectorsChat checks the code against every vector of protocol.md §10.3.
func TestProtocolVectorsChat(t *testing.T) {
	vs, err := protocoldoc.Read(protocoldoc.Path, chatHeading)
	if err != nil {
		t.Fatal(err)
	}
	var vecs []map[string]string
	for _, v := range vs {
		if len(v.Keys) > 0 && v.Keys[0] == "vector" {
			vecs = append(vecs, v.Vals)
		}
	}
	types := map[string]Type{"text": TypeText, "typing": TypeTyping, "create": TypeCreate, "remove": TypeRemove, "rename": TypeRename}
	var direct, group, valid, invalid int
	for i, v := range vecs {
		switch v["vector"] {
		case "direct id":
			direct++
			a, b := unhex(t, v["key_a"]), unhex(t, v["key_b"])
			if got := DirectID(a, b).String(); got != v["conversation"] || DirectID(b, a).String() != got {
				t.Fatalf("vector %d: DirectID = %s, want %s (in either order)", i, got, v["conversation"])
			}
		case "group id":
			group++
			if got := GroupConversationID(ID(unhex(t, v["group"]))).String(); got != v["conversation"] {
				t.Fatalf("vector %d: GroupConversationID = %s, want %s", i, got, v["conversation"])
			}
		case "valid":
			valid++
			content := unhex(t, v["content"])
			c, err := Parse(content)
			if err != nil {
				t.Fatalf("vector %d: %v", i, err)
			}
			if c.Type != types[v["type"]] {
				t.Fatalf("vector %d: type %v, want %s", i, c.Type, v["type"])
			}
			if g, ok := v["group"]; ok && c.Conversation.String() != g {
				t.Fatalf("vector %d: group %s", i, c.Conversation)
			}
			if x, ok := v["text"]; ok && c.Text != x {
				t.Fatalf("vector %d: text %q", i, c.Text)
			}
			if x, ok := v["name"]; ok && c.Name != x && (c.State == nil || c.State.Name != x) {
				t.Fatalf("vector %d: name %q / %+v", i, c.Name, c.State)
			}
			if x, ok := v["member"]; ok && hex.EncodeToString(append([]byte{c.Member.VersionByte()}, c.Member.Key...)) != x {
				t.Fatalf("vector %d: member %v", i, c.Member)
			}
			enc, err := c.Encode()
			if err != nil || !bytes.Equal(enc, content) {
				t.Fatalf("vector %d: Encode = %x, %v", i, enc, err)
			}
		case "invalid":
			invalid++
			if _, err := Parse(unhex(t, v["content"])); !errors.Is(err, ErrMalformed) {
				t.Fatalf("vector %d (%s): err = %v, want ErrMalformed", i, v["reason"], err)
			}
		default:
			t.Fatalf("vector %d: unknown kind %q", i, v["vector"])
		}
	}
	if direct != 1 || group != 1 || valid < 5 || invalid < 10 {
		t.Fatalf("found %d/%d/%d/%d vectors in %s", direct, group, valid, invalid, chatHeading)
	}
}

func testAddr(t testing.TB, seed byte) identity.Address {
	s := bytes.Repeat([]byte{seed}, 32)
	id, err := identity.FromSeed(s, 8)
	if err != nil {
		t.Fatal(err)
	}
	return id.Address()
}

func TestEncodeRefusesWhatParseRefuses(t *testing.T) {
	a := testAddr(t, 1)
	for _, c := range []*Content{
		{Type: TypeText},
		{Type: TypeCreate, Message: NewID(), State: &State{Name: "x", Members: []identity.Address{a}}}, // no group id
		{Type: TypeRename, Conversation: NewID(), Name: ""},
		{Type: 0x7f},
	} {
		if _, err := c.Encode(); !errors.Is(err, ErrMalformed) {
			t.Errorf("Encode(%+v) = %v", c, err)
		}
	}
	c := &Content{Type: TypeCreate, Conversation: NewID(), State: &State{Name: "x", Members: []identity.Address{a}}}
	if err := c.CheckAuthor(testAddr(t, 2)); !errors.Is(err, ErrMalformed) {
		t.Errorf("a create whose state lacks its author: %v", err)
	}
	if err := c.CheckAuthor(a); err != nil {
		t.Error(err)
	}
}

// TestFoldOrderIndependent: every order of arrival gives the same state (protocol.md §10.3).
func TestFoldOrderIndependent(t *testing.T) {
	alice, bob, carol, dave := testAddr(t, 1), testAddr(t, 2), testAddr(t, 3), testAddr(t, 4)
	g := NewID()
	t0 := time.UnixMilli(1_800_000_000_000)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	changes := []Change{
		{at(0), alice, &Content{Type: TypeCreate, Conversation: g, Message: NewID(), State: &State{Name: "Trip", Members: []identity.Address{alice, bob, carol}}}},
		{at(10), bob, &Content{Type: TypeRename, Conversation: g, Message: NewID(), Name: "Road trip"}},
		{at(20), carol, &Content{Type: TypeAdd, Conversation: g, Message: NewID(), Member: dave, State: &State{Name: "Road trip", Members: []identity.Address{alice, bob, carol, dave}}}},
		// Concurrent (same millisecond): alice removes carol, carol renames. Order by author key decides.
		{at(30), alice, &Content{Type: TypeRemove, Conversation: g, Message: NewID(), Member: carol}},
		{at(30), carol, &Content{Type: TypeRename, Conversation: g, Message: NewID(), Name: "Carol's"}},
		{at(40), bob, &Content{Type: TypeLeave, Conversation: g, Message: NewID()}},
		// Skipped: bob is no longer a member.
		{at(50), bob, &Content{Type: TypeRename, Conversation: g, Message: NewID(), Name: "bob was here"}},
		// Skipped: dave (a member) removes eve, who is not one: no effect.
		{at(60), dave, &Content{Type: TypeRemove, Conversation: g, Message: NewID(), Member: testAddr(t, 5)}},
	}
	want := Fold(slices.Clone(changes))
	if want == nil || want.Has(bob) || want.Has(carol) || !want.Has(alice) || !want.Has(dave) || len(want.Members) != 2 {
		t.Fatalf("state %+v", want)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		c := slices.Clone(changes)
		r.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
		got := Fold(c)
		if !bytes.Equal(EncodeState(got), EncodeState(want)) {
			t.Fatalf("order-dependent: %+v vs %+v", got, want)
		}
	}
	// A node that joined late (it has dave's add onwards) computes the same state.
	late := Fold(slices.Clone(changes[2:]))
	if !bytes.Equal(EncodeState(late), EncodeState(want)) {
		t.Fatalf("late joiner: %+v vs %+v", late, want)
	}
	// Unknown until a create or add.
	if Fold([]Change{changes[1], changes[3]}) != nil {
		t.Error("state known without create or add")
	}
	// Round trip of the stored form.
	if s, err := DecodeState(EncodeState(want)); err != nil || !bytes.Equal(EncodeState(s), EncodeState(want)) {
		t.Errorf("DecodeState: %v", err)
	}
}

// FuzzParse: Parse never panics, and what it accepts encodes back to the same bytes.
func FuzzParse(f *testing.F) {
	f.Add([]byte{})
	f.Add(append([]byte{1}, make([]byte, 34)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		enc, err := c.Encode()
		if err != nil || !bytes.Equal(enc, b) {
			t.Fatalf("Encode(Parse(%x)) = %x, %v", b, enc, err)
		}
	})
}
