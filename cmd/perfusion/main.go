// Command perfusion is Perfusion Studio. With no arguments it opens the
// desktop app; `perfusion --version` prints the version; `perfusion COMMAND
// ...` runs a headless command (see `perfusion -h` for those that exist).
package main

import "os"

func main() {
	os.Exit(newCLI(os.Stdout, os.Stderr).run(os.Args[1:]))
}
