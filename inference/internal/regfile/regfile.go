// Package regfile opens model files only when they are regular files: a
// FIFO, a device or a socket named as weights or config would block a read
// forever (or never end), so it is refused before and after opening.
package regfile

import (
	"fmt"
	"os"
	"syscall"
)

// Open opens path for reading if it is a regular file (symbolic links are
// followed) and returns it with its size. A folder or a special file is an
// error naming what it is. On Unix the file is opened non-blocking, so that
// a FIFO swapped in between the check and the open cannot block either.
func Open(path string) (*os.File, int64, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	if err := check(path, st); err != nil {
		return nil, 0, err
	}
	f, err := os.OpenFile(path, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, 0, err
	}
	st, err = f.Stat()
	if err == nil {
		err = check(path, st)
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, st.Size(), nil
}

// Check returns an error when st is not a regular file.
func check(path string, st os.FileInfo) error {
	m := st.Mode()
	switch {
	case m.IsRegular():
		return nil
	case m.IsDir():
		return fmt.Errorf("%s is a folder, not a file", path)
	case m&os.ModeNamedPipe != 0:
		return fmt.Errorf("%s is a named pipe (FIFO), not a regular file", path)
	case m&os.ModeSocket != 0:
		return fmt.Errorf("%s is a socket, not a regular file", path)
	case m&os.ModeDevice != 0:
		return fmt.Errorf("%s is a device, not a regular file", path)
	}
	return fmt.Errorf("%s is not a regular file (mode %v)", path, m)
}

// nonBlock is O_NONBLOCK where the system has it: opening a FIFO for
// reading would otherwise wait for a writer. It changes nothing for regular
// files.
const nonBlock = syscall.O_NONBLOCK
