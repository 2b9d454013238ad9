package client

import (
	"context"
	"errors"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors of failed calls; match them with errors.Is.
var (
	// ErrInvalidArgument: the request is malformed or over a limit.
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrNotFound: the key is absent.
	ErrNotFound = errors.New("key not found")
	// ErrTableNotFound: the table does not exist.
	ErrTableNotFound = errors.New("table not found")
	// ErrTableExists: CreateTable of a name that exists.
	ErrTableExists = errors.New("table already exists")
	// ErrConditionFailed: the condition of a conditional write did not hold.
	ErrConditionFailed = errors.New("condition failed")
	// ErrUnavailable: no endpoint could serve the request; it was not
	// executed and may be retried.
	ErrUnavailable = errors.New("unavailable")
	// ErrTimeout: the request was sent but no answer came (deadline or lost
	// connection); a write may or may not have taken effect.
	ErrTimeout = errors.New("timed out; outcome unknown")
	// ErrInternal: a bug or a storage failure in the server.
	ErrInternal = errors.New("internal error")
	// ErrUnauthenticated: auth is enabled and the call's credentials are
	// missing, wrong, expired or revoked.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrPermissionDenied: the user lacks a permission the call needs.
	ErrPermissionDenied = errors.New("permission denied")
	// ErrAlreadyExists: a user, role or token of that name exists.
	ErrAlreadyExists = errors.New("already exists")
	// ErrCompacted: a watch cannot resume: the history it needs is gone.
	// Read the keys afresh and watch from now.
	ErrCompacted = errors.New("compacted")
	// ErrResourceExhausted: a bounded server resource ran out (a watcher
	// fell behind its buffer); Watch resumes on its own after it.
	ErrResourceExhausted = errors.New("resource exhausted")
	// ErrTooStale: a stale read found no replica that could prove it is
	// within the requested max staleness; retry or relax the bound.
	ErrTooStale = errors.New("too stale")
	// ErrTxnConflict: a transaction met another one and was aborted,
	// changing nothing; running it again may succeed (Txn does).
	ErrTxnConflict = errors.New("transaction conflict; retry")
	// ErrQuotaExceeded: a write was refused by its table's quota (size:
	// code quota_bytes; writes per second: quota_rate, retry later).
	ErrQuotaExceeded = errors.New("quota exceeded")
	// ErrClosed: the Client was closed.
	ErrClosed = errors.New("client is closed")
)

// Error is the error of a failed call. Unwrap gives the sentinel of its
// kind, so errors.Is(err, ErrNotFound) works.
type Error struct {
	// Code is the server's stable error code ("not_found",
	// "condition_failed", ...); see the sentinels.
	Code string
	// Message describes the failure.
	Message string
	// Endpoint is the endpoint that answered, or the last one tried.
	Endpoint string

	kind error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the sentinel of the error's kind.
func (e *Error) Unwrap() error { return e.kind }

// codeTable maps the server's stable codes to the sentinels; it mirrors the
// error table of the gRPC front end.
var codeTable = []struct {
	code string
	err  error
}{
	{"invalid_argument", ErrInvalidArgument},
	{"not_found", ErrNotFound},
	{"table_not_found", ErrTableNotFound},
	{"table_exists", ErrTableExists},
	{"condition_failed", ErrConditionFailed},
	{"unavailable", ErrUnavailable},
	{"not_leader", ErrUnavailable},
	{"timeout", ErrTimeout},
	{"internal", ErrInternal},
	{"canceled", context.Canceled},
	{"unauthenticated", ErrUnauthenticated},
	{"permission_denied", ErrPermissionDenied},
	{"already_exists", ErrAlreadyExists},
	{"compacted", ErrCompacted},
	{"resource_exhausted", ErrResourceExhausted},
	{"quota_bytes", ErrQuotaExceeded},
	{"quota_rate", ErrQuotaExceeded},
	{"too_stale", ErrTooStale},
	{"txn_conflict", ErrTxnConflict},
	{"txn_aborted", ErrTxnConflict},
}

// grpcCodeTable classifies statuses that carry no cairn code (from a proxy,
// the gRPC library itself, or an older server).
var grpcCodeTable = map[codes.Code]string{
	codes.InvalidArgument:    "invalid_argument",
	codes.OutOfRange:         "invalid_argument",
	codes.NotFound:           "not_found",
	codes.AlreadyExists:      "table_exists",
	codes.FailedPrecondition: "condition_failed",
	codes.Unavailable:        "unavailable",
	codes.DeadlineExceeded:   "timeout",
	codes.Canceled:           "canceled",
	codes.Unauthenticated:    "unauthenticated",
	codes.PermissionDenied:   "permission_denied",
	codes.Aborted:            "txn_conflict",
}

// errorDomain is the ErrorInfo domain of the server's errors.
const errorDomain = "cairn"

// fromStatus turns the error of a gRPC call into an *Error. fromNode
// reports whether a cairn node produced it (it carries a cairn code), as
// opposed to the gRPC library, for instance after a broken connection.
func fromStatus(err error, endpoint string) (e *Error, fromNode bool) {
	st := status.Convert(err)
	code, msg := cairnCode(st)
	if code != "" {
		return newError(code, msg, endpoint), true
	}
	code = grpcCodeTable[st.Code()]
	if code == "" {
		code = "internal"
	}
	return newError(code, msg, endpoint), false
}

// cairnCode returns the cairn code of a status, from its ErrorInfo detail
// or its message prefix, and the message without the prefix. The code is
// "" when the status carries none.
func cairnCode(st *status.Status) (code, msg string) {
	msg = st.Message()
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == errorDomain && kindOf(info.Reason) != nil {
			code = info.Reason
		}
	}
	if prefix, rest, ok := strings.Cut(msg, ": "); ok && kindOf(prefix) != nil {
		if code == "" {
			code = prefix
		}
		if prefix == code {
			msg = rest
		}
	}
	return code, msg
}

func kindOf(code string) error {
	for _, c := range codeTable {
		if c.code == code {
			return c.err
		}
	}
	return nil
}

func newError(code, msg, endpoint string) *Error {
	kind := kindOf(code)
	if kind == nil {
		code, kind = "internal", ErrInternal
	}
	if msg == "" {
		msg = kind.Error()
	}
	return &Error{Code: code, Message: msg, Endpoint: endpoint, kind: kind}
}

// notExecuted reports whether an error that a node returned proves the
// request was not executed: the node said it could not reach a leader.
func notExecuted(e *Error) bool {
	return e.Code == "unavailable" || e.Code == "not_leader"
}
