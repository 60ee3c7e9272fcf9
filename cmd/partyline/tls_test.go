package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// selfSigned writes a certificate for 127.0.0.1 and its key to dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "partyline test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestServesHTTPSAndWSS(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t, t.TempDir())
	tlsConfig := &tls.Config{RootCAs: pool}
	addr, _ := startBinaryWith(t, &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig}}, "https",
		"--store", "memory", "--tls-cert", certFile, "--tls-key", keyFile)
	dialer := websocket.Dialer{TLSClientConfig: tlsConfig}
	ws, _, err := dialer.Dial("wss://"+addr+"/ws?username=alice&room=lobby", nil)
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer ws.Close()
	ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var welcome struct{ Type, Username string }
	if err := ws.ReadJSON(&welcome); err != nil || welcome.Type != "welcome" || welcome.Username != "alice" {
		t.Fatalf("first frame over WSS: %+v, %v", welcome, err)
	}
	if _, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/ws?username=bob", nil); err == nil {
		t.Fatal("plain ws:// to a TLS listener succeeded")
	}
}
