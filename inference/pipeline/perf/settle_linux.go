package perf

import (
	"fmt"
	"io"
	"os"
	"syscall"
)

// fadvDontNeed is POSIX_FADV_DONTNEED.
const fadvDontNeed = 4

// Settle leaves the page cache of the file at path as reading it from disk
// does: it writes the file's pages out, drops them from the cache and
// reads the file back. A file just written is cached in the small folios
// its writes made, and a mapping of it uses 4 KiB pages; one read from
// disk is cached, on kernels whose file system reads ahead in large folios
// (ext4 and XFS on recent Linux), largely in 2 MiB folios that a mapping
// uses whole. The benchmark's random checkpoint is settled so that its
// mapped weights are laid out as a user's checkpoint is.
func Settle(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("perf: settle: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("perf: settle %s: %w", path, err)
	}
	if _, _, errno := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); errno != 0 {
		return fmt.Errorf("perf: settle %s: fadvise: %w", path, errno)
	}
	if _, err := io.Copy(io.Discard, f); err != nil {
		return fmt.Errorf("perf: settle %s: %w", path, err)
	}
	return nil
}

// FileHugeMapped is how many bytes of the process's file mappings are
// mapped in 2 MiB pages (FilePmdMapped of /proc/self/smaps_rollup).
func FileHugeMapped() (int64, error) {
	n, err := procKB("/proc/self/smaps_rollup", "FilePmdMapped:")
	if err != nil {
		return 0, fmt.Errorf("perf: huge-page mappings: %w", err)
	}
	return n, nil
}
