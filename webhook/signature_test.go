package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	vectorSecret = []byte("whsec_test")
	vectorTime   = time.Unix(1767225600, 0)
	vectorBody   = []byte(`{"events":[{"id":"evt_1","type":"user_online","timestamp":1767225600000,"username":"alice"}]}`)
	// vectorHex was computed outside Go:
	//	printf '%s' '1767225600.<body>' | openssl dgst -sha256 -hmac whsec_test
	vectorHex = "a211fbb29f2ca001b332b1e2b568b3513db755b5f00633f87339959782bd8a20"
)

func TestSignVector(t *testing.T) {
	// The same HMAC, computed here with crypto/hmac directly.
	h := hmac.New(sha256.New, vectorSecret)
	h.Write([]byte("1767225600." + string(vectorBody)))
	if got := hex.EncodeToString(h.Sum(nil)); got != vectorHex {
		t.Fatalf("crypto/hmac gives %s, openssl gave %s", got, vectorHex)
	}
	want := "t=1767225600,v1=" + vectorHex
	if got := Sign(vectorSecret, vectorTime, vectorBody); got != want {
		t.Errorf("Sign = %q, want %q", got, want)
	}
	// Sub-second parts of t are dropped, as the header carries seconds.
	if got := Sign(vectorSecret, vectorTime.Add(999*time.Millisecond), vectorBody); got != want {
		t.Errorf("Sign at t+999ms = %q, want %q", got, want)
	}
}

func TestVerify(t *testing.T) {
	good := "t=1767225600,v1=" + vectorHex
	other := Sign([]byte("old secret"), vectorTime, vectorBody)[len("t=1767225600,"):]
	tampered := append([]byte(nil), vectorBody...)
	tampered[len(tampered)-4] = 'x'
	now := vectorTime.Add(time.Minute)
	tests := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		tol    time.Duration
		want   error
	}{
		{"valid", vectorSecret, good, vectorBody, now, 0, nil},
		{"spaces around entries", vectorSecret, " t=1767225600 , v1=" + vectorHex + " ", vectorBody, now, 0, nil},
		{"rotation: second v1 matches", vectorSecret, "t=1767225600," + other + ",v1=" + vectorHex, vectorBody, now, 0, nil},
		{"rotation: first v1 matches", vectorSecret, good + "," + other, vectorBody, now, 0, nil},
		{"unknown scheme ignored", vectorSecret, "t=1767225600,v0=abc,v1=" + vectorHex, vectorBody, now, 0, nil},
		{"upper-case hex", vectorSecret, "t=1767225600,v1=" + strings.ToUpper(vectorHex), vectorBody, now, 0, nil},
		{"wrong secret", []byte("whsec_other"), good, vectorBody, now, 0, ErrSignatureMismatch},
		{"tampered body", vectorSecret, good, tampered, now, 0, ErrSignatureMismatch},
		{"tampered timestamp", vectorSecret, "t=1767225601,v1=" + vectorHex, vectorBody, now, 0, ErrSignatureMismatch},
		{"bad hex", vectorSecret, "t=1767225600,v1=zz", vectorBody, now, 0, ErrSignatureMismatch},
		{"truncated signature", vectorSecret, "t=1767225600,v1=" + vectorHex[:32], vectorBody, now, 0, ErrSignatureMismatch},
		{"too old", vectorSecret, good, vectorBody, vectorTime.Add(DefaultTolerance + time.Second), 0, ErrTimestampOutOfTolerance},
		{"too far ahead", vectorSecret, good, vectorBody, vectorTime.Add(-DefaultTolerance - time.Second), 0, ErrTimestampOutOfTolerance},
		{"within a wider tolerance", vectorSecret, good, vectorBody, vectorTime.Add(time.Hour), 2 * time.Hour, nil},
		{"outside a narrower tolerance", vectorSecret, good, vectorBody, now, 30 * time.Second, ErrTimestampOutOfTolerance},
		{"empty", vectorSecret, "", vectorBody, now, 0, ErrMalformedSignature},
		{"no v1", vectorSecret, "t=1767225600", vectorBody, now, 0, ErrMalformedSignature},
		{"no t", vectorSecret, "v1=" + vectorHex, vectorBody, now, 0, ErrMalformedSignature},
		{"two t", vectorSecret, "t=1767225600,t=1767225600,v1=" + vectorHex, vectorBody, now, 0, ErrMalformedSignature},
		{"t not a number", vectorSecret, "t=soon,v1=" + vectorHex, vectorBody, now, 0, ErrMalformedSignature},
		{"entry without =", vectorSecret, good + ",junk", vectorBody, now, 0, ErrMalformedSignature},
	}
	for _, tt := range tests {
		err := Verify(tt.secret, tt.header, tt.body, tt.now, tt.tol)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: Verify(%q) = %v, want %v", tt.name, tt.header, err, tt.want)
		}
	}
}

// FuzzVerify feeds Verify arbitrary headers: it must never panic, never
// accept a header that Sign did not produce for this body, and always
// accept the one Sign did.
func FuzzVerify(f *testing.F) {
	f.Add("t=1767225600,v1="+vectorHex, int64(1767225600))
	f.Add("t=1767225600,v1=00,v1="+vectorHex, int64(1767225600))
	f.Add("t=-1,v1=", int64(0))
	f.Add("t=9223372036854775807,v1=ab", int64(-9223372036854775808))
	f.Add(",,=,t=,v1", int64(0))
	f.Add("t=+1767225600,v1="+vectorHex, int64(1767225600))
	f.Fuzz(func(t *testing.T, header string, nowUnix int64) {
		now := time.Unix(nowUnix, 0)
		err := Verify(vectorSecret, header, vectorBody, now, time.Minute)
		if err == nil && header != "t=1767225600,v1="+vectorHex {
			// Accepted: it must carry the real signature for its t.
			ts, ok := headerTimestamp(header)
			if !ok {
				t.Fatalf("accepted %q without a parsable t", header)
			}
			h := hmac.New(sha256.New, vectorSecret)
			h.Write([]byte(ts + "." + string(vectorBody)))
			if !strings.Contains(strings.ToLower(header), hex.EncodeToString(h.Sum(nil))) {
				t.Fatalf("accepted %q, which lacks the body's signature", header)
			}
		}
		good := Sign(vectorSecret, now, vectorBody)
		if err := Verify(vectorSecret, good, vectorBody, now, time.Minute); err != nil {
			t.Fatalf("Verify(Sign(now=%d)) = %v", nowUnix, err)
		}
	})
}

// headerTimestamp returns the value of the header's t entry.
func headerTimestamp(header string) (string, bool) {
	for item := range strings.SplitSeq(header, ",") {
		if ts, ok := strings.CutPrefix(strings.TrimSpace(item), "t="); ok {
			return ts, true
		}
	}
	return "", false
}
