package auth

import (
	"encoding/base64"
	"errors"
	"strings"
)

// Credentials are what a client presented: a user and password, or a
// token. The zero value is "none".
type Credentials struct {
	User     string
	Password string
	Token    string
}

// Empty reports whether no credentials were given.
func (c Credentials) Empty() bool { return c.User == "" && c.Password == "" && c.Token == "" }

// maxHeaderBytes bounds an Authorization header.
const maxHeaderBytes = 4096

// ErrBadHeader is the error of a malformed Authorization header. Its text
// is safe to show: it never contains the header.
var ErrBadHeader = errors.New("malformed Authorization header: want \"Basic base64(user:password)\" or \"Bearer TOKEN\"")

// ParseAuthorization decodes an HTTP Authorization header (RFC 7617 Basic
// or RFC 6750 Bearer). An empty header gives empty credentials.
func ParseAuthorization(h string) (Credentials, error) {
	if h == "" {
		return Credentials{}, nil
	}
	if len(h) > maxHeaderBytes {
		return Credentials{}, ErrBadHeader
	}
	scheme, rest, ok := strings.Cut(h, " ")
	rest = strings.TrimLeft(rest, " ")
	if !ok || rest == "" {
		return Credentials{}, ErrBadHeader
	}
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(rest)
		if err != nil {
			return Credentials{}, ErrBadHeader
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok || user == "" || pass == "" {
			return Credentials{}, ErrBadHeader
		}
		return Credentials{User: user, Password: pass}, nil
	case "bearer":
		if strings.ContainsAny(rest, " \t") {
			return Credentials{}, ErrBadHeader
		}
		return Credentials{Token: rest}, nil
	}
	return Credentials{}, ErrBadHeader
}
