package main

import (
	"path/filepath"
	"strings"

	"github.com/perfusion-studio/perfusion/app"
	"github.com/perfusion-studio/perfusion/assets"
)

// defaultModelNote is what the headless commands print when they use the
// default model.
const defaultModelNote = "using the default model (built-in emoji model); --model names your own SD 1.x checkpoint"

// installDefaultModel installs the embedded default model in the user's
// cache folder (perfusion/defaultmodel) and returns its folder.
func installDefaultModel() (string, error) {
	root, err := assets.DefaultModelCacheDir()
	if err != nil {
		return "", err
	}
	return assets.InstallDefaultModel(root)
}

// clipVocab is the built-in CLIP vocabulary, the loader's fallback for
// models that come without one (pipeline.LoadOptions.FallbackBPE).
func clipVocab() string { return string(assets.CLIPVocab()) }

// defaultModel is the app's default model.
func defaultModel() *app.DefaultModel {
	return &app.DefaultModel{Name: assets.DefaultModelName, Install: installDefaultModel}
}

// resolveModel returns the model a headless command's --model names, or
// the default model, installed, when it names none (and then says so on
// pr); name is the model's name for PNG parameters and messages.
func resolveModel(flag string, pr *progressPrinter) (path, name string, err error) {
	if flag != "" {
		return flag, strings.TrimSuffix(filepath.Base(flag), filepath.Ext(flag)), nil
	}
	dir, err := installDefaultModel()
	if err != nil {
		return "", "", err
	}
	pr.line(defaultModelNote)
	return dir, assets.DefaultModelName, nil
}
