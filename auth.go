package partyline

import (
	"context"
	"strings"
	"time"
)

// Authenticator turns a client's token into an Identity. With none
// configured the server runs in anonymous mode and takes the username from
// the URL.
//
// Authenticate returns an error wrapping ErrUnauthorized for a missing,
// malformed, expired or otherwise unacceptable token. It must be safe for
// concurrent use.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (Identity, error)
}

// Identity is who a token says the client is.
type Identity struct {
	// Username is the client's name (the token's sub).
	Username string
	// Expires is when the token stops being valid; zero means never.
	Expires time.Time
	// Rooms lists the rooms the user may join: exact names or "prefix:*"
	// patterns. Nil means every room.
	Rooms []string
}

// CanJoin reports whether the identity may join room.
func (id Identity) CanJoin(room string) bool {
	if id.Rooms == nil {
		return true
	}
	for _, pattern := range id.Rooms {
		if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
			if strings.HasPrefix(room, prefix) {
				return true
			}
		} else if pattern == room {
			return true
		}
	}
	return false
}

// bearerToken returns the token of an Authorization header of the Bearer
// scheme, whose name is case-insensitive (RFC 7235).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(token), true
}
