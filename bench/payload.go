package bench

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
)

// A stamped payload is the content of every chat message the bench sends:
// stampMark, then the send time as stampDigits zero-padded decimal
// nanoseconds since the run's epoch, then padding to the payload size. Only
// JSON-safe ASCII, so any server relays it byte for byte.
const (
	stampMark   = '#'
	stampDigits = 19
	stampLen    = 1 + stampDigits
	// maxSpace bounds the whitespace accepted around the ':' of a
	// "content" field.
	maxSpace = 4

	contentText = `"content"`
)

var (
	contentKey  = []byte(contentText)
	errorType   = []byte(`"type":"error"`)
	joinedType  = []byte(`"joined"`)
	welcomeType = []byte(`"welcome"`)
)

// chatFrame builds the client chat frame for room with a stamped content of
// payload bytes, and returns it with the offset of the stamp's digits.
func chatFrame(room string, payload int) (frame []byte, digits int) {
	payload = max(payload, stampLen)
	frame = append(frame, `{"type":"chat","room":`...)
	frame = strconv.AppendQuote(frame, room)
	frame = append(frame, `,"content":"`...)
	digits = len(frame) + 1
	frame = append(frame, stampMark)
	frame = append(frame, bytes.Repeat([]byte{'0'}, stampDigits)...)
	frame = appendPadding(frame, payload-stampLen)
	frame = append(frame, `"}`...)
	return frame, digits
}

// padWords is the vocabulary of the padding: common English words.
var padWords = strings.Fields(`the of and to a in is it you that he was for on are
	with as I his they be at one have this from or had by hot word but what
	some we can out other were all there when up use your how said an each
	she which do their time if will way about many then them write would
	like so these her long make thing see him two has look more day could go
	come did number sound no most people my over know water than call first
	who may down side been now find any new work part take get place made
	live where after back little only round man year came show every good
	me give our under name very through just form sentence great think say
	help low line differ turn cause much mean before move right boy old too
	same tell does set three want air well also play small end put home
	read hand port large spell add even land here must big high such follow
	act why ask men change went light kind off need house picture try us
	again animal point mother world near build self earth father`)

// appendPadding appends n bytes of words from padWords, drawn at random
// with a fixed seed, separated by spaces. The padding is about as
// compressible as English prose, a little more: a 1 KB chat message
// carrying it deflates (permessage-deflate, BestSpeed) to 54% of its frame,
// one carrying 1 KB of this project's docs to 55–68% (median 60%), and one
// padded with a repeated byte, as the bench once did, to 13%. Every message
// of a run carries the same padding; with no context takeover each message
// is compressed alone, so the repetition across messages saves nothing.
func appendPadding(b []byte, n int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	end := len(b) + n
	for len(b) < end {
		b = append(b, padWords[rng.IntN(len(padWords))]...)
		b = append(b, ' ')
	}
	return b[:end]
}

// putStamp writes ns (>= 0) as stampDigits zero-padded decimal digits into
// the start of b without allocating.
func putStamp(b []byte, ns int64) {
	u := uint64(max(ns, 0))
	for i := stampDigits - 1; i >= 0; i-- {
		b[i] = byte('0' + u%10)
		u /= 10
	}
}

// parseStamp reads a stamp (mark and digits) from the start of b.
func parseStamp(b []byte) (ns int64, ok bool) {
	if len(b) < stampLen || b[0] != stampMark {
		return 0, false
	}
	var u uint64 // 19 digits always fit
	for _, c := range b[1:stampLen] {
		if c < '0' || c > '9' {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
	}
	if u > math.MaxInt64 {
		return 0, false
	}
	return int64(u), true
}

// Results of nextStamp.
const (
	scanField   = iota // a "content" field was read; stamp >= 0 if it held a stamp
	scanNone           // no field starts before n; the rest may begin a key
	scanPartial        // a field starts at n but b ends before its stamp
)

// nextStamp looks for the next "content" field in b, one JSON object or a
// "\n"-separated batch of them (possibly cut short). It returns what it
// found, how many bytes of b it consumed, and the stamp the field holds (-1
// if none). It does not allocate.
func nextStamp(b []byte) (stamp int64, n int, status int) {
	k := bytes.Index(b, contentKey)
	if k < 0 {
		return -1, max(len(b)-len(contentKey)+1, 0), scanNone
	}
	i := skipSpace(b, k+len(contentKey))
	switch {
	case i == len(b):
		return -1, k, scanPartial
	case b[i] != ':':
		return -1, i, scanField
	}
	i = skipSpace(b, i+1)
	switch {
	case i == len(b):
		return -1, k, scanPartial
	case b[i] != '"':
		return -1, i, scanField
	}
	i++
	if len(b)-i < stampLen {
		if i < len(b) && b[i] != stampMark {
			return -1, i, scanField
		}
		return -1, k, scanPartial
	}
	ns, ok := parseStamp(b[i:])
	if !ok {
		return -1, i, scanField
	}
	return ns, i + stampLen, scanField
}

// skipSpace skips up to maxSpace JSON whitespace bytes from b[i:].
func skipSpace(b []byte, i int) int {
	for end := min(i+maxSpace, len(b)); i < end; i++ {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
		default:
			return i
		}
	}
	return i
}

// forEachStamp calls fn with each stamp in msg, a whole server message or
// a "\n"-separated batch of them.
func forEachStamp(msg []byte, fn func(stamp int64)) {
	for {
		stamp, n, status := nextStamp(msg)
		if status != scanField {
			return
		}
		msg = msg[n:]
		if stamp >= 0 {
			fn(stamp)
		}
	}
}
