package config

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
)

// maxNameBytes is the longest node name.
const maxNameBytes = 64

// ParseInitialCluster parses "n1=host:port,n2=host:port,..." into a map
// from node name to peer address. Spaces around entries, names and
// addresses are ignored; an empty string is an empty cluster (nil). Names
// are [A-Za-z0-9._-]{1,64}; addresses are host:port with a host and a
// non-zero port; names and addresses must be unique.
func ParseInitialCluster(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := map[string]string{}
	for entry := range strings.SplitSeq(s, ",") {
		name, addr, ok := strings.Cut(entry, "=")
		if !ok {
			return nil, fmt.Errorf("initial cluster entry %q: want name=host:port", strings.TrimSpace(entry))
		}
		name, addr = strings.TrimSpace(name), strings.TrimSpace(addr)
		if err := addMember(m, name, addr); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// addMember checks one initial-cluster member and adds it to m.
func addMember(m map[string]string, name, addr string) error {
	if err := checkName(name); err != nil {
		return fmt.Errorf("initial cluster: %w", err)
	}
	if err := checkPeerAddr(addr); err != nil {
		return fmt.Errorf("initial cluster member %s: %w", name, err)
	}
	if _, dup := m[name]; dup {
		return fmt.Errorf("initial cluster: node name %q appears twice", name)
	}
	for other, a := range m {
		if a == addr {
			return fmt.Errorf("initial cluster: nodes %s and %s have the same address %q", other, name, addr)
		}
	}
	m[name] = addr
	return nil
}

// FormatInitialCluster is the inverse of ParseInitialCluster: entries
// sorted by name. It returns "" for an empty map.
func FormatInitialCluster(m map[string]string) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n)
		b.WriteByte('=')
		b.WriteString(m[n])
	}
	return b.String()
}

// checkName checks a node name against [A-Za-z0-9._-]{1,64}.
func checkName(name string) error {
	if name == "" {
		return errors.New("node name is empty")
	}
	if len(name) > maxNameBytes {
		return fmt.Errorf("node name is %d bytes; the limit is %d", len(name), maxNameBytes)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isNameByte(c) {
			return fmt.Errorf("node name %q: only A-Z, a-z, 0-9, '.', '_' and '-' are allowed", name)
		}
	}
	return nil
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
}

// hostPort is a parsed, checked host:port address.
type hostPort struct {
	host string
	port int
}

// specific reports whether others can dial the address: it names a host
// other than the unspecified one and a non-zero port.
func (a hostPort) specific() bool {
	if a.host == "" || a.port == 0 {
		return false
	}
	ip := net.ParseIP(a.host)
	return ip == nil || !ip.IsUnspecified()
}

// parseHostPort checks addr is host:port where host is empty, an IP or a
// DNS name, and port is 0-65535.
func parseHostPort(addr string) (hostPort, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return hostPort{}, fmt.Errorf("%q is not host:port", addr)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return hostPort{}, fmt.Errorf("%q: port %q is not a number in 0-65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil && !isHostname(host) {
		return hostPort{}, fmt.Errorf("%q: host %q is neither an IP address nor a host name", addr, host)
	}
	return hostPort{host: host, port: int(p)}, nil
}

// isHostname reports whether h is a plausible DNS name: at most 253 bytes
// of letters, digits, '-', '_' and '.'.
func isHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// checkPeerAddr checks an address that other nodes dial.
func checkPeerAddr(addr string) error {
	a, err := parseHostPort(addr)
	if err != nil {
		return err
	}
	if !a.specific() {
		return fmt.Errorf("%q: other nodes need a specific host and a non-zero port", addr)
	}
	return nil
}
