// Command perfusion is Perfusion Studio. With no arguments it opens the
// desktop app; `perfusion --version` prints the version; `perfusion COMMAND
// ...` runs a headless command (`perfusion help` lists those that exist).
package main

import (
	"os"

	// Before Fyne initialises: a locale it cannot parse (LANG=C.UTF-8)
	// would have it log errors on stderr from every command.
	_ "github.com/perfusion-studio/perfusion/cmd/perfusion/internal/localeenv"
)

func main() {
	os.Exit(newCLI(os.Stdout, os.Stderr).run(os.Args[1:]))
}
