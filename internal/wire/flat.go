package wire

import "bytes"

// decodeFlat fills raw as json.Unmarshal would from obj, a valid JSON
// object in valid UTF-8, when obj is flat and plain: every value a string
// without escapes or a number, and every key without escapes. It reports
// false, leaving raw untouched for json.Unmarshal, for anything else: a
// nested value, true, false or null, an escape, a number in a string field
// (in any of its occurrences, as json.Unmarshal refuses each), or an
// unknown key that json.Unmarshal would match to a field
// case-insensitively. The id and the data, which outlive the frame, are
// copied; raw's other values alias obj, for Decode to parse at once.
// Almost every chat a client sends is flat and plain, and decoding it
// needs neither reflection nor the deep stack json.Unmarshal grows in a
// new reader.
func decodeFlat(obj []byte, raw *inbound) bool {
	var values [len(fieldNames)][]byte // the last of each field, as json.Unmarshal keeps
	i := skipSpace(obj, 1)             // past the '{'
	for obj[i] != '}' {
		key, next, ok := plainString(obj, i)
		if !ok {
			return false
		}
		i = skipSpace(obj, skipSpace(obj, next)+1) // past the ':'
		value, next, ok := plainValue(obj, i)
		if !ok {
			return false
		}
		field, ok := fieldOf(key)
		if !ok {
			return false
		}
		if field >= 0 {
			if field < stringFields && value[0] != '"' {
				return false
			}
			values[field] = value
		}
		if i = skipSpace(obj, next); obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	fill(raw, &values)
	return true
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

// fieldNames are the JSON names of inbound's fields, the string fields
// first.
var fieldNames = [...]string{"type", "room", "to", "token", "id", "content", "data", "since", "before", "limit"}

// stringFields is how many of fieldNames are inbound's *string fields.
const stringFields = 4

// fieldOf returns the index in fieldNames of the field named key, or -1
// for a key of no field, which json.Unmarshal ignores too; false for a key
// that json.Unmarshal would match to a field case-insensitively.
func fieldOf(key []byte) (field int, ok bool) {
	for i, name := range fieldNames {
		if string(key) == name {
			return i, true
		}
	}
	for _, name := range fieldNames {
		if bytes.EqualFold(key, []byte(name)) {
			return -1, false
		}
	}
	return -1, true
}

// fill stores values, indexed as fieldNames, in raw; decodeFlat has
// checked that the string fields hold strings. The id and the data are
// copied: the frame they come from is the reader's buffer, reused for the
// next frame, while a message's id and data live on in its ack and in the
// store.
func fill(raw *inbound, values *[len(fieldNames)][]byte) {
	if v := values[0]; v != nil {
		raw.Type = typeName(v[1 : len(v)-1])
	}
	strs := [...]**string{&raw.Room, &raw.To, &raw.Token}
	for i, v := range values[1:stringFields] {
		if v != nil {
			s := string(v[1 : len(v)-1])
			*strs[i] = &s
		}
	}
	raw.ID, raw.Content, raw.Data = bytes.Clone(values[4]), values[5], bytes.Clone(values[6])
	raw.Since, raw.Before, raw.Limit = values[7], values[8], values[9]
}

// typeNames are the types of the messages a client sends (commands.go).
var typeNames = [...]string{"chat", "join", "leave", "direct", "typing", "presence", "history", "refresh", "ping"}

// typeName returns the type t as a string: one of typeNames, shared by
// every frame of that type, or else a string of its own.
func typeName(t []byte) *string {
	for i := range typeNames {
		if string(t) == typeNames[i] {
			return &typeNames[i]
		}
	}
	s := string(t)
	return &s
}

// plainText returns the text of a JSON string without escapes, and false
// for any other string.
func plainText(value []byte) (string, bool) {
	text, ok := plainBytes(value)
	return string(text), ok
}

// plainBytes is plainText without the copy: the text within value.
func plainBytes(value []byte) ([]byte, bool) {
	if len(value) < 2 || value[0] != '"' || bytes.IndexByte(value, '\\') >= 0 {
		return nil, false
	}
	return value[1 : len(value)-1], true
}
