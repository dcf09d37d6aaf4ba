package assets

import (
	"embed"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// defaultModel is defaultmodel/, the default model as `make default-model`
// writes it: a diffusers folder (model_index.json, the three models'
// config.json and float16 safetensors, the scheduler config and the
// tokenizer's vocab.json + merges.txt).
//
//go:embed defaultmodel
var defaultModel embed.FS

// DefaultModelName is the default model's display name.
const DefaultModelName = "Default emoji model"

// DefaultModelFS returns the embedded default model, a diffusers folder
// (model_index.json at its root). It is read-only.
func DefaultModelFS() fs.FS {
	sub, err := fs.Sub(defaultModel, "defaultmodel")
	if err != nil { // only for a malformed name, and the name is fixed
		panic(err)
	}
	return sub
}

// DefaultModelCacheDir is where InstallDefaultModel puts the default model
// unless told otherwise: perfusion/defaultmodel in the user's cache folder
// (~/.cache on Linux, ~/Library/Caches on macOS).
func DefaultModelCacheDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("default model: no cache folder: %w", err)
	}
	return filepath.Join(dir, "perfusion", "defaultmodel"), nil
}

// InstallDefaultModel writes the embedded default model as a real folder
// under root (the model loader maps files, so it needs paths) and returns
// that folder, root/ID, ID a hash of the content (a new app version gets
// a fresh copy beside the old). A copy already there is checked (every
// file's size and SHA-256, no stray files) and used if intact, written
// again if not. The folder appears complete or not at all (written into a
// temporary folder, then renamed), and processes installing at the same
// time do not disturb each other. It takes about as long as reading and
// writing 17 MB.
func InstallDefaultModel(root string) (string, error) {
	dir, err := install(DefaultModelFS(), root)
	if err != nil {
		return "", fmt.Errorf("install the default model in %s: %w", root, err)
	}
	return dir, nil
}
