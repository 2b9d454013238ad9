package auth

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
)

func loadPool(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}

// ServerTLS returns the TLS config of the client listeners: TLS 1.2+,
// the node's certificate, and, with caFile, verification of client
// certificates when a client presents one (its common name is then the
// user; see AuthenticateCert).
func ServerTLS(certFile, keyFile, caFile string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("auth: --cert/--key: %w", err)
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if caFile != "" {
		if cfg.ClientCAs, err = loadPool(caFile); err != nil {
			return nil, fmt.Errorf("auth: --ca: %w", err)
		}
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}

// PeerTLS returns the server and client TLS configs of node-to-node
// mTLS: each side presents its certificate and requires the other's to
// chain to caFile. A node without such a certificate cannot open a Raft
// stream or forward a request.
func PeerTLS(certFile, keyFile, caFile string) (server, client *tls.Config, err error) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: --peer-cert/--peer-key: %w", err)
	}
	pool, err := loadPool(caFile)
	if err != nil {
		return nil, nil, fmt.Errorf("auth: --peer-ca: %w", err)
	}
	server = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert},
		ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert}
	client = &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}, RootCAs: pool}
	return server, client, nil
}

// IsLoopback reports whether a listen address binds loopback only
// ("localhost", 127.0.0.0/8, ::1). An empty host (all interfaces) is not.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
