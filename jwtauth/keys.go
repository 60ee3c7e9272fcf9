package jwtauth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strings"
)

// LoadKeyFiles reads the PEM public key files at paths, in order, for
// Config.PublicKeys. It fails on the first file that cannot be read or holds
// no usable public key, naming that file.
func LoadKeyFiles(paths []string) ([][]byte, error) {
	keys := make([][]byte, 0, len(paths))
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: read public key: %w", err)
		}
		if _, err := parsePublicKeys(b); err != nil {
			return nil, fmt.Errorf("jwtauth: public key %s: %w", path, err)
		}
		keys = append(keys, b)
	}
	return keys, nil
}

// publicKey is a parsed verification key and the algorithm it verifies.
type publicKey struct {
	alg string
	key any
}

// parsePublicKeys parses every PEM block in b; it fails unless there is at
// least one and each is a supported public key.
func parsePublicKeys(b []byte) ([]publicKey, error) {
	var keys []publicKey
	for {
		block, rest := pem.Decode(b)
		if block == nil {
			break
		}
		k, err := parseBlock(block)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
		b = rest
	}
	if len(keys) == 0 {
		return nil, errors.New("no PEM block found")
	}
	return keys, nil
}

// parseBlock parses one PEM block into a public key.
func parseBlock(block *pem.Block) (publicKey, error) {
	var (
		key any
		err error
	)
	switch {
	case block.Type == "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case block.Type == "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case block.Type == "CERTIFICATE":
		key, err = certificateKey(block.Bytes)
	case strings.HasSuffix(block.Type, "PRIVATE KEY"):
		return publicKey{}, fmt.Errorf("PEM block %q is a private key; give the public key", block.Type)
	default:
		return publicKey{}, fmt.Errorf("unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return publicKey{}, fmt.Errorf("parse %q: %w", block.Type, err)
	}
	return classify(key)
}

// certificateKey returns the public key of a DER certificate.
func certificateKey(der []byte) (any, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return cert.PublicKey, nil
}

// classify names the algorithm a public key verifies.
func classify(key any) (publicKey, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		return publicKey{alg: "RS256", key: k}, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return publicKey{}, fmt.Errorf("ECDSA curve %s is not supported; ES256 needs P-256", k.Curve.Params().Name)
		}
		return publicKey{alg: "ES256", key: k}, nil
	case ed25519.PublicKey:
		return publicKey{alg: "EdDSA", key: k}, nil
	default:
		return publicKey{}, fmt.Errorf("unsupported public key type %T", key)
	}
}
