package kv

import (
	"errors"
	"fmt"
)

// Operating errors. Each has a stable code (Code) that front ends put in
// their replies and that forwarded requests carry between nodes.
var (
	// ErrInvalidArgument: the request is malformed or over a limit.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: the key is absent.
	ErrNotFound = errors.New("key not found")
	// ErrTableNotFound: the table does not exist.
	ErrTableNotFound = errors.New("table not found")
	// ErrTableExists: CreateTable of a name that exists.
	ErrTableExists = errors.New("table already exists")
	// ErrConditionFailed: a conditional write's condition did not hold.
	ErrConditionFailed = errors.New("condition failed")
	// ErrUnavailable: no leader could be reached in time; retry.
	ErrUnavailable = errors.New("unavailable")
	// ErrTimeout: the request was sent but its outcome is unknown.
	ErrTimeout = errors.New("timed out; outcome unknown")
	// ErrNotLeader: this node does not lead the range (internal; the router
	// retries it).
	ErrNotLeader = errors.New("not leader")
	// ErrRangeKeyMismatch: the replica's range no longer holds the key (it
	// split since the request was routed). Internal; the router refreshes
	// its routing and retries.
	ErrRangeKeyMismatch = errors.New("range key mismatch")
	// ErrInternal: a bug or a storage failure.
	ErrInternal = errors.New("internal error")
	// ErrUnauthenticated: auth is enabled and the request carries no valid
	// credentials (missing, wrong, expired or revoked).
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the authenticated user lacks a permission; the
	// message names the permission, never data.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrTooStale: a stale read found no replica that could prove it is
	// within the requested max_staleness; retry (or relax the bound).
	ErrTooStale = errors.New("too stale")
	// ErrAlreadyExists: an auth object (user, role, token) of that name
	// exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrCompacted: a watch asked to resume from changes the key history
	// no longer holds; read the keys afresh and watch from now.
	ErrCompacted = errors.New("compacted")
	// ErrResourceExhausted: a bounded resource ran out (a watcher fell
	// further behind than its buffer); retry or resume.
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrQuotaBytes: a write would grow a table past its size quota.
	// Delete data or raise the quota.
	ErrQuotaBytes = errors.New("quota exceeded: table size")
	// ErrQuotaRate: a table's writes or reads per second are over its quota;
	// retry later (not executed).
	ErrQuotaRate = errors.New("quota exceeded: requests per second")
	// ErrTxnConflict: a transaction met another one on a key (write-write
	// conflict, or a lock it could not wait out) and was aborted, changing
	// nothing. Retryable: run the transaction again.
	ErrTxnConflict = errors.New("transaction conflict; retry")
	// ErrTxnAborted: the transaction's record was aborted (it expired and
	// another transaction aborted it). Retryable, like ErrTxnConflict.
	ErrTxnAborted = errors.New("transaction aborted; retry")
)

var codes = []struct {
	err  error
	code string
}{
	{ErrInvalidArgument, "invalid_argument"},
	{ErrNotFound, "not_found"},
	{ErrTableNotFound, "table_not_found"},
	{ErrTableExists, "table_exists"},
	{ErrConditionFailed, "condition_failed"},
	{ErrUnavailable, "unavailable"},
	{ErrTimeout, "timeout"},
	{ErrNotLeader, "not_leader"},
	{ErrRangeKeyMismatch, "range_key_mismatch"},
	{ErrInternal, "internal"},
	{ErrUnauthenticated, "unauthenticated"},
	{ErrPermissionDenied, "permission_denied"},
	{ErrAlreadyExists, "already_exists"},
	{ErrCompacted, "compacted"},
	{ErrResourceExhausted, "resource_exhausted"},
	{ErrQuotaBytes, "quota_bytes"},
	{ErrQuotaRate, "quota_rate"},
	{ErrTooStale, "too_stale"},
	{ErrTxnConflict, "txn_conflict"},
	{ErrTxnAborted, "txn_aborted"},
}

// Code returns the stable code of err's kind ("internal" when unknown).
func Code(err error) string {
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return "internal"
}

// FromCode rebuilds an error of the kind named by code with message msg;
// the inverse of Code for errors carried between nodes.
func FromCode(code, msg string) error {
	for _, c := range codes {
		if c.code == code {
			if msg == "" || msg == c.err.Error() {
				return c.err
			}
			return &codedError{kind: c.err, msg: msg}
		}
	}
	return &codedError{kind: ErrInternal, msg: msg}
}

type codedError struct {
	kind error
	msg  string
}

func (e *codedError) Error() string { return e.msg }
func (e *codedError) Unwrap() error { return e.kind }

// Errorf wraps kind with a formatted message: Errorf(ErrInvalidArgument,
// "key is %d bytes", n) reads "invalid argument: key is 5000 bytes".
// ErrMultiRange refuses an atomic batch whose keys lie in several ranges
// (an invalid argument until cross-range transactions exist). Callers that
// can do without atomicity (Redis DEL) fall back to one write per key.
var ErrMultiRange = Errorf(ErrInvalidArgument, "batch keys lie in several ranges; an atomic write across ranges needs a transaction")

func Errorf(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
}
