// Package resp checks cairn's Redis protocol from outside, with the tools
// and client library people use: redis-cli (commands, -x, --pipe,
// --scan), go-redis v9 (handshake, RESP2 and RESP3, pipelines,
// WATCH/MULTI/EXEC) and redis-benchmark, against a real 3-node cluster of
// cairn processes; and the same go-redis and redis-cli expectations
// against a real redis-server started by the test, to prove they are
// Redis's where the semantics agree.
//
// TestMain builds ./cmd/cairn, starts one 3-node cluster shared by the
// tests (each test uses its own keys) and a redis-server, and stops them
// at the end. The Redis tools come from Debian's redis-tools and
// redis-server packages (.ci/run installs them); a test whose tool is
// missing is skipped. Environment:
//
//	CAIRN_RESP_BINARY=/path/to/cairn  use this binary instead of building
//	CAIRN_RESP_LOGDIR=DIR             keep the nodes' logs in DIR
//
// Tests run one after another: the failover test kills a leader.
package resp

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

var (
	// binary is the cairn binary under test.
	binary string
	// shared is the cluster the tests share.
	shared *cluster
	// redisAddr is the address of the reference redis-server, or "" when
	// redis-server is not installed.
	redisAddr string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cairn-resp-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "resp: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = os.Getenv("CAIRN_RESP_BINARY")
	if binary == "" {
		binary = filepath.Join(dir, "cairn")
		cmd := exec.Command("go", "build", "-o", binary, "./cmd/cairn")
		cmd.Dir = filepath.Join("..", "..")
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "resp: go build: %v\n%s", err, out)
			return 1
		}
		fmt.Fprintf(os.Stderr, "resp: built %s in %v\n", binary, time.Since(start).Round(time.Millisecond))
	}
	shared, err = startCluster(filepath.Join(dir, "cluster"), 3)
	if err != nil {
		fmt.Fprintln(os.Stderr, "resp:", err)
		if shared != nil {
			shared.stop(true)
		}
		return 1
	}
	if path, err := exec.LookPath("redis-server"); err == nil {
		stopRedis, addr, err := startRedisServer(path, filepath.Join(dir, "redis"))
		if err != nil {
			fmt.Fprintln(os.Stderr, "resp:", err)
			shared.stop(true)
			return 1
		}
		defer stopRedis()
		redisAddr = addr
	}
	code := m.Run()
	shared.stop(code != 0)
	return code
}
