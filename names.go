package partyline

import "strings"

// ValidUsername reports whether name matches ^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$.
func ValidUsername(name string) bool { return validName(name, 32, false) }

// ValidRoom reports whether name matches ^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$.
func ValidRoom(name string) bool { return validName(name, 64, true) }

// ValidRoomPattern reports whether p may be an entry of Identity.Rooms: a
// valid room name, or a "prefix:*" pattern whose prefix, colon included,
// is one.
func ValidRoomPattern(p string) bool {
	if prefix, ok := strings.CutSuffix(p, "*"); ok {
		return strings.HasSuffix(prefix, ":") && ValidRoom(prefix)
	}
	return ValidRoom(p)
}

func validName(name string, maxLen int, colon bool) bool {
	if len(name) == 0 || len(name) > maxLen || !isAlnum(name[0]) {
		return false
	}
	for i := 1; i < len(name); i++ {
		c := name[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != '-' && (!colon || c != ':') {
			return false
		}
	}
	return true
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
