package cli

import "testing"

func TestDel(t *testing.T) {
	s := startServer(t)
	s.cli(t, "put", "k", "v").expect(t, exitOK, "OK version=1\n")
	s.cli(t, "put", "k", "v").expect(t, exitOK, "OK version=2\n")
	s.cli(t, "del", "k", "--if-version", "1").expect(t, exitNo, "")
	s.cli(t, "del", "k", "--if-version", "2").expect(t, exitOK, "OK version=2\n")
	s.cli(t, "del", "k").expect(t, exitNo, "")
	s.cli(t, "get", "k").expect(t, exitNo, "")

	s.cli(t, "put", "j", "v").expect(t, exitOK, "OK version=3\n")
	s.cli(t, "del", "j", "-o", "json").expect(t, exitOK, "{\"version\":3}\n")
	s.cli(t, "del", "j", "--table", "nosuch").expect(t, exitNo, "")
}
