// Package cli is the cairn command line: `cairn server` runs a node, and
// the client commands (get, put, del, ls, table, cluster, bench, backup, restore) talk to a
// cluster through the Go SDK (package client). cmd/cairn only calls Main.
//
// One file per subcommand, each with its test. The tests run the cobra
// command in-process against a real gRPC server (grpcapi over an in-memory
// kv.Service) and check stdout, stderr and the exit code.
//
// # Conventions
//
// Client commands share --endpoints (default 127.0.0.1:7379, comma-
// separated; $CAIRN_ENDPOINTS when the flag is not given), --timeout, and
// -o/--output text|json. Text output is for people; JSON output is one
// JSON document per command (one line), for scripts. Errors go to stderr,
// as "Error: ..." or, with -o json, as {"error":{"code","message"}}.
//
// Exit codes:
//
//	0  success
//	1  the request was answered "no": key or table not found, condition
//	   failed, table exists
//	2  usage: bad arguments or flags, invalid configuration, or input the
//	   server rejected as invalid
//	3  anything else: unavailable, timeout, internal server errors
package cli
