// Package localeenv repairs, before Fyne's packages initialise, a locale
// setting that Fyne cannot parse, so that no command prints Fyne's
// "Error parsing user locale" lines.
//
// Fyne's lang package reads the user's languages when it initialises, with
// github.com/jeandeaual/go-locale: the first non-empty of LC_ALL,
// LC_MESSAGES and LANG, or LANGUAGE (a colon-separated list) unless that
// value is exactly C or POSIX, each entry cut at '.' and split at '_' into
// a language and a region. A value such as C.UTF-8 (the default of many
// containers and CI systems) or de_DE@euro then gives a tag that
// golang.org/x/text/language refuses, and Fyne logs the error on stderr.
// This package sets LANGUAGE to the entries that parse (the language Fyne
// would use is unchanged: it falls back to English) or to "en" when none
// does; a setting Fyne reads without error is left alone.
//
// On Linux with cgo a C constructor (clocale_cgo.go), run when the program
// is loaded, also checks that the C library has the locale the environment
// names, and otherwise sets LC_ALL=C.UTF-8 for C code, so that GTK
// (initialised before main by the native dialog package) stays quiet.
//
// Import it for its side effect, blank, from package main. It must import
// nothing beyond os and strings (and cgo's runtime): Go initialises, at each step, the first
// package in import-path order whose imports are all initialised (the
// language specification, "Package initialization"). Fyne's lang package
// imports text/template, which needs os and strings and sorts after this
// package, so this package is initialised before text/template, hence before
// lang. cmd/perfusion's TestHeadlessPrintsOnlyItsOwnOutput checks the
// outcome on the built program.
package localeenv

import (
	"os"
	"strings"
)

func init() {
	if v, ok := Repair(os.Getenv); ok {
		_ = os.Setenv("LANGUAGE", v) // fails only on a malformed key
	}
}

// Repair returns the LANGUAGE value that makes the locale environment read
// through getenv parse cleanly, and whether it must be set; ok is false when
// nothing needs changing.
func Repair(getenv func(string) string) (language string, ok bool) {
	locale := ""
	for _, k := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if locale = getenv(k); locale != "" {
			break
		}
	}
	if locale == "C" || locale == "POSIX" {
		return "", false // read as "no preference": nothing to parse
	}
	list := getenv("LANGUAGE")
	if list == "" {
		list = locale
	}
	if list == "" {
		return "", false
	}
	entries := strings.Split(list, ":")
	clean := true
	for _, e := range entries {
		tag, _, _ := strings.Cut(e, ".") // go-locale drops the codeset
		clean = clean && wellFormed(tag)
	}
	if clean {
		return "", false
	}
	var keep []string
	for _, e := range entries {
		tag, _, _ := strings.Cut(e, ".")
		tag, _, _ = strings.Cut(tag, "@") // and keeps the modifier
		if wellFormed(tag) {
			keep = append(keep, tag)
		}
	}
	if len(keep) == 0 {
		return "en", true
	}
	return strings.Join(keep, ":"), true
}

// wellFormed reports whether a POSIX locale name without codeset or modifier
// (language, or language_REGION) reads as a BCP 47 tag: a language of 2-3
// letters (x/text refuses longer ones), then nothing, a region (2 letters or
// 3 digits) or a script (4 letters), separated by '_' or '-'.
func wellFormed(tag string) bool {
	lang, region, _ := strings.Cut(strings.ReplaceAll(tag, "-", "_"), "_")
	if n := len(lang); !allOf(lang, isLetter) || n < 2 || n > 3 {
		return false
	}
	switch {
	case region == "":
		return true
	case len(region) == 2 || len(region) == 4:
		return allOf(region, isLetter)
	case len(region) == 3:
		return allOf(region, isDigit)
	}
	return false
}

func allOf(s string, f func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !f(s[i]) {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return 'a' <= c|0x20 && c|0x20 <= 'z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }
