package jwtauth_test

import (
	"context"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/partyline/partyline/jwtauth"
)

func ExampleVerifier_Authenticate() {
	secret := []byte("a long random shared secret.....")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	v, err := jwtauth.New(jwtauth.Config{
		Secret:   secret,
		Audience: "partyline",
		Now:      func() time.Time { return now },
	})
	if err != nil {
		panic(err)
	}

	// The application's backend issues tokens; here we sign one directly.
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub":   "alice",
		"aud":   "partyline",
		"exp":   now.Add(time.Hour).Unix(),
		"rooms": []string{"lobby", "team:*"},
	}).SignedString(secret)
	if err != nil {
		panic(err)
	}

	id, err := v.Authenticate(context.Background(), token)
	fmt.Println(id.Username, id.Expires.Format(time.RFC3339), id.Rooms, err)
	fmt.Println(id.CanJoin("team:red"), id.CanJoin("random"))
	// Output:
	// alice 2026-01-01T01:00:00Z [lobby team:*] <nil>
	// true false
}
