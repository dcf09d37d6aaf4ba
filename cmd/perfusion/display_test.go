package main

import (
	"strings"
	"testing"
)

func TestCheckDisplay(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	for _, goos := range []string{"linux", "freebsd", "openbsd"} {
		if err := checkDisplay(goos, env(nil)); err == nil || !strings.Contains(err.Error(), "no display") ||
			!strings.Contains(err.Error(), "perfusion help") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s without a display: %v, want one line that says so and names `perfusion help`", goos, err)
		}
		if err := checkDisplay(goos, env(map[string]string{displayVar: ":0"})); err != nil {
			t.Errorf("%s with %s set: %v", goos, displayVar, err)
		}
	}
	for _, goos := range []string{"darwin", "windows"} {
		if err := checkDisplay(goos, env(nil)); err != nil {
			t.Errorf("%s: %v; it always has a display", goos, err)
		}
	}
}
