package protocoldoc

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "p.md")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRead(t *testing.T) {
	doc := "## 9. Vectors\n\n### 9.1 A\n\ntext\n\n```\nb = 2\na = 1\n# not a heading = x\n```\n\n```\nc = 3\n```\n\n### 9.2 B\n\n```\nd = 4\n```\n"
	p := write(t, doc)
	vs, err := Read(p, "### 9.1 A")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || strings.Join(vs[0].Keys, ",") != "b,a,# not a heading" || vs[0].Vals["a"] != "1" || vs[1].Vals["c"] != "3" {
		t.Fatalf("%+v", vs)
	}
	if vs, err := Read(p, "### 9.2 B"); err != nil || len(vs) != 1 || vs[0].Vals["d"] != "4" {
		t.Fatalf("9.2: %+v %v", vs, err)
	}
	for _, c := range []struct{ doc, heading, want string }{
		{doc, "### 9.3 C", "has no section"},
		{"### 9.1 A\n\nno vectors\n", "### 9.1 A", "no vectors"},
		{"### 9.1 A\n```\nnot a pair\n```\n", "### 9.1 A", "bad vector line"},
		{"### 9.1 A\n```\na = 1\na = 2\n```\n", "### 9.1 A", "twice"},
	} {
		if _, err := Read(write(t, c.doc), c.heading); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: got %v, want an error with %q", c.heading, err, c.want)
		}
	}
}

// The real document parses: every vector section the packages check is there.
func TestProtocolDocument(t *testing.T) {
	for _, h := range []string{"### 9.1 Address", "### 9.2 Sealed envelope", "### 9.3 Network ids", "### 9.4 Block",
		"### 10.1 Mail and chunks", "### 10.2 Delivery receipts"} {
		if _, err := Read(Path, h); err != nil {
			t.Error(err)
		}
	}
}

func TestReplaceSection(t *testing.T) {
	doc := "## 9. Vectors\n\nintro\n\n### 9.1 A\n\n```\na = 1\n```\n\n## 10. Next\n"
	p := write(t, doc)
	// Insert 9.2 after 9.1, then replace 9.1.
	if err := ReplaceSection(p, "### 9.2 B", "```\nb = 2\n```", "### 9.1 A"); err != nil {
		t.Fatal(err)
	}
	if err := ReplaceSection(p, "### 9.1 A", "```\na = 9\n```\n", "## 9. Vectors"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(p)
	want := "## 9. Vectors\n\nintro\n\n### 9.1 A\n\n```\na = 9\n```\n\n### 9.2 B\n\n```\nb = 2\n```\n\n## 10. Next\n"
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	// Writing the same content again changes nothing.
	if err := ReplaceSection(p, "### 9.2 B", "```\nb = 2\n```", "### 9.1 A"); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(p); string(again) != want {
		t.Fatalf("idempotence: %s", again)
	}
	if err := ReplaceSection(p, "### 9.9 Z", "x", "### 9.8 missing"); err == nil {
		t.Fatal("insert after a missing section succeeded")
	}
}
