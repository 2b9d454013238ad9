package httpapi

import (
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/cairn-db/cairn/internal/kv"
)

// Consistency over HTTP (docs/design/reads.md, "Consistency levels"):
// reads take ?consistency=linearizable|session|stale and ?max_staleness=
// (stale only); every read and write takes the session token in the
// Cairn-Session request header and answers the merged token in the
// Cairn-Session reply header, so a client that echoes the header back
// gets read-your-writes and monotonic reads. Read replies say how they
// were served: Cairn-Consistency, Cairn-Served-By and, for stale reads,
// Cairn-Staleness.
const (
	headerSession     = "Cairn-Session"
	headerConsistency = "Cairn-Consistency"
	headerServedBy    = "Cairn-Served-By"
	headerStaleness   = "Cairn-Staleness"
)

// readLevel is a read's parsed consistency parameters.
type readLevel struct {
	consistency    string
	maxStalenessMs int64
	session        string // the request's Cairn-Session ("" if none)
}

// parseReadLevel reads ?consistency, ?max_staleness and Cairn-Session.
func parseReadLevel(q url.Values, h http.Header) (readLevel, error) {
	var lv readLevel
	var err error
	if lv.consistency, err = kv.ParseConsistency(firstValue(q, "consistency")); err != nil {
		return lv, err
	}
	if vs, ok := q["max_staleness"]; ok {
		if lv.consistency != kv.Stale {
			return lv, kv.Errorf(kv.ErrInvalidArgument, "max_staleness applies only to consistency=stale")
		}
		d, err := kv.ParseMaxStaleness(vs[0])
		if err != nil {
			return lv, err
		}
		lv.maxStalenessMs = d.Milliseconds()
	}
	lv.session, err = sessionHeader(h)
	return lv, err
}

// sessionHeader returns the request's session token, checked.
func sessionHeader(h http.Header) (string, error) {
	tok, _, err := singleHeader(h, headerSession)
	if err != nil {
		return "", err
	}
	if _, err := kv.DecodeSessionToken(tok); err != nil {
		return "", err
	}
	return tok, nil
}

// setSession answers the merge of the request's token and the reply's.
// Both were checked (the request's here, the reply's by the server that
// made it); a merge failure would be a bug and leaves the header unset.
func setSession(w http.ResponseWriter, requestToken, replyToken string) {
	tok, err := kv.MergeSessionTokens(requestToken, replyToken)
	if err == nil && tok != "" {
		w.Header().Set(headerSession, tok)
	}
}

// setServed writes the headers saying how a read was served.
func setServed(w http.ResponseWriter, level string, by uint64, stalenessMs int64) {
	hdr := w.Header()
	if level != "" {
		hdr.Set(headerConsistency, level)
	}
	if s := kv.FormatServedBy(by); s != "" {
		hdr.Set(headerServedBy, s)
	}
	if level == kv.Stale {
		hdr.Set(headerStaleness, (time.Duration(stalenessMs) * time.Millisecond).String())
	}
}

// setMissHeaders sets the served headers of a read that found nothing.
func setMissHeaders(w http.ResponseWriter, requestToken string, err error) {
	var miss *kv.ReadMissError
	if errors.As(err, &miss) {
		setSession(w, requestToken, miss.SessionToken)
		setServed(w, miss.ServedConsistency, miss.ServedBy, miss.StalenessMs)
	}
}
