//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package safetensors

import (
	"errors"
	"os"
)

// mmapFile is not used on this system: tensors are read with ReadAt.
func mmapFile(f *os.File, size int) ([]byte, error) {
	return nil, errors.New("memory mapping not supported here")
}

func munmapFile([]byte) {}
