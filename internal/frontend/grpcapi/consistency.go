package grpcapi

import (
	"context"
	"errors"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-db/cairn/internal/kv"
)

// Header metadata of a Get that found no key: a NotFound status has no
// response message, so the session token and how the read was served
// travel as metadata (the Go client folds cairn-session into its token).
const (
	MDSession     = "cairn-session"
	MDConsistency = "cairn-consistency"
	MDServedBy    = "cairn-served-by"
)

func setMissHeader(ctx context.Context, err error) {
	var miss *kv.ReadMissError
	if !errors.As(err, &miss) {
		return
	}
	md := metadata.Pairs(MDConsistency, miss.ServedConsistency, MDServedBy, strconv.FormatUint(miss.ServedBy, 10))
	if miss.SessionToken != "" {
		md.Append(MDSession, miss.SessionToken)
	}
	_ = grpc.SetHeader(ctx, md) // fails only outside a gRPC call (unit tests calling the method)
}
