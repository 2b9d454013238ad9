package replica

import (
	"strings"
	"testing"

	"github.com/cairn-db/cairn/internal/keys"
)

// TestHistoryTrimAndLinks: a key's history keeps its newest
// HistoryVersions changes (3 in these tests), each linked to the change
// before it even when that one was trimmed, deletes included (a delete
// takes a version of its own).
func TestHistoryTrimAndLinks(t *testing.T) {
	e := newApplyEnv(t)
	var ents []entry
	next := map[keys.RangeID]uint64{}
	for _, line := range []string{
		"put key=a value=1 ts=100", "put key=a value=2", "put key=b value=x", "put key=a value=3",
		"del key=a", "put key=a value=4",
	} {
		ents = append(ents, e.parseEntry(t, mustTD(t, line), next))
	}
	e.apply(t, ents)
	got := dumpHistory(t, e.db, 1)
	want := strings.Join([]string{
		`a@103 put prev=101 "3"`,
		`a@104 delete prev=103 ""`,
		`a@105 put prev=104 "4"`,
		`b@102 put prev=0 "x"`,
	}, "\n") + "\n"
	if got != want {
		t.Fatalf("history:\n%s\nwant:\n%s", got, want)
	}
}
