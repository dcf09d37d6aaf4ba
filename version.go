// Package perfusion is the module root. It holds what every binary of the
// module shares about the application itself: its name, ID, version and build
// number, read from FyneApp.toml (the file `fyne package` uses), which is
// embedded here because go:embed cannot reach a parent directory.
package perfusion

import (
	_ "embed"
	"fmt"
	"strconv"
	"strings"
)

// fyneAppTOML is FyneApp.toml as built into the binary; read-only.
//
//go:embed FyneApp.toml
var fyneAppTOML []byte

// Info is the application's identity as the [Details] table of FyneApp.toml
// states it.
type Info struct {
	Name    string // human-friendly name, also the main window title
	ID      string // reverse-DNS application ID, e.g. "io.github.x.y"
	Version string // semantic version, e.g. "0.1.0"
	Build   int    // build number; `fyne package` bumps it
}

// AppInfo returns the Info of the FyneApp.toml built into this binary.
func AppInfo() (Info, error) {
	return ParseInfo(fyneAppTOML)
}

// String gives the name, version and build, e.g. "Perfusion Studio 0.1.0 (build 1)".
func (i Info) String() string {
	return fmt.Sprintf("%s %s (build %d)", i.Name, i.Version, i.Build)
}

// ParseInfo reads Name, ID, Version and Build from the [Details] table of a
// FyneApp.toml. It understands the subset of TOML that file uses (tables,
// `key = value` lines, basic and literal strings, integers, comments) and
// ignores every other table. Name, ID and Version are required.
func ParseInfo(data []byte) (Info, error) {
	var info Info
	table := ""
	seen := map[string]bool{}
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "[") {
			end := strings.Index(line, "]")
			if end < 0 {
				return Info{}, fmt.Errorf("perfusion: FyneApp.toml line %d: unterminated table header %q", n+1, line)
			}
			table = strings.TrimSpace(strings.Trim(line[:end], "["))
			continue
		}
		if table != "Details" {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return Info{}, fmt.Errorf("perfusion: FyneApp.toml line %d: want key = value, got %q", n+1, line)
		}
		key = strings.TrimSpace(key)
		value = strings.TrimSpace(value)
		var err error
		switch key {
		case "Name":
			info.Name, err = parseString(value)
		case "ID":
			info.ID, err = parseString(value)
		case "Version":
			info.Version, err = parseString(value)
		case "Build":
			info.Build, err = parseInt(value)
		default:
			continue
		}
		if err != nil {
			return Info{}, fmt.Errorf("perfusion: FyneApp.toml line %d: Details.%s: %w", n+1, key, err)
		}
		seen[key] = true
	}
	for _, key := range []string{"Name", "ID", "Version"} {
		if !seen[key] {
			return Info{}, fmt.Errorf("perfusion: FyneApp.toml: Details.%s is missing", key)
		}
	}
	if info.Name == "" || info.ID == "" || info.Version == "" {
		return Info{}, fmt.Errorf("perfusion: FyneApp.toml: Details.Name, ID and Version must not be empty")
	}
	return info, nil
}

// parseString reads a TOML basic ("...") or literal ('...') string, followed
// by nothing but an optional comment.
func parseString(value string) (string, error) {
	if len(value) < 2 || (value[0] != '"' && value[0] != '\'') {
		return "", fmt.Errorf("want a quoted string, got %q", value)
	}
	quote := value[0]
	end := -1
	for i := 1; i < len(value); i++ {
		if quote == '"' && value[i] == '\\' {
			i++ // skip the escaped character
			continue
		}
		if value[i] == quote {
			end = i
			break
		}
	}
	if end < 0 {
		return "", fmt.Errorf("unterminated string %q", value)
	}
	if err := checkTail(value[end+1:]); err != nil {
		return "", err
	}
	if quote == '\'' {
		return value[1:end], nil
	}
	s, err := strconv.Unquote(value[:end+1])
	if err != nil {
		return "", fmt.Errorf("bad string %q: %w", value[:end+1], err)
	}
	return s, nil
}

// parseInt reads a decimal TOML integer, followed by an optional comment.
func parseInt(value string) (int, error) {
	num, _, _ := strings.Cut(value, "#") // the rest is a comment
	num = strings.TrimSpace(num)
	n, err := strconv.Atoi(strings.ReplaceAll(num, "_", ""))
	if err != nil {
		return 0, fmt.Errorf("want an integer, got %q", num)
	}
	return n, nil
}

// checkTail accepts what may follow a value on its line: spaces and a comment.
func checkTail(tail string) error {
	tail = strings.TrimSpace(tail)
	if tail != "" && !strings.HasPrefix(tail, "#") {
		return fmt.Errorf("unexpected %q after the value", tail)
	}
	return nil
}
