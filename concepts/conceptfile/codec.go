package conceptfile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"github.com/perfusion-studio/perfusion/internal/atomicfile"
	"hash/crc32"
	"io"
	"math"
	"os"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// prefixLen is the size of magic + version + flags.
const prefixLen = len(Magic) + 4

// Encode returns c in the file format. It fills c.LayerInfo and c.Dim from
// the tensors, and fails on an incomplete concept or a non-finite value.
func Encode(c *Concept) ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	h := c.Header
	h.Dim = len(c.Embedding)
	h.LayerInfo = make([]LayerInfo, len(c.Layers))
	for i, l := range c.Layers {
		h.LayerInfo[i] = LayerInfo{Name: l.Name, Out: len(l.OutK)}
	}
	head, err := json.Marshal(&h)
	if err != nil {
		return nil, fmt.Errorf("conceptfile: header: %w", err)
	}
	if len(head) > MaxHeaderBytes {
		return nil, fmt.Errorf("conceptfile: header of %d bytes, at most %d (long layer names or training settings)", len(head), MaxHeaderBytes)
	}
	if n := 4 * h.Floats(); n > MaxTensorBytes {
		return nil, fmt.Errorf("conceptfile: tensors of %d bytes, at most %d", n, MaxTensorBytes)
	}
	c.Header.Dim, c.Header.LayerInfo = h.Dim, h.LayerInfo

	tens := make([]byte, 0, 4*h.Floats())
	for _, t := range c.tensors() {
		for _, v := range t.v {
			tens = binary.LittleEndian.AppendUint32(tens, math.Float32bits(v))
		}
	}
	var b bytes.Buffer
	b.WriteString(Magic)
	b.Write(binary.LittleEndian.AppendUint16(binary.LittleEndian.AppendUint16(nil, FormatVersion), 0))
	for _, sec := range [][]byte{head, c.Thumbnail, tens} {
		b.Write(binary.LittleEndian.AppendUint32(nil, uint32(len(sec))))
		b.Write(sec)
		b.Write(binary.LittleEndian.AppendUint32(nil, crc32.Checksum(sec, castagnoli)))
	}
	return b.Bytes(), nil
}

// Decode parses a whole concept file.
func Decode(data []byte) (*Concept, error) {
	return decode(bytes.NewReader(data), true)
}

// Read parses a concept file from r, reading at most what the limits allow.
func Read(r io.Reader) (*Concept, error) {
	return decode(r, true)
}

// ReadHeader parses only the header and thumbnail of a concept file (for
// listings): the tensors are neither read nor checked. The returned
// Concept has nil tensors.
func ReadHeader(r io.Reader) (*Concept, error) {
	return decode(r, false)
}

// ReadFile reads and checks the concept file at path.
func ReadFile(path string) (*Concept, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("conceptfile: %w", err)
	}
	defer f.Close()
	c, err := Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// ReadFileHeader is ReadHeader on the file at path.
func ReadFileHeader(path string) (*Concept, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("conceptfile: %w", err)
	}
	defer f.Close()
	c, err := ReadHeader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// WriteFile writes c to path atomically (a temporary file in the same
// folder, synced, then renamed over path).
func WriteFile(path string, c *Concept) error {
	data, err := Encode(c)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, data)
}

// decode reads the prefix and sections; with full it also reads the tensors.
func decode(r io.Reader, full bool) (*Concept, error) {
	var pre [prefixLen]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, formatErr("file too short for a concept file (%v)", err)
	}
	if string(pre[:len(Magic)]) != Magic {
		return nil, formatErr("not a Perfusion concept file (bad magic %q)", pre[:len(Magic)])
	}
	if v := int(binary.LittleEndian.Uint16(pre[len(Magic):])); v != FormatVersion {
		return nil, &VersionError{Got: v}
	}
	if flags := binary.LittleEndian.Uint16(pre[len(Magic)+2:]); flags != 0 {
		return nil, formatErr("unknown flags %#x", flags)
	}
	head, err := section(r, "header", MaxHeaderBytes, -1)
	if err != nil {
		return nil, err
	}
	c := &Concept{}
	if err := json.Unmarshal(head, &c.Header); err != nil {
		return nil, formatErr("header: %v", err)
	}
	if err := c.checkHeader(); err != nil {
		return nil, err
	}
	thumb, err := section(r, "thumbnail", MaxThumbnailBytes, -1)
	if err != nil {
		return nil, err
	}
	if len(thumb) > 0 && !bytes.HasPrefix(thumb, []byte(pngSignature)) {
		return nil, formatErr("thumbnail is not a PNG")
	}
	if len(thumb) > 0 {
		c.Thumbnail = thumb
	}
	if !full {
		return c, nil
	}
	tens, err := section(r, "tensors", MaxTensorBytes, 4*c.Floats())
	if err != nil {
		return nil, err
	}
	if err := c.unpack(tens); err != nil {
		return nil, err
	}
	var extra [1]byte
	if n, _ := io.ReadFull(r, extra[:]); n != 0 {
		return nil, formatErr("unexpected data after the tensors")
	}
	return c, nil
}

// section reads one length-prefixed, checksummed section of at most max
// bytes, or of exactly want bytes when want >= 0; the length is checked
// before anything is allocated.
func section(r io.Reader, name string, max, want int) ([]byte, error) {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, formatErr("%s: truncated file (%v)", name, err)
	}
	size := binary.LittleEndian.Uint32(n[:])
	if int64(size) > int64(max) {
		return nil, formatErr("%s of %d bytes, at most %d allowed", name, size, max)
	}
	if want >= 0 && int(size) != want {
		return nil, formatErr("%s section has %d bytes, the header's sizes need %d", name, size, want)
	}
	buf := make([]byte, int(size)+4)
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, formatErr("%s: truncated file (%v)", name, err)
	}
	data, sum := buf[:size], binary.LittleEndian.Uint32(buf[size:])
	if got := crc32.Checksum(data, castagnoli); got != sum {
		return nil, formatErr("%s: checksum mismatch (file says %08x, data gives %08x): the file is corrupt", name, sum, got)
	}
	return data, nil
}

// checkHeader validates a decoded header before any tensor is read.
func (c *Concept) checkHeader() error {
	h := &c.Header
	if err := ValidName(h.Name); err != nil {
		return formatErr("header: %v", err)
	}
	if h.Superclass == "" || h.SuperclassToken < 0 {
		return formatErr("header: missing superclass word or token id")
	}
	if err := checkGate(h.Beta, h.Tau); err != nil {
		return formatErr("header: %v", err)
	}
	if h.Dim <= 0 || h.Dim > MaxTensorBytes/8 {
		return formatErr("header: width D = %d out of range", h.Dim)
	}
	if len(h.LayerInfo) == 0 || len(h.LayerInfo) > MaxLayers {
		return formatErr("header: %d layers, want 1 to %d", len(h.LayerInfo), MaxLayers)
	}
	total := 2 * h.Dim
	for i, l := range h.LayerInfo {
		if l.Name == "" || l.Out <= 0 || l.Out > MaxTensorBytes/8 {
			return formatErr("header: layer %d (%q) has output size %d", i, l.Name, l.Out)
		}
		total += 2 * l.Out
		if 4*total > MaxTensorBytes {
			return formatErr("header: tensors would exceed %d bytes", MaxTensorBytes)
		}
	}
	if len(h.Training) > 0 && !json.Valid(h.Training) {
		return formatErr("header: training settings are not valid JSON")
	}
	return nil
}

// unpack splits the tensor bytes into c's tensors, refusing non-finite values.
func (c *Concept) unpack(b []byte) error {
	off := 0
	next := func(name string, n int) ([]float32, error) {
		v := make([]float32, n)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[off:]))
			off += 4
		}
		if i := firstNonFinite(v); i >= 0 {
			return nil, formatErr("%s[%d] is %v", name, i, v[i])
		}
		return v, nil
	}
	var err error
	if c.Embedding, err = next("embedding", c.Dim); err != nil {
		return err
	}
	if c.TargetInput, err = next("i*", c.Dim); err != nil {
		return err
	}
	c.Layers = make([]Layer, len(c.LayerInfo))
	for i, li := range c.LayerInfo {
		l := &c.Layers[i]
		l.Name = li.Name
		if l.OutK, err = next(li.Name+".o*_K", li.Out); err != nil {
			return err
		}
		if l.OutV, err = next(li.Name+".o*_V", li.Out); err != nil {
			return err
		}
	}
	return nil
}
