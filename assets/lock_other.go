//go:build !unix

package assets

// lockFile does nothing where the system has no advisory file locks:
// install then relies on its atomic rename alone (a process that loses the
// race uses the winner's copy).
func lockFile(string) (unlock func(), err error) { return func() {}, nil }
