package safetensors

import (
	"bytes"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// SniffSize is how many leading bytes Sniff looks at.
const SniffSize = 512

// Sniff names what a file is from its first bytes (up to SniffSize): a
// model format other than safetensors ("a zip archive (PyTorch
// .ckpt/.pt/.bin)", "a Python pickle"), an image, an archive, or a text file
// (a Git LFS pointer, an HTML page, JSON, other text). It returns "" when
// it cannot tell.
func Sniff(head []byte) string {
	magic := []struct {
		prefix, what string
	}{
		{"\x89PNG", "a PNG image"},
		{"\xff\xd8\xff", "a JPEG image"},
		{"GIF8", "a GIF image"},
		{"RIFF", "a RIFF (WebP/WAV) file"},
		{"PK\x03\x04", "a zip archive (a PyTorch .ckpt/.pt/.bin?)"},
		{"PK\x05\x06", "an empty zip archive"},
		{"\x80\x02\x8a\x0a", "a legacy PyTorch pickle (.ckpt/.pt/.bin)"},
		{"\x80", "a Python pickle"},
		{"GGUF", "a GGUF model file"},
		{"\x1f\x8b", "a gzip archive"},
		{"\x28\xb5\x2f\xfd", "a zstd archive"},
		{"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"},
		{"Rar!", "a RAR archive"},
		{"%PDF", "a PDF document"},
		{"\x7fELF", "a program (ELF executable)"},
		{"version https://git-lfs", "a Git LFS pointer, not the model itself (fetch it with `git lfs pull`, or download the file rather than the repository)"},
	}
	for _, m := range magic {
		if bytes.HasPrefix(head, []byte(m.prefix)) {
			return m.what
		}
	}
	if len(head) > SniffSize {
		head = head[:SniffSize]
	}
	text := strings.TrimLeft(string(head), " \t\r\n\ufeff")
	lower := strings.ToLower(text)
	switch {
	case !isText(head):
		return ""
	case strings.HasPrefix(lower, "<!doctype html") || strings.HasPrefix(lower, "<html") || strings.Contains(lower, "<head>") || strings.Contains(lower, "<body"):
		return "an HTML page (a download error or login page, not the model)"
	case strings.HasPrefix(text, "<"):
		return "an XML/HTML text file (a download error page?)"
	case strings.HasPrefix(text, "{") || strings.HasPrefix(text, "["):
		return "a JSON text file (a config, not the weights?)"
	case text == "":
		return "an empty text file"
	}
	return fmt.Sprintf("a text file (starting %s)", Quote(head, 40))
}

// isText reports whether b is UTF-8 text without control characters other
// than tab, CR and LF (a rune cut at the end is allowed).
func isText(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n <= 1 {
			return len(b) < utf8.UTFMax && !utf8.FullRune(b)
		}
		if r != '\t' && r != '\n' && r != '\r' && (unicode.IsControl(r) || r == 0xfffd) {
			return false
		}
		b = b[n:]
	}
	return true
}

// Quote shows the first bytes of a file in a message: as quoted text when
// they are text, else as hex bytes.
func Quote(b []byte, max int) string {
	more := ""
	if len(b) > max {
		b, more = b[:max], "..."
	}
	if isText(b) {
		return fmt.Sprintf("%q%s", strings.ToValidUTF8(string(b), ""), more)
	}
	return fmt.Sprintf("bytes % x%s", b, more)
}
