package jwtauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testNow is the fixed clock of every verifier in these tests.
var testNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// testKeyPairs holds two private keys of each type, generated once: RSA
// generation is slow under -race.
type testKeyPairs struct {
	rsa1, rsa2 *rsa.PrivateKey
	ec1, ec2   *ecdsa.PrivateKey
	ed1, ed2   ed25519.PrivateKey
}

var generateKeys = sync.OnceValue(func() testKeyPairs {
	var k testKeyPairs
	k.rsa1 = must(rsa.GenerateKey(rand.Reader, 2048))
	k.rsa2 = must(rsa.GenerateKey(rand.Reader, 2048))
	k.ec1 = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	k.ec2 = must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))
	_, k.ed1 = must2(ed25519.GenerateKey(rand.Reader))
	_, k.ed2 = must2(ed25519.GenerateKey(rand.Reader))
	return k
})

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(err)
	}
	return a, b
}

// publicPEM returns the PKIX PEM encoding of priv's public key.
func publicPEM(tb testing.TB, priv crypto.Signer) []byte {
	tb.Helper()
	der, err := x509.MarshalPKIXPublicKey(priv.Public())
	if err != nil {
		tb.Fatalf("marshal public key: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// writeFile writes b to a new file in a temporary directory.
func writeFile(tb testing.TB, name string, b []byte) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// newVerifier returns a Verifier over cfg with the test clock.
func newVerifier(tb testing.TB, cfg Config) *Verifier {
	tb.Helper()
	cfg.Now = func() time.Time { return testNow }
	v, err := New(cfg)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return v
}

// allKeysVerifier accepts HS256 with testSecret and the first key of each
// public key type, loaded from PEM files.
func allKeysVerifier(tb testing.TB) *Verifier {
	tb.Helper()
	k := generateKeys()
	paths := []string{
		writeFile(tb, "rsa.pem", publicPEM(tb, k.rsa1)),
		writeFile(tb, "ec.pem", publicPEM(tb, k.ec1)),
		writeFile(tb, "ed.pem", publicPEM(tb, k.ed1)),
	}
	keys, err := LoadKeyFiles(paths)
	if err != nil {
		tb.Fatalf("LoadKeyFiles: %v", err)
	}
	return newVerifier(tb, Config{Secret: testSecret, PublicKeys: keys})
}

// claimsFor returns claims naming sub, expiring an hour after testNow.
func claimsFor(sub string) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": testNow.Add(time.Hour).Unix()}
}

// sign signs claims with method and key.
func sign(tb testing.TB, method jwt.SigningMethod, key any, claims jwt.Claims) string {
	tb.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		tb.Fatalf("sign %s: %v", method.Alg(), err)
	}
	return s
}
