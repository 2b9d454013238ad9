package grpcapi

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-db/cairn/internal/kv"
)

// ErrorDomain is the Domain of the google.rpc.ErrorInfo detail attached to
// every error status; its Reason is the kv code.
const ErrorDomain = "cairn"

// errorTable maps each kv error kind to its gRPC code. It is the only place
// the gRPC front end translates errors; errors_test.go walks it.
var errorTable = []struct {
	err  error
	code codes.Code
}{
	{kv.ErrInvalidArgument, codes.InvalidArgument},
	{kv.ErrNotFound, codes.NotFound},
	{kv.ErrTableNotFound, codes.NotFound},
	{kv.ErrTableExists, codes.AlreadyExists},
	{kv.ErrConditionFailed, codes.FailedPrecondition},
	{kv.ErrUnavailable, codes.Unavailable},
	{kv.ErrNotLeader, codes.Unavailable},
	{kv.ErrRangeKeyMismatch, codes.Unavailable},
	{kv.ErrTimeout, codes.DeadlineExceeded},
	{kv.ErrInternal, codes.Internal},
	{kv.ErrUnauthenticated, codes.Unauthenticated},
	{kv.ErrPermissionDenied, codes.PermissionDenied},
	{kv.ErrAlreadyExists, codes.AlreadyExists},
	{kv.ErrCompacted, codes.OutOfRange},
	{kv.ErrResourceExhausted, codes.ResourceExhausted},
	{kv.ErrQuotaBytes, codes.ResourceExhausted},
	{kv.ErrQuotaRate, codes.ResourceExhausted},
	{kv.ErrTooStale, codes.Unavailable},
	{kv.ErrTxnConflict, codes.Aborted},
	{kv.ErrTxnAborted, codes.Aborted},
}

// Codes for the context errors, which are not kv kinds: a canceled request
// is reported as such, and an expired deadline as a kv timeout (the outcome
// of a write is unknown).
const canceledCode = "canceled"

// toStatus translates an error of kv.Service into a gRPC status error.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isKVError(err) {
		// Already a status (from a gRPC call made by the service); pass it
		// through unchanged.
		return err
	}
	code, kvCode := codeOf(err)
	return newStatus(code, kvCode, err.Error())
}

// codeOf returns the gRPC code and the kv code of err.
func codeOf(err error) (codes.Code, string) {
	switch {
	case errors.Is(err, context.Canceled):
		return codes.Canceled, canceledCode
	case errors.Is(err, context.DeadlineExceeded):
		return codes.DeadlineExceeded, kv.Code(kv.ErrTimeout)
	}
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return e.code, kv.Code(e.err)
		}
	}
	return codes.Internal, kv.Code(kv.ErrInternal)
}

func isKVError(err error) bool {
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			return true
		}
	}
	return false
}

// newStatus builds the status error "kvCode: msg" with an ErrorInfo detail.
func newStatus(code codes.Code, kvCode, msg string) error {
	st := status.New(code, kvCode+": "+msg)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Domain: ErrorDomain, Reason: kvCode}); err == nil {
		st = withInfo
	}
	return st.Err()
}
