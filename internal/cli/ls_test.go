package cli

import (
	"fmt"
	"strings"
	"testing"
)

func TestLs(t *testing.T) {
	s := startServer(t)
	for i := range 5 {
		s.cli(t, "put", fmt.Sprintf("user/%d", i), fmt.Sprintf("u%d", i)).expect(t, exitOK, "*")
	}
	s.cli(t, "put", "zzz", "last").expect(t, exitOK, "*")

	s.cli(t, "ls").expect(t, exitOK, "user/0\nuser/1\nuser/2\nuser/3\nuser/4\nzzz\n")
	s.cli(t, "ls", "user/", "--values").expect(t, exitOK, "user/0\tu0\nuser/1\tu1\nuser/2\tu2\nuser/3\tu3\nuser/4\tu4\n")
	s.cli(t, "ls", "--start", "user/2", "--end", "user/4").expect(t, exitOK, "user/2\nuser/3\n")

	// One page, and the token of the next on stderr.
	r := s.cli(t, "ls", "user/", "--limit", "2")
	r.expect(t, exitOK, "user/0\nuser/1\n")
	token, ok := strings.CutPrefix(strings.TrimSpace(r.stderr), "more keys follow: --page-token ")
	if !ok {
		t.Fatalf("stderr %q", r.stderr)
	}
	s.cli(t, "ls", "user/", "--limit", "2", "--page-token", token).expect(t, exitOK, "user/2\nuser/3\n")

	// --all follows the pages.
	r = s.cli(t, "ls", "user/", "--limit", "2", "--all")
	r.expect(t, exitOK, "user/0\nuser/1\nuser/2\nuser/3\nuser/4\n")
	if r.stderr != "" {
		t.Errorf("stderr %q", r.stderr)
	}
	if got := s.svc.CallCount("List"); got != 3+2+3 {
		t.Errorf("List calls %d", got)
	}

	r = s.cli(t, "ls", "user/", "--limit", "2", "--all", "--values", "-o", "json")
	r.expect(t, exitOK, "*")
	var out lsOutput
	r.decode(t, &out)
	if len(out.Items) != 5 || out.Items[4].Key != "user/4" || string(out.Items[4].Value) != "u4" || out.Items[4].Version != 5 || out.NextPageToken != "" {
		t.Errorf("JSON output %+v", out)
	}
	r = s.cli(t, "ls", "nothing/", "-o", "json")
	r.expect(t, exitOK, "{\"items\":[],\"next_page_token\":\"\"}\n")

	s.cli(t, "ls", "--table", "nosuch").expect(t, exitNo, "")
	s.cli(t, "ls", "--page-token", "bogus").expect(t, exitUsage, "")
}
