package jwtauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"math/big"
	"path/filepath"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func TestNewErrors(t *testing.T) {
	k := generateKeys()
	p384 := must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))
	privDER := must(x509.MarshalPKCS8PrivateKey(k.ed1))
	privPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER})
	good := publicPEM(t, k.rsa1)
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings of the error
	}{
		{"nothing", Config{}, []string{"jwtauth: no secret or public key"}},
		{"empty secret", Config{Secret: []byte{}}, []string{"no secret or public key"}},
		{"not PEM", Config{PublicKeys: [][]byte{good, []byte("hello")}}, []string{"jwtauth: public key 2", "no PEM block"}},
		{"private key", Config{PublicKeys: [][]byte{privPEM}}, []string{"public key 1", "private key"}},
		{"P-384", Config{PublicKeys: [][]byte{publicPEM(t, p384)}}, []string{"public key 1", "P-384", "P-256"}},
		{"bad DER", Config{PublicKeys: [][]byte{pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}})}}, []string{"public key 1", "PUBLIC KEY"}},
		{"unknown block", Config{PublicKeys: [][]byte{pem.EncodeToMemory(&pem.Block{Type: "FOO", Bytes: []byte{1}})}}, []string{"unsupported PEM block \"FOO\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, err := New(tt.cfg)
			if err == nil {
				t.Fatalf("New(%s) = %v, want an error", tt.name, v)
			}
			for _, want := range tt.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("New(%s) error %q does not contain %q", tt.name, err, want)
				}
			}
		})
	}
}

func TestNewOtherKeyEncodings(t *testing.T) {
	k := generateKeys()
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa1.PublicKey)})
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1)}
	certDER := must(x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.ec1.Public(), k.ec1))
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})
	v := newVerifier(t, Config{PublicKeys: [][]byte{pkcs1, cert}})
	accept(t, v, sign(t, jwt.SigningMethodRS256, k.rsa1, claimsFor("alice")))
	accept(t, v, sign(t, jwt.SigningMethodES256, k.ec1, claimsFor("alice")))
}

func TestLoadKeyFiles(t *testing.T) {
	k := generateKeys()
	rsaPath := writeFile(t, "rsa.pem", publicPEM(t, k.rsa1))
	edPath := writeFile(t, "ed.pem", publicPEM(t, k.ed1))
	keys, err := LoadKeyFiles([]string{rsaPath, edPath})
	if err != nil {
		t.Fatalf("LoadKeyFiles: %v", err)
	}
	if len(keys) != 2 || string(keys[0]) != string(publicPEM(t, k.rsa1)) || string(keys[1]) != string(publicPEM(t, k.ed1)) {
		t.Errorf("LoadKeyFiles returned %d keys not matching the files in order", len(keys))
	}

	missing := filepath.Join(t.TempDir(), "missing.pem")
	garbage := writeFile(t, "garbage.pem", []byte("not a key"))
	for _, path := range []string{missing, garbage} {
		_, err := LoadKeyFiles([]string{rsaPath, path})
		if err == nil {
			t.Fatalf("LoadKeyFiles(%s) succeeded, want an error", path)
		}
		if !strings.HasPrefix(err.Error(), "jwtauth: ") || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadKeyFiles(%s) error %q does not name the file with the package prefix", path, err)
		}
	}
}
