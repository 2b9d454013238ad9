package httpapi

import (
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/cairn-db/cairn/api/cairnpb"
	"github.com/cairn-db/cairn/internal/kv"
)

// parseQuery decodes the query string, rejecting bad escapes, parameters
// not in allowed and parameters given twice. Unknown parameters are errors
// rather than ignored so that a typo (?prefx=) does not silently widen a
// list or drop a TTL.
func parseQuery(r *http.Request, allowed ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, kv.Errorf(kv.ErrInvalidArgument, "query string: %v", err)
	}
	for name, vals := range q {
		if !methodAllowed(allowed, name) {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "unknown query parameter %q", name)
		}
		if len(vals) > 1 {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "query parameter %q is given %d times", name, len(vals))
		}
	}
	return q, nil
}

// writeCondition reads If-Match / If-None-Match of a PUT or DELETE:
// If-Match: "V" (or V) is "only if the current version is V", If-None-Match: *
// is "only if absent". It returns nil when neither header is set.
func writeCondition(h http.Header) (*cairnpb.Condition, error) {
	ifMatch, hasMatch, err := singleHeader(h, "If-Match")
	if err != nil {
		return nil, err
	}
	ifNone, hasNone, err := singleHeader(h, "If-None-Match")
	if err != nil {
		return nil, err
	}
	switch {
	case hasMatch && hasNone:
		return nil, kv.Errorf(kv.ErrInvalidArgument, "If-Match and If-None-Match cannot be combined")
	case hasNone:
		if ifNone != "*" {
			return nil, kv.Errorf(kv.ErrInvalidArgument, "If-None-Match on a write must be *, got %q", ifNone)
		}
		return &cairnpb.Condition{Absent: true}, nil
	case hasMatch:
		v, err := parseVersion(ifMatch)
		if err != nil {
			return nil, err
		}
		return &cairnpb.Condition{Version: v}, nil
	}
	return nil, nil
}

// singleHeader returns the one value of header name, trimmed.
func singleHeader(h http.Header, name string) (string, bool, error) {
	vals := h.Values(name)
	switch len(vals) {
	case 0:
		return "", false, nil
	case 1:
		v := strings.TrimSpace(vals[0])
		if strings.Contains(v, ",") {
			return "", false, kv.Errorf(kv.ErrInvalidArgument, "%s must name one version", name)
		}
		return v, true, nil
	}
	return "", false, kv.Errorf(kv.ErrInvalidArgument, "%s is given %d times", name, len(vals))
}

// parseVersion parses a strong entity tag "V" or a bare V, V > 0.
func parseVersion(s string) (uint64, error) {
	switch {
	case s == "*":
		return 0, kv.Errorf(kv.ErrInvalidArgument, `If-Match: * is not supported; name a version, as in If-Match: "5"`)
	case strings.HasPrefix(s, "W/"):
		return 0, kv.Errorf(kv.ErrInvalidArgument, "a weak entity tag (%q) cannot guard a write", s)
	}
	digits := s
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		digits = s[1 : len(s)-1]
	}
	v, err := parseDecimal(digits)
	if err != nil || v == 0 {
		return 0, kv.Errorf(kv.ErrInvalidArgument, `If-Match must be a version, as in "5"; got %q`, s)
	}
	return v, nil
}

// parseDecimal accepts only ASCII digits (no sign, no spaces).
func parseDecimal(s string) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseUint(s, 10, 64)
}

// etagMatches evaluates an If-Match or If-None-Match list of a GET against
// version (0: the key is absent). weak selects weak comparison (W/"5"
// matches "5"), which RFC 9110 uses for If-None-Match.
func etagMatches(list string, version uint64, weak bool) (bool, error) {
	want := strconv.FormatUint(version, 10)
	for _, tag := range strings.Split(list, ",") {
		tag = strings.TrimSpace(tag)
		switch {
		case tag == "":
			continue
		case tag == "*":
			if version != 0 {
				return true, nil
			}
			continue
		}
		isWeak := strings.HasPrefix(tag, "W/")
		tag = strings.TrimPrefix(tag, "W/")
		if len(tag) < 2 || tag[0] != '"' || tag[len(tag)-1] != '"' || strings.Contains(tag[1:len(tag)-1], `"`) {
			return false, kv.Errorf(kv.ErrInvalidArgument, "malformed entity tag %q", tag)
		}
		if (weak || !isWeak) && version != 0 && tag[1:len(tag)-1] == want {
			return true, nil
		}
	}
	return false, nil
}

// readBody reads at most limit bytes of r's body. More is errBodyTooLarge
// (413); a body that breaks off is invalid_argument (400).
func readBody(w http.ResponseWriter, r *http.Request, limit int) ([]byte, error) {
	if r.ContentLength > int64(limit) {
		return nil, kv.Errorf(errBodyTooLarge, "body is %d bytes; the limit is %d", r.ContentLength, limit)
	}
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(http.MaxBytesReader(unwrapWriter(w), r.Body, int64(limit)))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, kv.Errorf(errBodyTooLarge, "body is over the limit of %d bytes", limit)
		}
		return nil, kv.Errorf(kv.ErrInvalidArgument, "reading body: %v", err)
	}
	return b, nil
}

// unwrapWriter returns the net/http writer under statusWriter, so that
// MaxBytesReader can tell the server to close the connection after an
// oversized body instead of draining it.
func unwrapWriter(w http.ResponseWriter) http.ResponseWriter {
	if sw, ok := w.(*statusWriter); ok {
		return sw.ResponseWriter
	}
	return w
}
