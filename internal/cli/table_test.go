package cli

import (
	"strings"
	"testing"
)

func TestTable(t *testing.T) {
	s := startServer(t)
	s.cli(t, "table", "create", "users").expect(t, exitOK, "OK table=users id=2\n")
	r := s.cli(t, "table", "create", "users")
	r.expect(t, exitNo, "")
	if !strings.Contains(r.stderr, "table already exists") {
		t.Errorf("stderr %q", r.stderr)
	}
	s.cli(t, "table", "create", "Bad!").expect(t, exitUsage, "")
	s.cli(t, "table", "create", "h", "--partitioning", "list").expect(t, exitUsage, "")

	s.cli(t, "table", "ls").expect(t, exitOK,
		"NAME     ID  PARTITIONING  REPLICAS  RANGES\n"+
			"default  1   range         1         1\n"+
			"users    2   range         1         1\n")
	r = s.cli(t, "table", "ls", "-o", "json")
	r.expect(t, exitOK, "*")
	var tables tablesOutput
	r.decode(t, &tables)
	if len(tables.Tables) != 2 || tables.Tables[1].Name != "users" || tables.Tables[1].Partitioning != "range" {
		t.Errorf("JSON output %+v", tables)
	}

	r = s.cli(t, "table", "get", "users")
	r.expect(t, exitOK, "*")
	if !strings.Contains(r.stdout, "users  2   range") || !strings.Contains(r.stdout, "RANGE  START  END  REPLICAS\n2      -      -    [1]\n") {
		t.Errorf("table get:\n%s", r.stdout)
	}

	// Settings change after creation; only the flags given.
	s.cli(t, "table", "set", "users", "--consistency", "session", "--max-bytes", "1MiB").expect(t, exitOK, "OK table=users replicas=1 learners=0\n")
	r = s.cli(t, "table", "set", "users", "--learners", "2", "-o", "json")
	r.expect(t, exitOK, "*")
	if !strings.Contains(r.stdout, `"learners":2`) || !strings.Contains(r.stdout, `"consistency":"session"`) || !strings.Contains(r.stdout, `"max_bytes":1048576`) {
		t.Errorf("table set -o json: %s", r.stdout)
	}
	r = s.cli(t, "table", "set", "users", "--history-keep", "5", "--history-for", "1h", "-o", "json")
	r.expect(t, exitOK, "*")
	if !strings.Contains(r.stdout, `"history_keep":5`) || !strings.Contains(r.stdout, `"history_for":3600000000000`) {
		t.Errorf("table set history -o json: %s", r.stdout)
	}
	s.cli(t, "table", "set", "users", "--history-for", "1000h").expect(t, exitUsage, "")
	s.cli(t, "table", "set", "users").expect(t, exitUsage, "")
	s.cli(t, "table", "set", "users", "--replicas", "9").expect(t, exitUsage, "")
	s.cli(t, "table", "set", "users", "--consistency", "eventual").expect(t, exitUsage, "")
	s.cli(t, "table", "set", "nope", "--learners", "1").expect(t, exitNo, "")

	// Data in the new table is separate from the default table.
	s.cli(t, "put", "k", "v", "--table", "users").expect(t, exitOK, "*")
	s.cli(t, "get", "k").expect(t, exitNo, "")
	s.cli(t, "get", "k", "--table", "users").expect(t, exitOK, "v\n")

	s.cli(t, "table", "drop", "users").expect(t, exitOK, "OK dropped table=users\n")
	s.cli(t, "table", "drop", "users").expect(t, exitNo, "")
	s.cli(t, "table", "get", "users").expect(t, exitNo, "")
	s.cli(t, "table", "drop", "default", "-o", "json").expect(t, exitOK, "{\"dropped\":\"default\"}\n")

	// A hash table: its range bounds show as hash positions.
	s.cli(t, "table", "create", "h", "--partitioning", "hash", "--initial-ranges", "4").expect(t, exitOK, "*")
	r = s.cli(t, "table", "get", "h")
	r.expect(t, exitOK, "*")
	if !strings.Contains(r.stdout, "hash          1         4") || !strings.Contains(r.stdout, "0x4000000000000000  0x8000000000000000") {
		t.Errorf("table get of a hash table:\n%s", r.stdout)
	}
	s.cli(t, "table", "create", "h2", "--partitioning", "hash", "--initial-ranges", "5000").expect(t, exitUsage, "")
}
