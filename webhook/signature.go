package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader is the request header that carries a delivery's
// signature (docs/protocol.md §11.1).
const SignatureHeader = "Partyline-Signature"

// DefaultTolerance is how far a signature's timestamp may be from the
// receiver's clock when Verify is given no tolerance.
const DefaultTolerance = 5 * time.Minute

// Errors returned by Verify.
var (
	// ErrMalformedSignature: the header is not t=<unix seconds> with at
	// least one v1=<hex>.
	ErrMalformedSignature = errors.New("webhook: malformed signature header")
	// ErrSignatureMismatch: no v1 entry is the body's signature under the
	// secret.
	ErrSignatureMismatch = errors.New("webhook: signature mismatch")
	// ErrTimestampOutOfTolerance: the signature is valid but was made too
	// long before (or after) now, as a replayed request would be.
	ErrTimestampOutOfTolerance = errors.New("webhook: signature timestamp outside tolerance")
)

// Sign returns the SignatureHeader value for body sent at t:
// "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>".
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

// mac is HMAC-SHA256(secret, ts + "." + body).
func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Verify checks that header, a SignatureHeader value, signs body under
// secret, and that its timestamp is within tolerance of now (a tolerance
// of zero or less means DefaultTolerance). The header may carry several
// v1 entries, as it does while a sender rotates secrets: one matching is
// enough. Entries of other schemes are ignored. Signatures are compared in
// constant time.
//
// It returns nil, ErrMalformedSignature, ErrSignatureMismatch or
// ErrTimestampOutOfTolerance.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs []string
	for item := range strings.SplitSeq(header, ",") {
		key, value, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok {
			return ErrMalformedSignature
		}
		switch key {
		case "t":
			if ts != "" {
				return ErrMalformedSignature
			}
			ts = value
		case "v1":
			sigs = append(sigs, value)
		}
	}
	if ts == "" || len(sigs) == 0 {
		return ErrMalformedSignature
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return ErrMalformedSignature
	}
	want := mac(secret, ts, body)
	matched := false
	for _, s := range sigs {
		got, err := hex.DecodeString(s)
		if err == nil && hmac.Equal(got, want) {
			matched = true
		}
	}
	if !matched {
		return ErrSignatureMismatch
	}
	if now.Sub(time.Unix(unix, 0)).Abs() > tolerance {
		return ErrTimestampOutOfTolerance
	}
	return nil
}
