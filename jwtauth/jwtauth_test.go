package jwtauth

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/partyline/partyline"
)

// refuse asserts that v refuses token with an error wrapping
// partyline.ErrUnauthorized and, when want is not nil, want.
func refuse(t *testing.T, v *Verifier, token string, want error) {
	t.Helper()
	id, err := v.Authenticate(context.Background(), token)
	if err == nil {
		t.Fatalf("Authenticate accepted the token as %+v; want an error", id)
	}
	if !errors.Is(err, partyline.ErrUnauthorized) {
		t.Errorf("Authenticate error %v does not wrap partyline.ErrUnauthorized", err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("Authenticate error %v does not wrap %v", err, want)
	}
	if code := partyline.ErrorCode(err); code != partyline.CodeUnauthorized {
		t.Errorf("ErrorCode = %q, want %q", code, partyline.CodeUnauthorized)
	}
}

// accept asserts that v accepts token and returns the identity.
func accept(t *testing.T, v *Verifier, token string) partyline.Identity {
	t.Helper()
	id, err := v.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	return id
}

func TestAuthenticateEachAlgorithm(t *testing.T) {
	k := generateKeys()
	v := allKeysVerifier(t)
	tests := []struct {
		method jwt.SigningMethod
		key    any
	}{
		{jwt.SigningMethodHS256, testSecret},
		{jwt.SigningMethodRS256, k.rsa1},
		{jwt.SigningMethodES256, k.ec1},
		{jwt.SigningMethodEdDSA, k.ed1},
	}
	for _, tt := range tests {
		t.Run(tt.method.Alg(), func(t *testing.T) {
			id := accept(t, v, sign(t, tt.method, tt.key, claimsFor("alice")))
			if id.Username != "alice" {
				t.Errorf("Username = %q, want alice", id.Username)
			}
			if want := testNow.Add(time.Hour); !id.Expires.Equal(want) {
				t.Errorf("Expires = %v, want %v", id.Expires, want)
			}
			if id.Rooms != nil {
				t.Errorf("Rooms = %#v, want nil (every room)", id.Rooms)
			}
		})
	}
}

func TestAuthenticateTime(t *testing.T) {
	v := allKeysVerifier(t)
	t.Run("expired", func(t *testing.T) {
		c := jwt.MapClaims{"sub": "alice", "exp": testNow.Add(-time.Second).Unix()}
		refuse(t, v, sign(t, jwt.SigningMethodHS256, testSecret, c), jwt.ErrTokenExpired)
	})
	t.Run("expires now", func(t *testing.T) {
		c := jwt.MapClaims{"sub": "alice", "exp": testNow.Unix()}
		refuse(t, v, sign(t, jwt.SigningMethodHS256, testSecret, c), jwt.ErrTokenExpired)
	})
	t.Run("not yet valid", func(t *testing.T) {
		c := claimsFor("alice")
		c["nbf"] = testNow.Add(time.Minute).Unix()
		refuse(t, v, sign(t, jwt.SigningMethodHS256, testSecret, c), jwt.ErrTokenNotValidYet)
	})
	t.Run("valid from now", func(t *testing.T) {
		c := claimsFor("alice")
		c["nbf"] = testNow.Unix()
		accept(t, v, sign(t, jwt.SigningMethodHS256, testSecret, c))
	})
	t.Run("no exp", func(t *testing.T) {
		id := accept(t, v, sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice"}))
		if !id.Expires.IsZero() {
			t.Errorf("Expires = %v, want zero (never)", id.Expires)
		}
	})
}

func TestAuthenticateClockIsInjected(t *testing.T) {
	now := testNow
	v, err := New(Config{Secret: testSecret, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	token := sign(t, jwt.SigningMethodHS256, testSecret, claimsFor("alice"))
	accept(t, v, token)
	now = testNow.Add(2 * time.Hour)
	refuse(t, v, token, jwt.ErrTokenExpired)
}

func TestAuthenticateWrongKey(t *testing.T) {
	k := generateKeys()
	v := allKeysVerifier(t)
	tests := []struct {
		name   string
		method jwt.SigningMethod
		key    any
	}{
		{"HS256 other secret", jwt.SigningMethodHS256, []byte("another secret, long enough.....")},
		{"RS256 unknown key", jwt.SigningMethodRS256, k.rsa2},
		{"ES256 unknown key", jwt.SigningMethodES256, k.ec2},
		{"EdDSA unknown key", jwt.SigningMethodEdDSA, k.ed2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refuse(t, v, sign(t, tt.method, tt.key, claimsFor("alice")), jwt.ErrTokenSignatureInvalid)
		})
	}
}

func TestAuthenticateWrongAlgorithm(t *testing.T) {
	k := generateKeys()
	secretOnly := newVerifier(t, Config{Secret: testSecret})
	rsaOnly := newVerifier(t, Config{PublicKeys: [][]byte{publicPEM(t, k.rsa1)}})
	edOnly := newVerifier(t, Config{PublicKeys: [][]byte{publicPEM(t, k.ed1)}})
	tests := []struct {
		name   string
		v      *Verifier
		method jwt.SigningMethod
		key    any
	}{
		{"RS256 to secret", secretOnly, jwt.SigningMethodRS256, k.rsa1},
		{"HS256 to RSA", rsaOnly, jwt.SigningMethodHS256, testSecret},
		{"ES256 to RSA", rsaOnly, jwt.SigningMethodES256, k.ec1},
		{"RS512 to RSA", rsaOnly, jwt.SigningMethodRS512, k.rsa1},
		{"PS256 to RSA", rsaOnly, jwt.SigningMethodPS256, k.rsa1},
		{"HS512 to secret", secretOnly, jwt.SigningMethodHS512, testSecret},
		{"RS256 to Ed25519", edOnly, jwt.SigningMethodRS256, k.rsa1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			refuse(t, tt.v, sign(t, tt.method, tt.key, claimsFor("alice")), jwt.ErrTokenSignatureInvalid)
		})
	}
}

func TestAuthenticateAlgNone(t *testing.T) {
	v := allKeysVerifier(t)
	token := sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor("alice"))
	refuse(t, v, token, jwt.ErrTokenSignatureInvalid)
	// The same payload under other spellings of "none", unsigned and with a
	// stray signature.
	_, payload, _ := strings.Cut(strings.TrimSuffix(token, "."), ".")
	for _, alg := range []string{"none", "None", "NONE", ""} {
		h := jwt.New(jwt.SigningMethodNone)
		h.Header["alg"] = alg
		signing, err := h.SigningString()
		if err != nil {
			t.Fatal(err)
		}
		header, _, _ := strings.Cut(signing, ".")
		refuse(t, v, header+"."+payload+".", nil)
		refuse(t, v, header+"."+payload+".c2ln", nil)
	}
}

func TestAuthenticateAlgorithmConfusion(t *testing.T) {
	k := generateKeys()
	pub := publicPEM(t, k.rsa1)
	// A token "signed" with HS256 using the RSA public key as the secret:
	// a verifier that let the header pick the algorithm would accept it.
	token := sign(t, jwt.SigningMethodHS256, pub, claimsFor("mallory"))
	refuse(t, newVerifier(t, Config{PublicKeys: [][]byte{pub}}), token, jwt.ErrTokenSignatureInvalid)
	// With a secret configured too, HS256 is allowed but only the secret
	// verifies it.
	both := newVerifier(t, Config{Secret: testSecret, PublicKeys: [][]byte{pub}})
	refuse(t, both, token, jwt.ErrTokenSignatureInvalid)
	edPub := publicPEM(t, k.ed1)
	edToken := sign(t, jwt.SigningMethodHS256, edPub, claimsFor("mallory"))
	refuse(t, newVerifier(t, Config{PublicKeys: [][]byte{edPub}}), edToken, jwt.ErrTokenSignatureInvalid)
}

func TestAuthenticateIssuerAudience(t *testing.T) {
	v := newVerifier(t, Config{Secret: testSecret, Issuer: "https://auth.example", Audience: "partyline"})
	tests := []struct {
		name string
		iss  any   // nil: no claim
		aud  any   // nil: no claim
		want error // nil: accepted
	}{
		{"match", "https://auth.example", "partyline", nil},
		{"aud array", "https://auth.example", []string{"other", "partyline"}, nil},
		{"bad iss", "https://evil.example", "partyline", jwt.ErrTokenInvalidIssuer},
		{"bad aud", "https://auth.example", "other", jwt.ErrTokenInvalidAudience},
		{"bad aud array", "https://auth.example", []string{"a", "b"}, jwt.ErrTokenInvalidAudience},
		{"missing iss", nil, "partyline", jwt.ErrTokenRequiredClaimMissing},
		{"missing aud", "https://auth.example", nil, jwt.ErrTokenRequiredClaimMissing},
		{"empty iss", "", "partyline", jwt.ErrTokenRequiredClaimMissing},
		{"empty aud", "https://auth.example", []string{}, jwt.ErrTokenRequiredClaimMissing},
		{"iss not a string", 42, "partyline", jwt.ErrTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claimsFor("alice")
			if tt.iss != nil {
				c["iss"] = tt.iss
			}
			if tt.aud != nil {
				c["aud"] = tt.aud
			}
			token := sign(t, jwt.SigningMethodHS256, testSecret, c)
			if tt.want == nil {
				accept(t, v, token)
				return
			}
			refuse(t, v, token, tt.want)
		})
	}
}

func TestAuthenticateIssuerAudienceNotConfigured(t *testing.T) {
	v := newVerifier(t, Config{Secret: testSecret})
	c := claimsFor("alice")
	c["iss"] = "anyone"
	c["aud"] = "anything"
	accept(t, v, sign(t, jwt.SigningMethodHS256, testSecret, c))
}

func TestAuthenticateRooms(t *testing.T) {
	v := newVerifier(t, Config{Secret: testSecret})
	tests := []struct {
		name  string
		rooms any // "absent": no claim
		want  []string
	}{
		{"absent", "absent", nil},
		{"null", nil, nil},
		{"empty", []string{}, []string{}},
		{"names and patterns", []string{"lobby", "team:*", "a.b-c_d"}, []string{"lobby", "team:*", "a.b-c_d"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := claimsFor("alice")
			if tt.rooms != "absent" {
				c["rooms"] = tt.rooms
			}
			id := accept(t, v, sign(t, jwt.SigningMethodHS256, testSecret, c))
			if (id.Rooms == nil) != (tt.want == nil) || !slices.Equal(id.Rooms, tt.want) {
				t.Errorf("Rooms = %#v, want %#v", id.Rooms, tt.want)
			}
		})
	}
}

func TestAuthenticateRoomsGrantAccess(t *testing.T) {
	v := newVerifier(t, Config{Secret: testSecret})
	c := claimsFor("alice")
	c["rooms"] = []string{"lobby", "team:*"}
	id := accept(t, v, sign(t, jwt.SigningMethodHS256, testSecret, c))
	for room, want := range map[string]bool{"lobby": true, "team:red": true, "team": false, "lobby2": false} {
		if got := id.CanJoin(room); got != want {
			t.Errorf("CanJoin(%q) = %v, want %v", room, got, want)
		}
	}
	c["rooms"] = []string{}
	id = accept(t, v, sign(t, jwt.SigningMethodHS256, testSecret, c))
	if id.CanJoin("lobby") {
		t.Errorf("CanJoin(lobby) with rooms [] = true, want false")
	}
}

func TestAuthenticateBadRooms(t *testing.T) {
	v := newVerifier(t, Config{Secret: testSecret})
	for _, rooms := range []any{
		"lobby",                  // not an array
		[]any{"lobby", 7},        // not a string
		[]string{""},             // empty name
		[]string{"bad room"},     // space
		[]string{"*"},            // bare wildcard
		[]string{"team*"},        // wildcard without colon
		[]string{"team:*:*"},     // wildcard inside the prefix
		[]string{"-team:*"},      // prefix not a room-name start
		[]string{"lobby", "a/b"}, // one bad entry spoils the claim
		map[string]any{"a": 1},   // object
	} {
		c := claimsFor("alice")
		c["rooms"] = rooms
		t.Run("", func(t *testing.T) {
			refuse(t, v, sign(t, jwt.SigningMethodHS256, testSecret, c), nil)
		})
	}
}

func TestAuthenticateBadSubject(t *testing.T) {
	v := newVerifier(t, Config{Secret: testSecret})
	for _, sub := range []any{"", "bad name", "-alice", ".alice", "alice/bob", strings.Repeat("a", 33), "élodie", 42} {
		c := claimsFor("x")
		c["sub"] = sub
		refuse(t, v, sign(t, jwt.SigningMethodHS256, testSecret, c), nil)
	}
	c := claimsFor("x")
	delete(c, "sub")
	refuse(t, v, sign(t, jwt.SigningMethodHS256, testSecret, c), nil)
	// The longest valid name is accepted.
	long := strings.Repeat("a", 32)
	if id := accept(t, v, sign(t, jwt.SigningMethodHS256, testSecret, claimsFor(long))); id.Username != long {
		t.Errorf("Username = %q, want %q", id.Username, long)
	}
}

func TestAuthenticateMalformed(t *testing.T) {
	v := allKeysVerifier(t)
	valid := sign(t, jwt.SigningMethodHS256, testSecret, claimsFor("alice"))
	for _, token := range []string{
		"",
		"abc",
		"a.b",
		"a.b.c",
		"a.b.c.d",
		valid + "x",
		valid[:len(valid)-2],
		strings.Replace(valid, ".", "..", 1),
		" " + valid,
	} {
		refuse(t, v, token, nil)
	}
}

func TestAuthenticateKeyRotation(t *testing.T) {
	k := generateKeys()
	// Two files, one key each, and one file holding two keys.
	edBoth := append(publicPEM(t, k.ed1), publicPEM(t, k.ed2)...)
	keys, err := LoadKeyFiles([]string{
		writeFile(t, "old.pem", publicPEM(t, k.rsa1)),
		writeFile(t, "new.pem", publicPEM(t, k.rsa2)),
		writeFile(t, "ec-old.pem", publicPEM(t, k.ec1)),
		writeFile(t, "ec-new.pem", publicPEM(t, k.ec2)),
		writeFile(t, "ed.pem", edBoth),
	})
	if err != nil {
		t.Fatalf("LoadKeyFiles: %v", err)
	}
	v := newVerifier(t, Config{PublicKeys: keys})
	for _, tt := range []struct {
		method jwt.SigningMethod
		key    any
	}{
		{jwt.SigningMethodRS256, k.rsa1},
		{jwt.SigningMethodRS256, k.rsa2},
		{jwt.SigningMethodES256, k.ec1},
		{jwt.SigningMethodES256, k.ec2},
		{jwt.SigningMethodEdDSA, k.ed1},
		{jwt.SigningMethodEdDSA, k.ed2},
	} {
		if id := accept(t, v, sign(t, tt.method, tt.key, claimsFor("bob"))); id.Username != "bob" {
			t.Errorf("%s: Username = %q, want bob", tt.method.Alg(), id.Username)
		}
	}
}

func TestAuthenticateConcurrent(t *testing.T) {
	k := generateKeys()
	v := allKeysVerifier(t)
	tokens := []string{
		sign(t, jwt.SigningMethodHS256, testSecret, claimsFor("alice")),
		sign(t, jwt.SigningMethodES256, k.ec1, claimsFor("bob")),
		sign(t, jwt.SigningMethodEdDSA, k.ed1, claimsFor("carol")),
	}
	var wg sync.WaitGroup
	errs := make(chan error, 3*len(tokens))
	for range 3 {
		for _, token := range tokens {
			wg.Go(func() {
				if _, err := v.Authenticate(context.Background(), token); err != nil {
					errs <- err
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Authenticate: %v", err)
	}
}
