package localeenv

import (
	"os"
	"testing"

	"github.com/jeandeaual/go-locale"
	"golang.org/x/text/language"
)

// fyneParses reports whether Fyne's lang package reads the current
// environment without logging an error: it parses every entry of
// go-locale's GetLocales and the first (or "en" when shorter than 2) of
// GetLocale with x/text's language.Parse.
func fyneParses(t *testing.T) bool {
	t.Helper()
	all, err := locale.GetLocales()
	if err != nil {
		t.Fatal(err)
	}
	one, err := locale.GetLocale()
	if err != nil {
		t.Fatal(err)
	}
	if len(one) < 2 {
		one = "en"
	}
	for _, l := range append(all, one) {
		if _, err := language.Parse(l); err != nil {
			return false
		}
	}
	return true
}

func TestRepairMakesFyneLocaleParse(t *testing.T) {
	for _, tc := range []struct {
		name                       string
		lcAll, lcMessages, lang, l string // l is LANGUAGE
		want                       string // LANGUAGE after Repair; "" = unchanged
		first                      string // then go-locale's first locale
	}{
		{name: "C.UTF-8", lang: "C.UTF-8", want: "en", first: "en"},
		{name: "C.utf8 in LC_ALL", lcAll: "C.utf8", lang: "de_DE.UTF-8", want: "en", first: "en"},
		{name: "POSIX.UTF-8 in LC_MESSAGES", lcMessages: "POSIX.UTF-8", want: "en", first: "en"},
		{name: "plain C", lang: "C", first: "en"},
		{name: "plain POSIX", lcAll: "POSIX", first: "en"},
		{name: "unset", first: "en"},
		{name: "ordinary", lang: "en_US.UTF-8", first: "en-US"},
		{name: "ordinary LANGUAGE", lang: "de_DE.UTF-8", l: "de_DE:fr:en", first: "de-DE"},
		{name: "modifier", lang: "de_DE@euro", want: "de_DE", first: "de-DE"},
		{name: "modifier after codeset", lang: "sr_RS.UTF-8@latin", first: "sr-RS"},
		{name: "bad LANGUAGE entry dropped", lang: "fr_FR.UTF-8", l: "fr_FR:C:de", want: "fr_FR:de", first: "fr-FR"},
		{name: "C.UTF-8 with LANGUAGE", lang: "C.UTF-8", l: "pt_BR:pt", first: "pt-BR"},
		{name: "garbage", lang: "x", want: "en", first: "en"},
		{name: "script", lang: "zh_Hans.UTF-8", first: "zh-Hans"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"LC_ALL": tc.lcAll, "LC_MESSAGES": tc.lcMessages, "LANG": tc.lang, "LANGUAGE": tc.l}
			for k, v := range env {
				t.Setenv(k, v)
			}
			before := fyneParses(t)
			got, ok := Repair(os.Getenv)
			if ok != (tc.want != "") || got != tc.want {
				t.Fatalf("Repair = %q, %v; want %q, %v", got, ok, tc.want, tc.want != "")
			}
			if ok == before {
				t.Errorf("Repair changes LANGUAGE: %v, but Fyne parsed the setting before: %v", ok, before)
			}
			if ok {
				t.Setenv("LANGUAGE", got)
			}
			if !fyneParses(t) {
				t.Errorf("after Repair, Fyne still cannot parse the locale")
			}
			if l, _ := locale.GetLocale(); l != tc.first && !(l == "" && tc.first == "en") {
				t.Errorf("first locale %q, want %q", l, tc.first)
			}
		})
	}
}

func TestWellFormedAgreesWithLanguageParse(t *testing.T) {
	for _, tag := range []string{"en", "eng", "en_US", "en-US", "es_419", "zh_Hant", "C", "", "e", "engl",
		"en_U", "en_USA", "en_US@euro", "de_DE_x", "toolongforalang", "abcde", "en_12"} {
		_, err := language.Parse(tag)
		if wellFormed(tag) && err != nil {
			t.Errorf("wellFormed(%q) but language.Parse: %v", tag, err)
		}
		if !wellFormed(tag) && err == nil && tag != "" {
			t.Logf("wellFormed(%q) = false though language.Parse accepts it (stricter is safe)", tag)
		}
	}
}
