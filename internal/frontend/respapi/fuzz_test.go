package respapi

// FuzzDispatch runs random command sequences through the command table
// against memBackend. Properties: no panic; every command yields exactly
// one well-formed RESP reply (or, for QUIT and the output limit, closes
// the connection); the per-connection state stays consistent enough for
// the next command to be answered too.
//
// Input: lines of inline commands; a first word that is a number picks a
// command by index from the table, so the fuzzer reaches every command.
//
//	go test -run='^$' -fuzz=FuzzDispatch -fuzztime=30s ./internal/frontend/respapi/

import (
	"bytes"
	"strconv"
	"testing"

	"github.com/cairn-db/cairn/internal/resp"
)

func FuzzDispatch(f *testing.F) {
	seeds := []string{
		"SET a 1\nGET a\nINCR a\nAPPEND a x\nGETDEL a",
		"MULTI\nSET a 1\nINCR a\nMGET a b\nEXEC",
		"WATCH a b\nMULTI\nDEL a\nSET b 2 NX GET\nEXEC\nUNWATCH",
		"MSET a 1 b 2\nMSETNX a 1 c 3\nSCAN 0 MATCH * COUNT 1\nDBSIZE",
		"HELLO 3\nCLIENT SETNAME x\nCLIENT INFO\nCONFIG GET *\nCOMMAND DOCS\nINFO",
		"SET k v EX 10\nEXPIRE k 1\nTTL k\nPERSIST k\nTYPE k\nSTRLEN k",
		"CAIRN.TABLE default\nCAIRN.CONSISTENCY stale\nSELECT 0\nAUTH x\nPING\nECHO e",
		"0 a\n1 a b\n2\n3 x y z\n40 q",
		"MULTI\nMULTI\nFOO\nEXEC\nDISCARD\nQUIT",
		"INCRBY n 9223372036854775807\nINCR n\nDECRBY n -9223372036854775808",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		s := New(newMemBackend(), Options{Logger: discardLogger(), MaxOutputBufferBytes: 1 << 20})
		defer s.Close()
		tc := s.newTestConn(t)
		for n, line := range bytes.Split(in, []byte("\n")) {
			if n >= 50 {
				break
			}
			args, ok := resp.SplitArgs(line)
			if !ok || len(args) == 0 || len(args) > 64 {
				continue
			}
			if i, err := strconv.Atoi(string(args[0])); err == nil && i >= 0 {
				args[0] = []byte(commandNames[i%len(commandNames)])
			}
			if _, err := tc.run(args); err != nil {
				t.Fatalf("%q: %v", line, err)
			}
			if tc.c.closing {
				return
			}
		}
	})
}
