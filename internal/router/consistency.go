package router

import (
	"context"
	"time"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
	"github.com/cairn-db/cairn/internal/replica"
)

// sessionWait bounds how long a session read waits for the local replica
// to apply up to the session's position before reading linearizably
// instead (which any replica can do, at the price of a ReadIndex round).
const sessionWait = 50 * time.Millisecond

// readLevel is a parsed read consistency request.
type readLevel struct {
	level        string // kv.Linearizable, kv.Session or kv.Stale
	maxStaleness time.Duration
	token        kv.SessionToken
}

// parseReadLevel checks a request's consistency fields; "" takes the
// table's default (tableDefault, itself "" for linearizable). The token
// is checked whenever given, since a table default may make it count.
func parseReadLevel(consistency, tableDefault string, maxStalenessMs int64, token string) (readLevel, error) {
	lv := readLevel{level: kv.Linearizable}
	c, err := kv.ParseConsistency(consistency)
	if err != nil {
		return lv, err
	}
	tok, err := kv.DecodeSessionToken(token)
	if err != nil {
		return lv, err
	}
	if c == "" {
		if maxStalenessMs != 0 && tableDefault == kv.Stale {
			c = kv.Stale
		} else if maxStalenessMs == 0 {
			c = tableDefault
		}
	}
	switch c {
	case kv.Session:
		lv.token, lv.level = tok, kv.Session
	case kv.Stale:
		if lv.maxStaleness, err = kv.CheckMaxStaleness(maxStalenessMs); err != nil {
			return lv, err
		}
		lv.level = kv.Stale
	}
	if c != kv.Stale && maxStalenessMs != 0 {
		return lv, kv.Errorf(kv.ErrInvalidArgument, "max_staleness applies only to stale reads")
	}
	return lv, nil
}

// served says how a read was served.
type served struct {
	level     string
	staleness time.Duration
	entry     kv.SessionEntry
}

// barrier runs the wait the read level needs on replica r before a read
// of the local Pebble, and says what it served:
//
//   - linearizable: ReadBarrier (lease or ReadIndex);
//   - session: if r can judge the token and applies up to it within
//     sessionWait, nothing more; otherwise ReadBarrier (served as
//     linearizable, which satisfies every token);
//   - stale: StaleBarrier, which proves the bound or fails with
//     kv.ErrTooStale.
//
// The returned entry is r's visible position after the wait, taken
// before the data is read, so the data reflects at least it.
func barrier(ctx context.Context, r *replica.Replica, lv readLevel) (served, error) {
	out := served{level: lv.level}
	switch lv.level {
	case kv.Session:
		d := r.Desc()
		ok := false
		if need, err := lv.token.Need(d.TableId, d.Id, d.Generation); err == nil {
			if ok, err = r.SessionBarrier(ctx, need, sessionWait); err != nil {
				return out, err
			}
		}
		if !ok {
			out.level = kv.Linearizable
			if err := r.ReadBarrier(ctx); err != nil {
				return out, err
			}
		}
	case kv.Stale:
		s, err := r.StaleBarrier(ctx, lv.maxStaleness)
		if err != nil {
			return out, err
		}
		out.staleness = s
	default:
		if err := r.ReadBarrier(ctx); err != nil {
			return out, err
		}
	}
	out.entry = r.SessionEntry()
	return out, nil
}

// writeToken is the session token entry of a write applied at index on r.
func writeToken(r *replica.Replica, index uint64) string {
	d := r.Desc()
	var t kv.SessionToken
	t.Observe(kv.SessionEntry{Table: d.TableId, Range: d.Id, Generation: d.Generation, Index: index})
	return t.Encode()
}

// weaker orders levels for a list over several ranges, which reports the
// weakest level any part was served at.
func weaker(a, b string) string {
	rank := func(l string) int {
		switch l {
		case kv.Stale:
			return 0
		case kv.Session:
			return 1
		case kv.Linearizable:
			return 2
		}
		return 3 // "": nothing served yet
	}
	if rank(b) < rank(a) {
		return b
	}
	return a
}

// mergeListPart folds one range's part of a list into the whole.
func mergeListPart(out, sub *cairnpb.ListResponse) error {
	tok, err := kv.MergeSessionTokens(out.SessionToken, sub.SessionToken)
	if err != nil {
		return kv.Errorf(kv.ErrInternal, "list: %v", err)
	}
	out.SessionToken = tok
	out.ServedConsistency = weaker(out.ServedConsistency, sub.ServedConsistency)
	out.ServedBy = sub.ServedBy
	out.StalenessMs = max(out.StalenessMs, sub.StalenessMs)
	return nil
}

// tokenOf encodes one entry as a token.
func tokenOf(e kv.SessionEntry) string {
	var t kv.SessionToken
	t.Observe(e)
	return t.Encode()
}
