// Package auth is cairn's authentication and authorization: who is this
// request, and may they read or write this table and key.
//
// It sits between the front ends and the router on the request path
// (front end -> auth -> router -> replica -> storage):
//
//   - [Authenticator] holds the node's view of the auth records of the meta
//     range (users with argon2id hashes, roles with grants, API tokens, the
//     enabled flag and token secret) as an immutable snapshot, rebuilt by
//     [Authenticator.Watch] whenever the meta replica applies something. It
//     turns credentials (HTTP Authorization header, gRPC metadata, RESP
//     AUTH, verified client certificate, signed tokens) into a [Principal].
//   - [Guard] wraps the router's kv.Service and checks every operation of
//     the principal in the request context; [Authenticator.CheckRequest] is
//     the same check for requests forwarded over the peer channel, run by
//     the leader with its own snapshot and the principal the forwarding node
//     attached ([ForwardInterceptor], [PrincipalFromPeer]).
//   - [Admin] serves the auth administration API (users, roles, grants,
//     tokens, auth on/off) by proposing cairnpb.AuthCommand to the meta
//     range; internal/replica/auth.go applies them.
//   - TLS helpers ([ServerTLS], [PeerTLS]) and development certificates
//     ([CreateCA], [CreateLeaf]).
//
// Invariants: with auth enabled every check fails closed (no principal,
// unknown user, unknown request kind, unknown permission: denied); the
// hot-path check allocates nothing and takes no lock (an atomic load of the
// snapshot); passwords and tokens never appear in errors or logs. The model
// and its trade-offs are in docs/design/auth.md.
package auth
