package protocoldoc

// T is the part of testing.TB that Check uses.
type T interface {
	Helper()
	Errorf(format string, args ...any)
	Fatal(args ...any)
}

// Check compares the vectors of the subsection heading of the file at path with want (key → the value
// the code computes): every key written must be known and equal, and every key of want written once.
// A "vector" key only names its vector and is not compared.
func Check(t T, path, heading string, want map[string]string) {
	t.Helper()
	vs, err := Read(path, heading)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, v := range vs {
		for _, k := range v.Keys {
			if k == "vector" {
				continue
			}
			w, ok := want[k]
			if !ok {
				t.Errorf("unknown key %q", k)
				continue
			}
			seen++
			if v.Vals[k] != w {
				t.Errorf("%s = %s in protocol.md, the code gives %s", k, v.Vals[k], w)
			}
		}
	}
	if seen != len(want) {
		t.Errorf("protocol.md checks %d values, the code computes %d", seen, len(want))
	}
}
