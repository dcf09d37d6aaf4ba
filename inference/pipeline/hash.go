package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"

	"github.com/perfusion-studio/perfusion/inference/internal/regfile"
)

// ModelHashLen is the length of a model hash: the AUTOMATIC1111 web UI's
// short hash (sd_models.CheckpointInfo.shorthash) is the first 10 hex
// digits of the checkpoint file's SHA-256.
const ModelHashLen = 10

// ModelHash is the web UI's "Model hash" of the checkpoint file at path,
// as its PNG parameters record it. A folder (a diffusers model) has none:
// ModelHash returns "" and no error. The file is read in 1 MiB chunks
// (1.5 s for a 2.1 GB file on a CPU with SHA instructions), and the
// hash stops with ctx.Err() once ctx is done.
func ModelHash(ctx context.Context, path string) (string, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		return "", nil
	}
	f, _, err := regfile.Open(path) // a FIFO would block the read forever
	if err != nil {
		return "", fmt.Errorf("pipeline: model hash: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return "", fmt.Errorf("pipeline: model hash: %w", err)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:ModelHashLen], nil
}
