// Package jwtauth authenticates partyline clients by JSON Web Token
// (docs/protocol.md §3, JWT mode). It only verifies tokens; issuing them is
// the application's business.
//
// Accepted algorithms follow the configured keys, never the token's header:
// HS256 with a shared secret, RS256 with RSA public keys, ES256 with ECDSA
// P-256 public keys and EdDSA with Ed25519 public keys. Several public keys
// may be configured for rotation; a token is accepted when any key of its
// algorithm verifies it.
//
// Claims:
//
//   - sub is the username and must be a valid partyline username.
//   - exp is enforced; Identity.Expires is set from it. A token without exp
//     is accepted and never expires (Identity.Expires is zero), as the
//     issuer chose not to bound it.
//   - nbf, when present, is enforced.
//   - iss and aud must be present and match when Config.Issuer or
//     Config.Audience is set; aud may be a string or an array.
//   - rooms, optional, lists the room names or "prefix:*" patterns the user
//     may join. Absent (or null) means every room; an empty array means none.
//     A malformed entry refuses the token.
package jwtauth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/partyline/partyline"
)

var _ partyline.Authenticator = (*Verifier)(nil)

// Config configures a Verifier. At least one of Secret and PublicKeys must
// be set; both may be.
type Config struct {
	// Secret is the shared HS256 secret. Empty means no HS256.
	Secret []byte
	// PublicKeys holds PEM-encoded public keys (PKIX "PUBLIC KEY", PKCS#1
	// "RSA PUBLIC KEY" or a "CERTIFICATE"): RSA keys verify RS256, ECDSA
	// P-256 keys ES256 and Ed25519 keys EdDSA. One entry may hold several
	// PEM blocks.
	PublicKeys [][]byte
	// Issuer, when set, must equal the token's iss claim.
	Issuer string
	// Audience, when set, must be among the token's aud claim.
	Audience string
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Verifier checks tokens against a Config. It implements
// partyline.Authenticator and is safe for concurrent use.
type Verifier struct {
	parser *jwt.Parser
	// keys maps an algorithm name to the keys that verify it.
	keys map[string]jwt.VerificationKeySet
}

// New returns a Verifier for cfg, or an error naming the bad field or key.
func New(cfg Config) (*Verifier, error) {
	keys, err := keySets(cfg)
	if err != nil {
		return nil, err
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods(keys)),
		jwt.WithTimeFunc(now),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	return &Verifier{parser: jwt.NewParser(opts...), keys: keys}, nil
}

// keySets groups the configured secret and public keys by algorithm.
func keySets(cfg Config) (map[string]jwt.VerificationKeySet, error) {
	keys := make(map[string]jwt.VerificationKeySet)
	if len(cfg.Secret) > 0 {
		keys[jwt.SigningMethodHS256.Alg()] = jwt.VerificationKeySet{Keys: []jwt.VerificationKey{cfg.Secret}}
	}
	for i, pemBytes := range cfg.PublicKeys {
		parsed, err := parsePublicKeys(pemBytes)
		if err != nil {
			return nil, fmt.Errorf("jwtauth: public key %d: %w", i+1, err)
		}
		for _, k := range parsed {
			set := keys[k.alg]
			set.Keys = append(set.Keys, k.key)
			keys[k.alg] = set
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("jwtauth: no secret or public key configured")
	}
	return keys, nil
}

// methods lists the algorithms keys can verify, in a fixed order.
func methods(keys map[string]jwt.VerificationKeySet) []string {
	var algs []string
	for _, alg := range []string{"HS256", "RS256", "ES256", "EdDSA"} {
		if _, ok := keys[alg]; ok {
			algs = append(algs, alg)
		}
	}
	return algs
}

// claims are the token claims partyline reads.
type claims struct {
	jwt.RegisteredClaims
	// Rooms is nil when the claim is absent or null, and a non-nil empty
	// slice when it is [].
	Rooms []string `json:"rooms"`
}

// Authenticate verifies token and returns the identity it carries. Every
// error wraps partyline.ErrUnauthorized, and the jwt error (such as
// jwt.ErrTokenExpired) when there is one.
func (v *Verifier) Authenticate(_ context.Context, token string) (partyline.Identity, error) {
	if token == "" {
		return partyline.Identity{}, unauthorized(errors.New("missing token"))
	}
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keyFor); err != nil {
		return partyline.Identity{}, unauthorized(err)
	}
	return identity(&c)
}

// keyFor returns the keys for the token's algorithm. The parser has already
// refused algorithms outside the configured ones, so the lookup only fails
// for a method object that lies about its name.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	set, ok := v.keys[t.Method.Alg()]
	if !ok {
		return nil, fmt.Errorf("no key for algorithm %q", t.Method.Alg())
	}
	return set, nil
}

// identity checks the partyline-specific claims of a verified token.
func identity(c *claims) (partyline.Identity, error) {
	if !partyline.ValidUsername(c.Subject) {
		return partyline.Identity{}, unauthorized(fmt.Errorf("invalid sub %q", c.Subject))
	}
	for _, pattern := range c.Rooms {
		if !partyline.ValidRoomPattern(pattern) {
			return partyline.Identity{}, unauthorized(fmt.Errorf("invalid rooms entry %q", pattern))
		}
	}
	id := partyline.Identity{Username: c.Subject, Rooms: c.Rooms}
	if c.ExpiresAt != nil {
		id.Expires = c.ExpiresAt.Time
	}
	return id, nil
}

// unauthorized wraps cause and partyline.ErrUnauthorized.
func unauthorized(cause error) error {
	return fmt.Errorf("jwtauth: %w: %w", cause, partyline.ErrUnauthorized)
}
