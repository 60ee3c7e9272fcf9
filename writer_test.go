package partyline

import (
	"slices"
	"testing"
)

func TestAdvanceDropsWrittenBytes(t *testing.T) {
	for _, tc := range []struct {
		n    int
		want []string
	}{
		{0, []string{"abc", "de", "f"}},
		{2, []string{"c", "de", "f"}},
		{3, []string{"de", "f"}},
		{4, []string{"e", "f"}},
		{5, []string{"f"}},
		{6, []string{}},
	} {
		w := &writer{pending: [][]byte{[]byte("abc"), []byte("de"), []byte("f")}}
		w.advance(tc.n)
		got := []string{}
		for _, f := range w.pending {
			got = append(got, string(f))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("advance(%d) left %q, want %q", tc.n, got, tc.want)
		}
	}
}
