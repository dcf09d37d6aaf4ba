package perfusion

import (
	"regexp"
	"strings"
	"testing"
)

func TestAppInfoFromEmbeddedFile(t *testing.T) {
	info, err := AppInfo()
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "Perfusion Studio" {
		t.Errorf("Name = %q, want %q", info.Name, "Perfusion Studio")
	}
	if !regexp.MustCompile(`^[a-z][a-z0-9]*(\.[a-z][a-z0-9]*){2,}$`).MatchString(info.ID) {
		t.Errorf("ID = %q, want a reverse-DNS name", info.ID)
	}
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(info.Version) {
		t.Errorf("Version = %q, want x.y.z", info.Version)
	}
	if info.Build < 1 {
		t.Errorf("Build = %d, want >= 1", info.Build)
	}
}

func TestParseInfo(t *testing.T) {
	// The layout `fyne package` writes back (indented keys, other tables).
	data := `Website = "https://example.org"

[Details]
  Icon = "assets/icon.png"
  Name = "Some \"App\""  # a comment
  ID = 'org.example.app'
  Version = "1.2.3"
  Build = 42 # bumped

[LinuxAndBSD]
  Name = "not this one"
  Keywords = ["a", "b"]
`
	got, err := ParseInfo([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	want := Info{Name: `Some "App"`, ID: "org.example.app", Version: "1.2.3", Build: 42}
	if got != want {
		t.Errorf("ParseInfo = %+v, want %+v", got, want)
	}
	if s := got.String(); s != `Some "App" 1.2.3 (build 42)` {
		t.Errorf("String() = %q", s)
	}
}

func TestParseInfoErrors(t *testing.T) {
	const ok = "Name = \"A\"\nID = \"a.b.c\"\nVersion = \"1.0.0\"\n"
	for _, tc := range []struct {
		name, data, want string
	}{
		{"no details table", ok, "Details.Name is missing"},
		{"missing version", "[Details]\nName = \"A\"\nID = \"a.b.c\"\n", "Details.Version is missing"},
		{"empty name", "[Details]\nName = \"\"\nID = \"a.b.c\"\nVersion = \"1\"\n", "must not be empty"},
		{"unquoted", "[Details]\nName = A\n", "line 2: Details.Name: want a quoted string"},
		{"unterminated", "[Details]\nName = \"A\n", "unterminated string"},
		{"junk after", "[Details]\nName = \"A\" B\n", "unexpected"},
		{"bad build", "[Details]\nBuild = \"7\"\n", "Details.Build: want an integer"},
		{"no equals", "[Details]\nName\n", "want key = value"},
		{"bad header", "[Details\n", "unterminated table header"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseInfo([]byte(tc.data))
			if err == nil {
				t.Fatalf("no error, want one containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "perfusion: ") {
				t.Errorf("error %q, want prefix %q and %q", err, "perfusion: ", tc.want)
			}
		})
	}
}
