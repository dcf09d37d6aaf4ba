// Package photos prepares the photos a Perfusion concept is trained on
// (see ../../shared spec §6.1): it finds them, decodes JPEG, PNG and WebP
// upright (EXIF orientation applied), refuses images too large to decode
// safely, crops each to a square (the centre, or a given box), resizes it
// to the training size and optionally adds a mirrored copy.
//
// Photos are decoded one at a time and reduced to the training size at
// once, so memory holds one full-size image at most.
package photos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	_ "image/jpeg" // registers JPEG for image.Decode
	_ "image/png"  // registers PNG

	"github.com/disintegration/imaging"
	_ "golang.org/x/image/webp" // registers WebP
)

// Limits on the input.
const (
	// MaxPhotos is the most photos a concept is trained on. Perfusion
	// needs few (the paper averages 6.5 a concept); more only slows the
	// preparation and dilutes nothing useful.
	MaxPhotos = 20
	// DefaultMaxPixels is the largest image (width × height) decoded when
	// Options.MaxPixels is 0: 64 megapixels, past every phone camera. A
	// decode of that size peaks at about 0.6 GB.
	DefaultMaxPixels = 64 << 20
	// MaxFileBytes is the largest photo file read.
	MaxFileBytes = 256 << 20
	// MaxSize is the largest training side accepted.
	MaxSize = 2048
)

// formats are the image.Decode format names accepted.
var formats = []string{"jpeg", "png", "webp"}

// extensions are the file endings Collect picks up in a folder.
var extensions = []string{".jpg", ".jpeg", ".png", ".webp"}

// ErrNoPhotos is returned when no photo was given or found.
var ErrNoPhotos = errors.New("photos: no photos given (pass 1 to 20 JPEG, PNG or WebP files, or a folder of them)")

// Photo is one input photo.
type Photo struct {
	Path string
	// Crop is the region to train on, in the pixels of the upright image
	// (after its EXIF orientation). A box that is not square is reduced to
	// its centred square. The zero Rectangle takes the image's centred
	// square.
	Crop image.Rectangle
}

// Options control Prepare.
type Options struct {
	// Size is the side of the square training views, in pixels (1 to
	// MaxSize); callers round it to what their model needs.
	Size int
	// Flip adds a horizontally mirrored copy of every view (Perfusion's
	// flip augmentation; leave it off for asymmetric subjects such as
	// text or logos).
	Flip bool
	// MaxPixels refuses larger images (0: DefaultMaxPixels).
	MaxPixels int
}

// View is one prepared training image.
type View struct {
	Source  string       // the photo's path
	Flipped bool         // the mirrored copy
	Image   *image.NRGBA // Size × Size, opaque
}

// Collect turns command-line style arguments (files and folders) into
// photos. A folder contributes its JPEG, PNG and WebP files (by
// extension, in name order, hidden files skipped, not recursing); a file is
// taken whatever its name. It fails on zero or more than MaxPhotos photos,
// and on paths that do not exist.
func Collect(args []string) ([]Photo, error) {
	var out []Photo
	for _, a := range args {
		st, err := os.Stat(a)
		if err != nil {
			return nil, fmt.Errorf("photos: %w", err)
		}
		if !st.IsDir() {
			out = append(out, Photo{Path: a})
			continue
		}
		entries, err := os.ReadDir(a)
		if err != nil {
			return nil, fmt.Errorf("photos: %w", err)
		}
		n := 0
		for _, e := range entries { // ReadDir sorts by name
			name := e.Name()
			if e.IsDir() || strings.HasPrefix(name, ".") || !slices.Contains(extensions, strings.ToLower(filepath.Ext(name))) {
				continue
			}
			out = append(out, Photo{Path: filepath.Join(a, name)})
			n++
		}
		if n == 0 {
			return nil, fmt.Errorf("photos: folder %s holds no .jpg, .jpeg, .png or .webp files", a)
		}
	}
	if err := checkCount(len(out)); err != nil {
		return nil, err
	}
	return out, nil
}

// checkCount explains a photo count outside 1..MaxPhotos.
func checkCount(n int) error {
	switch {
	case n == 0:
		return ErrNoPhotos
	case n > MaxPhotos:
		return fmt.Errorf("photos: %d photos: at most %d (a few varied ones, 4 to 8, work best)", n, MaxPhotos)
	}
	return nil
}

// Decode reads one image (JPEG, PNG or WebP) upright: a JPEG's EXIF
// orientation is applied. It refuses images of more than maxPixels pixels
// (0: DefaultMaxPixels) before decoding them, from the header alone, and
// files over MaxFileBytes.
func Decode(r io.Reader, maxPixels int) (image.Image, error) {
	if maxPixels <= 0 {
		maxPixels = DefaultMaxPixels
	}
	data, err := io.ReadAll(io.LimitReader(r, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("file larger than %d MB", MaxFileBytes>>20)
	}
	if len(data) == 0 {
		return nil, errors.New("empty file")
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if errors.Is(err, image.ErrFormat) || err == nil && !slices.Contains(formats, format) {
		return nil, errors.New("not a JPEG, PNG or WebP image")
	}
	if err != nil {
		return nil, fmt.Errorf("broken %s: %w", formatName(format), err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return nil, fmt.Errorf("%s of %dx%d pixels is empty", formatName(format), cfg.Width, cfg.Height)
	}
	if px := int64(cfg.Width) * int64(cfg.Height); px > int64(maxPixels) {
		return nil, fmt.Errorf("%dx%d pixels (%.0f megapixels) is too large: at most %.0f megapixels; downscale it first",
			cfg.Width, cfg.Height, float64(px)/(1<<20), float64(maxPixels)/(1<<20))
	}
	img, err := imaging.Decode(bytes.NewReader(data), imaging.AutoOrientation(true))
	if err != nil {
		return nil, fmt.Errorf("broken %s: %w", formatName(format), err)
	}
	return img, nil
}

// formatName is the user-facing name of an image.Decode format.
func formatName(f string) string {
	switch f {
	case "jpeg":
		return "JPEG"
	case "png":
		return "PNG"
	case "webp":
		return "WebP"
	}
	return "image"
}

// DecodeFile is Decode of the file at path.
func DecodeFile(path string, maxPixels int) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("photos: %w", err)
	}
	defer f.Close()
	img, err := Decode(f, maxPixels)
	if err != nil {
		return nil, fmt.Errorf("photos: %s: %w", path, err)
	}
	return img, nil
}

// Prepare decodes, crops and resizes the photos into training views, in
// order (each photo, then its mirror when opt.Flip). progress (may be nil)
// is called after each photo with the number done. ctx is checked between
// photos.
func Prepare(ctx context.Context, photos []Photo, opt Options, progress func(done, total int)) ([]View, error) {
	if err := checkCount(len(photos)); err != nil {
		return nil, err
	}
	if opt.Size <= 0 || opt.Size > MaxSize {
		return nil, fmt.Errorf("photos: training size %d: want 1 to %d pixels", opt.Size, MaxSize)
	}
	var views []View
	for i, p := range photos {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		img, err := DecodeFile(p.Path, opt.MaxPixels)
		if err != nil {
			return nil, err
		}
		v, err := Square(img, p.Crop, opt.Size)
		if err != nil {
			return nil, fmt.Errorf("photos: %s: %w", p.Path, err)
		}
		views = append(views, View{Source: p.Path, Image: v})
		if opt.Flip {
			views = append(views, View{Source: p.Path, Flipped: true, Image: imaging.FlipH(v)})
		}
		if progress != nil {
			progress(i+1, len(photos))
		}
	}
	return views, nil
}
