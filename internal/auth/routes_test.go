package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

type routesRecorder struct {
	Service
	calls int
}

func (r *routesRecorder) Routes(context.Context, *cairnpb.RoutesRequest) (*cairnpb.RoutesResponse, error) {
	r.calls++
	return &cairnpb.RoutesResponse{}, nil
}

// TestRoutesNeedsTableRead: a table's routes (whose range bounds are keys)
// are told only to users who may read the whole table; a user with a
// prefix grant is refused (its client lets the nodes forward instead).
func TestRoutesNeedsTableRead(t *testing.T) {
	a := newTestAuth(true)
	next := &routesRecorder{}
	g := NewGuard(a, next)
	as := func(user string) context.Context { return WithPrincipal(context.Background(), &Principal{User: user}) }
	for _, c := range []struct {
		user, table string
		ok          bool
	}{
		{"writer", "billing", true},
		{"reader", "billing", false}, // read on the prefix invoices/ only
		{"writer", "other", false},
	} {
		before := next.calls
		_, err := g.Routes(as(c.user), &cairnpb.RoutesRequest{Table: c.table})
		if c.ok != (err == nil) || (!c.ok && !errors.Is(err, kv.ErrPermissionDenied)) {
			t.Errorf("%s routes of %s: %v", c.user, c.table, err)
		}
		if !c.ok && next.calls != before {
			t.Errorf("%s routes of %s: denied but passed on", c.user, c.table)
		}
	}
}
