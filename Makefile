# Perfusion Studio: build, run, test.
#
#   make run    install missing system packages, build bin/perfusion, open the app
#   make test   install missing system and test packages, then gofmt, go vet
#               and every test; every step runs, and the failed ones are
#               listed at the end
#
# System packages are installed only when missing (Debian/Ubuntu via apt-get,
# with sudo when not root); on macOS only the Xcode command line tools are
# needed. Go itself is checked, never downloaded.

GO      ?= go
GO_MIN  := 1.26
BIN     := bin/perfusion
GOFMT    = "$$($(GO) env GOROOT)/bin/gofmt"

# Debian/Ubuntu packages: cgo, OpenGL/X11 for Fyne, GTK for native dialogs,
# OpenBLAS for the CPU backend.
RUN_DEBS  := gcc pkg-config libgl1-mesa-dev libx11-dev libxcursor-dev libxrandr-dev \
             libxinerama-dev libxi-dev libxxf86vm-dev libgtk-3-dev libopenblas-dev
# ...plus what the real-window smoke tests need (Xvfb, xwininfo, import,
# xdotool, and GTK for Python as the drag source of a file drop),
# and qemu-user to run the arm64 tests on an x86-64 machine.
TEST_DEBS := $(RUN_DEBS) xvfb xauth x11-utils imagemagick xdotool python3-gi gir1.2-gtk-3.0 qemu-user

# The steps of `make test`, run in this order after the set-up. Every step
# runs even when an earlier one fails; make test then lists the failed
# steps and fails. To add a check, write a target for it below and name it
# in TEST_STEPS (or, for another `go test` line, in TEST_GO).
TEST_GO    := test-go-all test-go-race test-go-purego test-go-arm64
TEST_STEPS := test-fmt test-vet test-vet-darwin $(TEST_GO)

# The default model's training data (see assets/README.md): the Noto Color
# Emoji bitmaps, the Unicode emoji names and the CLDR annotations.
MODEL_DEBS := fonts-noto-color-emoji unicode-data unicode-cldr-core
# The tests of the trained model and of its evaluation (assets/evaldefault)
# render the same data.
TEST_DEBS  += $(MODEL_DEBS)
# Work folder (vocabulary, resumable training checkpoint, samples) and the
# finished diffusers folder of `make default-model`.
MODEL_WORK ?= build/default-model
MODEL_OUT  ?= assets/defaultmodel

# fyne CLI used by `make package` (fetched through the Go module proxy).
FYNE_CLI := fyne.io/tools/cmd/fyne@v1.7.4
PKG_OS   ?= $(shell $(GO) env GOOS 2>/dev/null)

.PHONY: run build test test-go deps deps-test check-go $(TEST_STEPS) icon screenshot package clean default-model
# Steps run one after another, in the order listed, even under make -j.
.NOTPARALLEL:

run: build
	./$(BIN)

build: deps check-go
	$(GO) build -o $(BIN) ./cmd/perfusion

test: deps-test check-go
	@$(call run-steps,make test,$(TEST_STEPS))

deps:
	@$(call install-packages,$(RUN_DEBS))

deps-test:
	@$(call install-packages,$(TEST_DEBS))

test-fmt: check-go
	@files="$$($(GOFMT) -l .)"; \
	if [ -n "$$files" ]; then echo "gofmt -l lists files that need formatting (run gofmt -w):"; echo "$$files"; exit 1; fi; \
	echo "gofmt: clean"

test-vet: check-go
	$(GO) vet ./...

# Everything below app/ builds for Apple Silicon without cgo (the pure-Go
# kernels, no BLAS).
test-vet-darwin: check-go
	GOOS=darwin GOARCH=arm64 CGO_ENABLED=0 $(GO) vet ./inference/... ./concepts/... ./internal/...

test-go: check-go
	@$(call run-steps,make test-go,$(TEST_GO))

test-go-all: check-go
	$(GO) test ./...

# The UI and services, and the runtime's concurrent kernels, under the race
# detector. Both lines run even if the first fails.
test-go-race: check-go
	@rc=0; \
	for args in "./ui/... ./app/..." "-short ./inference/backend/... ./inference/kernels/... ./inference/ops/..."; do \
		echo "$(GO) test -race $$args"; \
		$(GO) test -race $$args || rc=1; \
	done; \
	exit $$rc

# The pure-Go kernels (what a build without cgo or BLAS runs) give the same
# results.
test-go-purego: check-go
	CGO_ENABLED=0 $(GO) test -short ./inference/backend/... ./inference/kernels/... ./inference/ops/...

# The runtime's pure-Go kernels pass their tests on arm64: natively on an
# arm64 machine, under qemu-aarch64 (Debian's qemu-user) on Linux elsewhere.
ARM64_PKGS := ./inference/backend/... ./inference/kernels/... ./inference/ops/... \
              ./inference/internal/... ./inference/blocks/internal/f16/...

test-go-arm64: check-go
	@set -e; \
	if [ "$$($(GO) env GOHOSTARCH)" = arm64 ]; then \
		echo "CGO_ENABLED=0 $(GO) test -short (arm64 host)"; \
		CGO_ENABLED=0 $(GO) test -short $(ARM64_PKGS); \
	elif [ "$$(uname -s)" = Linux ]; then \
		if ! command -v qemu-aarch64 >/dev/null 2>&1; then \
			echo "qemu-aarch64 not found: install qemu-user (Debian/Ubuntu) or your system's qemu user-mode emulator"; exit 1; \
		fi; \
		echo "GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) test -short -exec qemu-aarch64"; \
		GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) test -short -exec qemu-aarch64 $(ARM64_PKGS); \
	else \
		echo "test-go-arm64: skipped (needs an arm64 machine, or Linux with qemu-user)"; \
	fi

# Redraw assets/icon.png (a test checks the committed file matches).
icon: check-go
	$(GO) run ./assets/internal/mkicon -o assets/icon.png

# Redraw docs/screenshot.png, the README's picture of the window at work:
# the real-window scenario test, under Xvfb, on the embedded default model.
screenshot: deps-test check-go
	PERFUSION_README_SCREENSHOT=$(CURDIR)/docs/screenshot.png $(GO) test -count=1 -run '^TestSmokeScenario$$' ./cmd/perfusion

# Build the embedded default model: install the data packages, render the
# emoji, learn the vocabulary, train (about 2 hours on 2 cores) and write
# $(MODEL_OUT). Stop it at any time; running it again resumes from the
# checkpoint in $(MODEL_WORK). MODEL_FLAGS passes options (e.g. -max-steps).
default-model: check-go
	@$(call install-packages,$(MODEL_DEBS))
	$(GO) run ./assets/internal/mkdefault -work $(MODEL_WORK) -out $(MODEL_OUT) $(MODEL_FLAGS)

# Package the app for PKG_OS from FyneApp.toml (linux: a .tar.xz with a
# desktop entry). Note: `fyne package` bumps Details.Build in FyneApp.toml.
package: build
	$(GO) run $(FYNE_CLI) package -os $(PKG_OS) --executable $(BIN)

clean:
	rm -rf bin

# Go $(GO_MIN) or newer must be installed. GOTOOLCHAIN=local and running outside
# the module keep an older go from fetching a newer toolchain by itself.
GO_HELP := Install Go $(GO_MIN) or newer from https://go.dev/dl/ (Linux: unpack the \
tarball into /usr/local and add /usr/local/go/bin to PATH; macOS: run the .pkg \
installer or brew install go), then run make again.

check-go:
	@if ! command -v $(GO) >/dev/null 2>&1; then \
		echo "Go is not installed. $(GO_HELP)"; exit 1; \
	fi; \
	v="$$(cd / && GOTOOLCHAIN=local $(GO) version | awk '{print $$3}')"; \
	if ! echo "$$v" | awk -v min="$(GO_MIN)" '{ sub(/^go/, ""); split($$0, v, /[^0-9]+/); split(min, m, "."); \
		exit !(v[1] > m[1] || (v[1] == m[1] && v[2] >= m[2])) }'; then \
		echo "Found $$v, but Perfusion Studio needs Go $(GO_MIN) or newer. $(GO_HELP)"; exit 1; \
	fi

# run-steps: make each of the targets $(2) in turn, whatever the outcome of
# the others, then list those that failed and fail, or say all passed.
# $(1) names the whole run in the summary.
define run-steps
failed=""; \
for step in $(2); do \
	echo "==> $$step"; \
	$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) $$step || failed="$$failed $$step"; \
done; \
if [ -n "$$failed" ]; then \
	echo "$(1): FAILED:$$failed"; exit 1; \
fi; \
echo "$(1): all checks passed"
endef

# install-packages: on Debian/Ubuntu, install those of the given packages
# that dpkg does not list as installed (apt-get update only then); on macOS,
# check for the Xcode command line tools.
define install-packages
set -e; \
case "$$(uname -s)" in \
Darwin) \
	if ! xcode-select -p >/dev/null 2>&1; then \
		echo "Install the Xcode command line tools first: xcode-select --install"; exit 1; \
	fi ;; \
Linux) \
	if ! command -v dpkg-query >/dev/null 2>&1; then \
		echo "Not Debian/Ubuntu: make sure the equivalents of these are installed: $(1)"; exit 0; \
	fi; \
	missing=""; \
	for p in $(1); do \
		dpkg-query -W -f='$${db:Status-Abbrev}' "$$p" 2>/dev/null | grep -q '^ii' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		sudo=""; if [ "$$(id -u)" -ne 0 ]; then sudo="sudo"; fi; \
		echo "Installing missing system packages:$$missing"; \
		$$sudo apt-get update; \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi ;; \
*) \
	echo "Unsupported system $$(uname -s): install a C compiler and the OpenGL/X11 development files yourself" ;; \
esac
endef
