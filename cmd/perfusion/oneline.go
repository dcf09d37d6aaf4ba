package main

import "strings"

// oneLineError shows an error on one line (some errors list what they
// checked, one item a line), keeping the error chain for errors.Is.
type oneLineError struct{ err error }

func (e oneLineError) Error() string {
	var parts []string
	for _, l := range strings.Split(e.err.Error(), "\n") {
		l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "- "))
		if l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, "; ")
}

func (e oneLineError) Unwrap() error { return e.err }

// oneLine wraps err (if not nil) so that it prints on one line.
func oneLine(err error) error {
	if err == nil || !strings.Contains(err.Error(), "\n") {
		return err
	}
	return oneLineError{err}
}
