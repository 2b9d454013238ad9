// Package kv holds what every front end shares: the Service interface that
// the router implements (front ends -> auth -> router -> replica -> storage),
// the operating errors with their stable codes, the input limits, and the
// page-token format of List.
//
// Front ends (HTTP, gRPC, RESP) are thin adapters: they decode a request,
// call Service, and translate errors through one table each. Keeping the
// request types as the protobuf messages of api/cairnpb avoids a second copy
// of every field; Validate* functions here check them at the edge.
package kv
