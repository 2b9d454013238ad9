package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are the argon2id cost parameters stored with each hash, so
// they can be raised later without invalidating existing hashes.
type Argon2Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
	SaltBytes   int
	KeyBytes    uint32
}

// DefaultArgon2Params follow OWASP's argon2id recommendation (19 MiB, 2
// passes, 1 lane): about 20-40 ms per hash, which is why verification is
// cached (see Authenticator).
var DefaultArgon2Params = Argon2Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1, SaltBytes: 16, KeyBytes: 32}

// Limits on parameters read from a stored hash: a corrupt or hostile hash
// string must not make a node allocate gigabytes.
const (
	maxArgon2MemoryKiB  = 1 << 20 // 1 GiB
	maxArgon2Iterations = 64
	maxPasswordBytes    = 1024
)

var errBadHash = errors.New("auth: malformed password hash")

// HashPassword returns the PHC string of password under params with a
// fresh random salt: $argon2id$v=19$m=M,t=T,p=P$salt$key (unpadded base64).
func HashPassword(password string, params Argon2Params) (string, error) {
	if len(password) == 0 {
		return "", errors.New("auth: empty password")
	}
	if len(password) > maxPasswordBytes {
		return "", fmt.Errorf("auth: password longer than %d bytes", maxPasswordBytes)
	}
	salt := make([]byte, params.SaltBytes)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, params.Iterations, params.MemoryKiB, params.Parallelism, params.KeyBytes)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, params.MemoryKiB, params.Iterations,
		params.Parallelism, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// parsedHash is a decoded PHC string.
type parsedHash struct {
	params Argon2Params
	salt   []byte
	key    []byte
}

// parseHash decodes a PHC argon2id string, refusing parameters outside
// sane bounds.
func parseHash(s string) (parsedHash, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[0] != "" || parts[1] != "argon2id" || parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return parsedHash{}, errBadHash
	}
	var p parsedHash
	for _, kv := range strings.Split(parts[3], ",") {
		name, val, ok := strings.Cut(kv, "=")
		if !ok {
			return parsedHash{}, errBadHash
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return parsedHash{}, errBadHash
		}
		switch name {
		case "m":
			p.params.MemoryKiB = uint32(n)
		case "t":
			p.params.Iterations = uint32(n)
		case "p":
			if n > 255 {
				return parsedHash{}, errBadHash
			}
			p.params.Parallelism = uint8(n)
		default:
			return parsedHash{}, errBadHash
		}
	}
	if p.params.MemoryKiB < 8 || p.params.MemoryKiB > maxArgon2MemoryKiB || p.params.Iterations < 1 ||
		p.params.Iterations > maxArgon2Iterations || p.params.Parallelism < 1 || p.params.MemoryKiB < 8*uint32(p.params.Parallelism) {
		return parsedHash{}, errBadHash
	}
	var err error
	if p.salt, err = base64.RawStdEncoding.DecodeString(parts[4]); err != nil || len(p.salt) < 8 || len(p.salt) > 64 {
		return parsedHash{}, errBadHash
	}
	if p.key, err = base64.RawStdEncoding.DecodeString(parts[5]); err != nil || len(p.key) < 16 || len(p.key) > 64 {
		return parsedHash{}, errBadHash
	}
	return p, nil
}

// VerifyPassword reports whether password matches the PHC hash; the key
// comparison is constant-time. A malformed hash never matches.
func VerifyPassword(hash, password string) bool {
	if len(password) == 0 || len(password) > maxPasswordBytes {
		return false
	}
	p, err := parseHash(hash)
	if err != nil {
		return false
	}
	key := argon2.IDKey([]byte(password), p.salt, p.params.Iterations, p.params.MemoryKiB, p.params.Parallelism, uint32(len(p.key)))
	return subtle.ConstantTimeCompare(key, p.key) == 1
}
