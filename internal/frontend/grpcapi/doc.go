// Package grpcapi serves the client API of api/cairnpb (the KV, Tables and
// Cluster services) over gRPC.
//
// It is the gRPC front end on the request path
//
//	client -> grpcapi -> kv.Service (auth, router, replica, storage)
//
// and stays a thin adapter: each handler checks the request against the
// input limits (kv.Limits), calls kv.Service and translates the error.
//
// # Errors
//
// Errors are translated in one place, the table in errors.go: every kv error
// kind has one gRPC code, and the stable kv code (kv.Code, e.g.
// "condition_failed") travels with it twice, so that clients can map it back
// without guessing from the gRPC code (NotFound, for instance, is both
// not_found and table_not_found):
//
//   - as the prefix of the status message: "condition_failed: condition
//     failed: version is 7", readable in grpcurl;
//   - as a google.rpc.ErrorInfo detail with Domain [ErrorDomain] and Reason
//     the kv code, for programs.
//
// Usage:
//
//	s := grpc.NewServer()
//	grpcapi.Register(s, svc, grpcapi.WithLimits(limits))
//	s.Serve(lis)
package grpcapi
