// Package protocoldoc reads the test vectors of docs/protocol.md, for the tests that check the code
// against the normative document (protocol.md §9 and §10). Only tests import it.
//
// A vector is a fenced code block of "key = value" lines inside a subsection; a subsection runs from its
// heading line to the next heading (lines inside code fences are not headings).
package protocoldoc

import (
	"fmt"
	"os"
	"strings"
)

// Path is docs/protocol.md as seen from a package directory two levels below the module root
// (internal/<package>), where `go test` runs that package's tests.
const Path = "../../docs/protocol.md"

// Vector is one code block: its keys in the order written, and their values.
type Vector struct {
	Keys []string
	Vals map[string]string
}

// Read returns the vectors of the subsection of the file at path whose heading line is exactly heading
// (e.g. "### 9.1 Address"). It fails when the subsection is missing or has no vectors, on a line without
// "=", and on a key given twice in one vector.
func Read(path, heading string) ([]Vector, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var (
		out       []Vector
		cur       *Vector
		in, found bool
	)
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if cur == nil && strings.HasPrefix(line, "#") {
			if in {
				break
			}
			in = strings.TrimSpace(line) == heading
			found = found || in
			continue
		}
		if !in {
			continue
		}
		if strings.HasPrefix(line, "```") {
			if cur != nil {
				out = append(out, *cur)
				cur = nil
			} else {
				cur = &Vector{Vals: map[string]string{}}
			}
			continue
		}
		if cur == nil {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("%s: bad vector line %q", heading, line)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if _, dup := cur.Vals[k]; dup {
			return nil, fmt.Errorf("%s: key %q twice in one vector", heading, k)
		}
		cur.Keys = append(cur.Keys, k)
		cur.Vals[k] = v
	}
	if !found {
		return nil, fmt.Errorf("%s has no section %q", path, heading)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: section %q has no vectors", path, heading)
	}
	return out, nil
}

// ReplaceSection makes body the content of the subsection with this heading line in the file at path
// (the `-update-vectors` mode of the tests). A missing subsection is inserted at the end of the
// subsection whose heading line is after. The file is read right before it is written (other packages
// update other subsections), and written only when it changes; run updaters with `go test -p 1`.
func ReplaceSection(path, heading, body, after string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	lines := strings.SplitAfter(string(data), "\n")
	section := heading + "\n\n" + strings.TrimRight(body, "\n") + "\n\n"
	start, end := sectionBounds(lines, heading)
	if start < 0 {
		as, ae := sectionBounds(lines, after)
		if as < 0 {
			return fmt.Errorf("%s: no %q to insert %q after", path, after, heading)
		}
		start, end = ae, ae
	}
	head := strings.Join(lines[:start], "")
	if head != "" && !strings.HasSuffix(head, "\n\n") {
		head = strings.TrimRight(head, "\n") + "\n\n"
	}
	out := strings.TrimRight(head+section+strings.Join(lines[end:], ""), "\n") + "\n"
	if out == string(data) {
		return nil
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// sectionBounds returns the line range [start, end) of the subsection with exactly this heading line,
// up to the next heading of level 1 to 3, or start = -1. Lines inside code fences are not headings.
func sectionBounds(lines []string, heading string) (start, end int) {
	start, end = -1, len(lines)
	fence := false
	for i, l := range lines {
		l = strings.TrimRight(l, "\r\n")
		if strings.HasPrefix(l, "```") {
			fence = !fence
			continue
		}
		if fence || !(strings.HasPrefix(l, "# ") || strings.HasPrefix(l, "## ") || strings.HasPrefix(l, "### ")) {
			continue
		}
		if start >= 0 {
			return start, i
		}
		if strings.TrimSpace(l) == heading {
			start = i
		}
	}
	return start, end
}
