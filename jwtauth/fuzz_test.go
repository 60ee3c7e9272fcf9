package jwtauth

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/partyline/partyline"
)

// FuzzAuthenticate feeds arbitrary tokens to a verifier of every algorithm:
// it must never panic, every refusal must wrap partyline.ErrUnauthorized,
// and every accepted identity must be well formed.
func FuzzAuthenticate(f *testing.F) {
	k := generateKeys()
	v := allKeysVerifier(f)
	withRooms := claimsFor("alice")
	withRooms["rooms"] = []string{"lobby", "team:*"}
	expired := jwt.MapClaims{"sub": "alice", "exp": testNow.Add(-time.Hour).Unix()}
	for _, seed := range []string{
		sign(f, jwt.SigningMethodHS256, testSecret, claimsFor("alice")),
		sign(f, jwt.SigningMethodHS256, testSecret, withRooms),
		sign(f, jwt.SigningMethodHS256, testSecret, expired),
		sign(f, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice", "rooms": []string{}}),
		sign(f, jwt.SigningMethodES256, k.ec1, claimsFor("bob")),
		sign(f, jwt.SigningMethodEdDSA, k.ed1, claimsFor("carol")),
		sign(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claimsFor("alice")),
		"",
		".",
		"..",
		"a.b.c",
		"eyJhbGciOiJIUzI1NiJ9.e30.",
		"eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Authenticate(context.Background(), token)
		if err != nil {
			if !errors.Is(err, partyline.ErrUnauthorized) {
				t.Fatalf("Authenticate(%q) error %v does not wrap partyline.ErrUnauthorized", token, err)
			}
			return
		}
		if !partyline.ValidUsername(id.Username) {
			t.Fatalf("Authenticate(%q) accepted invalid username %q", token, id.Username)
		}
		for _, p := range id.Rooms {
			if !partyline.ValidRoomPattern(p) {
				t.Fatalf("Authenticate(%q) accepted invalid rooms entry %q", token, p)
			}
		}
	})
}
