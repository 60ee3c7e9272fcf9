package wire

import "bytes"

// decodeFlat fills raw as json.Unmarshal would from obj, a valid JSON
// object in valid UTF-8, when obj is flat and plain: every value a string without escapes
// or a number, and every key without escapes. It reports false, leaving
// raw to json.Unmarshal, for anything else: a nested value, true, false or
// null, an escape, a number in a string field, or an unknown key that
// json.Unmarshal would match to a field case-insensitively. Almost every
// chat a client sends is flat and plain, and decoding it needs neither
// reflection nor the deep stack json.Unmarshal grows in a new reader.
func decodeFlat(obj []byte, raw *inbound) bool {
	i := skipSpace(obj, 1) // past the '{'
	if obj[i] == '}' {
		return true
	}
	for {
		key, next, ok := plainString(obj, i)
		if !ok {
			return false
		}
		i = skipSpace(obj, skipSpace(obj, next)+1) // past the ':'
		value, next, ok := plainValue(obj, i)
		if !ok || !setField(raw, key, value) {
			return false
		}
		i = skipSpace(obj, next)
		if obj[i] == '}' {
			return true
		}
		i = skipSpace(obj, i+1) // past the ','
	}
}

// plainString returns the JSON string starting at obj[i] without its
// quotes, and the index after it; false if there is none, or it has an
// escape.
func plainString(obj []byte, i int) (s []byte, next int, ok bool) {
	if obj[i] != '"' {
		return nil, 0, false
	}
	end := bytes.IndexByte(obj[i+1:], '"')
	if end < 0 {
		return nil, 0, false
	}
	s = obj[i+1 : i+1+end]
	if bytes.IndexByte(s, '\\') >= 0 {
		return nil, 0, false
	}
	return s, i + end + 2, true
}

// plainValue returns the string (with its quotes) or number at obj[i], and
// the index after it; false for any other value.
func plainValue(obj []byte, i int) (value []byte, next int, ok bool) {
	if obj[i] == '"' {
		if _, next, ok = plainString(obj, i); !ok {
			return nil, 0, false
		}
		return obj[i:next], next, true
	}
	j := i
	for j < len(obj) && isNumberByte(obj[j]) {
		j++
	}
	return obj[i:j], j, j > i
}

func isNumberByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E'
}

// skipSpace returns the index of the first byte from i on that is not
// JSON whitespace.
func skipSpace(obj []byte, i int) int {
	for i < len(obj) && (obj[i] == ' ' || obj[i] == '\t' || obj[i] == '\n' || obj[i] == '\r') {
		i++
	}
	return i
}

// setField stores value in the field of raw named key, as json.Unmarshal
// would, and reports false where json.Unmarshal could differ: a number
// for a string field, or a key that is no field's name but matches one
// case-insensitively. A key of no field is ignored.
func setField(raw *inbound, key, value []byte) bool {
	switch string(key) {
	case "type":
		return setString(&raw.Type, value)
	case "room":
		return setString(&raw.Room, value)
	case "to":
		return setString(&raw.To, value)
	case "token":
		return setString(&raw.Token, value)
	case "id":
		raw.ID = value
	case "content":
		raw.Content = value
	case "data":
		raw.Data = value
	case "since":
		raw.Since = value
	case "before":
		raw.Before = value
	case "limit":
		raw.Limit = value
	default:
		for _, name := range fieldNames {
			if bytes.EqualFold(key, []byte(name)) {
				return false
			}
		}
	}
	return true
}

// fieldNames are the JSON names of inbound's fields.
var fieldNames = [...]string{"type", "id", "room", "to", "token", "content", "data", "since", "before", "limit"}

// setString stores a JSON string value, unquoted, in *field.
func setString(field **string, value []byte) bool {
	if value[0] != '"' {
		return false
	}
	s := string(value[1 : len(value)-1])
	*field = &s
	return true
}

// plainText returns the text of a JSON string without escapes, and false
// for any other string.
func plainText(value []byte) (string, bool) {
	if len(value) < 2 || value[0] != '"' || bytes.IndexByte(value, '\\') >= 0 {
		return "", false
	}
	return string(value[1 : len(value)-1]), true
}
