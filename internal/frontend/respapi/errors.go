package respapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cairn-db/cairn/internal/kv"
)

// Errors only the Redis front end produces.
var (
	// errConflict: a conditional write of a transaction or of a
	// read-modify-write found its keys changed; the command is retried.
	errConflict = errors.New("respapi: keys changed since they were read")
	// errContention: errConflict kept happening maxAttempts times.
	errContention = errors.New("respapi: contention")
	// errOutputLimit: a reply would exceed MaxOutputBufferBytes; the
	// connection is closed.
	errOutputLimit = errors.New("respapi: client output buffer limit")
	// errTooManyKeys: a transaction touches more keys than one atomic
	// batch may hold (kv.MaxBatchOps).
	errTooManyKeys = errors.New("respapi: too many keys")
)

// Redis's own error texts, where the front end answers as Redis would.
const (
	msgNotInteger      = "ERR value is not an integer or out of range"
	msgOverflow        = "ERR increment or decrement would overflow"
	msgDecrOverflow    = "ERR decrement would overflow"
	msgSyntax          = "ERR syntax error"
	msgStringTooLong   = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
	msgNotInMulti      = "ERR Command not allowed inside a transaction"
	msgExecAbort       = "EXECABORT Transaction discarded because of previous errors."
	msgNoPassword      = "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
	msgWrongPass       = "WRONGPASS invalid username-password pair or user is disabled."
	msgNoAuth          = "NOAUTH Authentication required."
	msgProtected       = "DENIED cairn is running in protected mode: auth is disabled, so only loopback clients are served. Enable auth (cairn auth enable) or restart the server with --insecure."
	msgInvalidCursor   = "ERR invalid cursor"
	msgUnknownCursor   = "ERR SCAN cursor is unknown or expired on this node; start again from 0"
	msgClientName      = "ERR Client names cannot contain spaces, newlines or special characters."
	msgDBIndex         = "ERR DB index is out of range"
	msgInvalidExpire   = "ERR invalid expire time in '%s' command"
	msgTableWhileWatch = "ERR CAIRN.TABLE is not allowed while keys are watched; UNWATCH first"
)

// errorTable is the one translation from errors to RESP error replies.
// The first row whose err matches (errors.Is) wins; an error matching no
// row is internal. TestErrorTable walks it.
//
// Unavailable means the operation was not applied (no leader could take
// it), so the reply is TRYAGAIN, which clients such as go-redis retry on
// their own. A timeout means the outcome is unknown: a write may or may
// not have applied, so it is an ERR that no client retries blindly.
var errorTable = []struct {
	err   error
	reply func(err error) string
}{
	{kv.ErrUnavailable, func(err error) string { return "TRYAGAIN cairn " + err.Error() + " (retry)" }},
	{kv.ErrNotLeader, func(err error) string { return "TRYAGAIN cairn unavailable: " + err.Error() + " (retry)" }},
	{kv.ErrRangeKeyMismatch, func(err error) string { return "TRYAGAIN cairn unavailable: " + err.Error() + " (retry)" }},
	{kv.ErrTimeout, func(error) string { return "ERR cairn timeout: outcome unknown" }},
	{context.DeadlineExceeded, func(error) string { return "ERR cairn timeout: outcome unknown" }},
	{context.Canceled, func(error) string { return "ERR cairn: request canceled; the node is shutting down" }},
	{kv.ErrUnauthenticated, func(error) string { return msgNoAuth }},
	{kv.ErrPermissionDenied, func(err error) string { return "NOPERM " + err.Error() }},
	{kv.ErrAlreadyExists, func(err error) string { return "ERR " + err.Error() }},
	{kv.ErrCompacted, func(err error) string { return "ERR " + err.Error() }},
	{kv.ErrResourceExhausted, func(err error) string { return "ERR " + err.Error() }},
	{kv.ErrQuotaBytes, func(err error) string { return "ERR quota " + err.Error() }},
	{kv.ErrQuotaRate, func(err error) string { return "ERR quota " + err.Error() }},
	{kv.ErrTooStale, func(err error) string { return "TRYAGAIN cairn " + err.Error() + " (retry)" }},
	{kv.ErrTxnConflict, func(err error) string { return "TRYAGAIN " + err.Error() }},
	{kv.ErrTxnAborted, func(err error) string { return "TRYAGAIN " + err.Error() }},
	{kv.ErrInvalidArgument, func(err error) string { return "ERR " + err.Error() }},
	{kv.ErrTableNotFound, func(err error) string { return "ERR " + err.Error() }},
	{kv.ErrTableExists, func(err error) string { return "ERR " + err.Error() }},
	{kv.ErrNotFound, func(err error) string { return "ERR " + err.Error() }},
	{kv.ErrConditionFailed, func(err error) string { return "ERR " + err.Error() }},
	{errContention, func(error) string {
		return fmt.Sprintf("ERR cairn: the keys kept changing during %d attempts; retry", maxAttempts)
	}},
	{errConflict, func(error) string { return "ERR cairn: the keys changed during the command; retry" }},
	{errTooManyKeys, func(err error) string { return "ERR " + err.Error() }},
}

// errorReply returns the RESP error for err (without the leading '-').
// Internal errors are logged; their detail is not sent to the client.
func errorReply(err error, log *slog.Logger) string {
	for _, row := range errorTable {
		if errors.Is(err, row.err) {
			return row.reply(err)
		}
	}
	log.Error("respapi: internal error", "err", err)
	return "ERR cairn internal error"
}
