package compat

import "unicode/utf8"

// safeASCII reports, for each ASCII byte, whether it can appear unescaped
// inside a JSON string literal.
var safeASCII = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

const hexDigits = "0123456789abcdef"

// AppendJSONString appends s to dst as a JSON string literal and returns the
// extended slice. It produces the same bytes as encoding/json with HTML
// escaping turned off (json.Encoder.SetEscapeHTML(false)): '"' and '\\' are
// backslash-escaped, control characters use \b \f \n \r \t or \u00XX, U+2028
// and U+2029 are escaped so the output is also safe as JavaScript, and each
// byte of invalid UTF-8 becomes \ufffd so the output is always valid JSON.
// '<', '>' and '&' are left alone, as the legacy server's JSON.stringify did:
// frames are parsed with JSON.parse, never embedded in HTML.
//
// It allocates only when dst has to grow, which is what lets the data-path
// encoders stay allocation-free.
func AppendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if safeASCII[c] {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
