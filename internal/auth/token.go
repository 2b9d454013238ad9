package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"strings"
	"time"
)

// Token format (docs/design/auth.md):
//
//	"cairn1." + base64url(payload) + "." + base64url(HMAC-SHA256(secret, payload))
//
// payload: kind byte ('L' login, 'A' API token), expiry (uint64 Unix
// seconds, big endian), uvarint-length-prefixed ID, uvarint-length-prefixed
// user name. Login tokens are stateless (valid until expiry while the user
// exists); API tokens are valid only while their record "auth/token/"+ID
// exists in the meta range, which is how revocation works.

const tokenPrefix = "cairn1."

// Token kinds.
const (
	TokenLogin byte = 'L'
	TokenAPI   byte = 'A'
)

// maxTokenBytes bounds what ParseToken looks at.
const maxTokenBytes = 1024

var errBadToken = errors.New("auth: malformed token")

// TokenClaims is what a token says.
type TokenClaims struct {
	Kind    byte
	ID      string
	User    string
	Expires time.Time
}

// SignToken returns the token of claims signed with secret.
func SignToken(secret []byte, c TokenClaims) string {
	p := make([]byte, 0, 16+len(c.ID)+len(c.User))
	p = append(p, c.Kind)
	p = binary.BigEndian.AppendUint64(p, uint64(c.Expires.Unix()))
	p = binary.AppendUvarint(p, uint64(len(c.ID)))
	p = append(p, c.ID...)
	p = binary.AppendUvarint(p, uint64(len(c.User)))
	p = append(p, c.User...)
	b64 := base64.RawURLEncoding.Strict()
	return tokenPrefix + b64.EncodeToString(p) + "." + b64.EncodeToString(mac(secret, p))
}

func mac(secret, payload []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write(payload)
	return h.Sum(nil)
}

// ParseToken checks the token's signature (constant-time) and decodes its
// claims. It does not check expiry or revocation (see Authenticator). Its
// errors never contain the token.
func ParseToken(secret []byte, tok string) (TokenClaims, error) {
	if len(secret) == 0 || len(tok) > maxTokenBytes || !strings.HasPrefix(tok, tokenPrefix) {
		return TokenClaims{}, errBadToken
	}
	body, sig, ok := strings.Cut(tok[len(tokenPrefix):], ".")
	if !ok {
		return TokenClaims{}, errBadToken
	}
	b64 := base64.RawURLEncoding.Strict()
	p, err := b64.DecodeString(body)
	if err != nil {
		return TokenClaims{}, errBadToken
	}
	s, err := b64.DecodeString(sig)
	if err != nil || !hmac.Equal(s, mac(secret, p)) {
		return TokenClaims{}, errBadToken
	}
	return decodeClaims(p)
}

func decodeClaims(p []byte) (TokenClaims, error) {
	if len(p) < 9 || (p[0] != TokenLogin && p[0] != TokenAPI) {
		return TokenClaims{}, errBadToken
	}
	c := TokenClaims{Kind: p[0], Expires: time.Unix(int64(binary.BigEndian.Uint64(p[1:9])), 0)}
	rest := p[9:]
	field := func() (string, bool) {
		n, w := binary.Uvarint(rest)
		if w <= 0 || n > uint64(len(rest)-w) {
			return "", false
		}
		f := string(rest[w : w+int(n)])
		rest = rest[w+int(n):]
		return f, true
	}
	var ok1, ok2 bool
	c.ID, ok1 = field()
	c.User, ok2 = field()
	if !ok1 || !ok2 || len(rest) != 0 || c.User == "" {
		return TokenClaims{}, errBadToken
	}
	return c, nil
}
