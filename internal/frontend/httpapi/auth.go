package httpapi

import (
	"context"
	"net/http"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// AuthAdmin is what /v1/auth needs (internal/auth.Admin).
type AuthAdmin interface {
	Do(ctx context.Context, req *cairnpb.AuthAdminRequest) (*cairnpb.AuthAdminResponse, error)
	Login(ctx context.Context, req *cairnpb.LoginRequest) (*cairnpb.LoginResponse, error)
}

// maxAuthBodyBytes bounds the JSON body of /v1/auth requests.
const maxAuthBodyBytes = 64 << 10

var authJSON = protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: false}

// authAdmin serves POST /v1/auth: the body is an AuthAdminRequest in
// protobuf JSON, e.g. {"add_user":{"name":"alice","password":"..."}} or
// {"grant":{"role":"r","grant":{"table":"t","prefix":"aW52Lw==","permission":"read"}}}
// (prefix is base64, as protobuf JSON encodes bytes).
func (h *handler) authAdmin(w *statusWriter, r *http.Request) {
	if h.admin == nil {
		h.fail(w, r, kv.Errorf(errNoRoute, "auth is not served here"))
		return
	}
	req := &cairnpb.AuthAdminRequest{}
	if !h.decodeProto(w, r, req) {
		return
	}
	resp, err := h.admin.Do(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeProto(w, r, resp)
}

// login serves POST /v1/auth/login (body optional: {"ttl_seconds":N}).
func (h *handler) login(w *statusWriter, r *http.Request) {
	if h.admin == nil {
		h.fail(w, r, kv.Errorf(errNoRoute, "auth is not served here"))
		return
	}
	req := &cairnpb.LoginRequest{}
	if !h.decodeProto(w, r, req) {
		return
	}
	resp, err := h.admin.Login(r.Context(), req)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.writeProto(w, r, resp)
}

func (h *handler) decodeProto(w *statusWriter, r *http.Request, m proto.Message) bool {
	body, err := readBody(w, r, maxAuthBodyBytes)
	if err != nil {
		h.fail(w, r, err)
		return false
	}
	if len(body) == 0 {
		return true
	}
	if err := protojson.Unmarshal(body, m); err != nil {
		// NB: protojson's message may quote the body (a password): not shown.
		h.fail(w, r, kv.Errorf(kv.ErrInvalidArgument, "request body is not a valid JSON request of this endpoint"))
		return false
	}
	return true
}

func (h *handler) writeProto(w *statusWriter, r *http.Request, m proto.Message) {
	b, err := authJSON.Marshal(m)
	if err != nil {
		h.fail(w, r, kv.Errorf(kv.ErrInternal, "encode: %v", err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(b, '\n'))
}
