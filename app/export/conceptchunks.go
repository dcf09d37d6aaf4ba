package export

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// ConceptChunk is the PNG chunk type that carries one concept file,
// zlib-compressed. It is ancillary (lower-case first letter: readers that
// do not know it skip it), private (lower-case second) and safe to copy.
const ConceptChunk = "pfCo"

// Limits on embedded concepts, so that a hostile PNG cannot exhaust
// memory: a chunk is checked against MaxConceptChunkBytes before it is
// decompressed, and decompression stops past maxSize bytes.
const (
	MaxEmbeddedConcepts  = 32
	MaxConceptChunkBytes = 64 << 20
)

// ErrBadConceptChunk reports an embedded concept that cannot be read (bad
// checksum, bad compression, too large).
var ErrBadConceptChunk = errors.New("export: an embedded concept in this PNG is damaged")

// AddConcepts returns the PNG data with one ConceptChunk per file added
// right before its IEND chunk.
func AddConcepts(data []byte, files [][]byte) ([]byte, error) {
	if len(files) == 0 {
		return data, nil
	}
	if len(files) > MaxEmbeddedConcepts {
		return nil, fmt.Errorf("export: %d concepts, at most %d fit in one PNG", len(files), MaxEmbeddedConcepts)
	}
	const iendLen = 12 // length(4) "IEND" crc(4), no data
	if len(data) < 8+iendLen || string(data[len(data)-8:len(data)-4]) != "IEND" {
		return nil, fmt.Errorf("export: unexpected png layout: no IEND at the end")
	}
	var chunks []byte
	for i, f := range files {
		var z bytes.Buffer
		w, _ := zlib.NewWriterLevel(&z, zlib.BestCompression)
		if _, err := w.Write(f); err != nil {
			return nil, fmt.Errorf("export: compress concept %d: %w", i+1, err)
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("export: compress concept %d: %w", i+1, err)
		}
		if z.Len() > MaxConceptChunkBytes {
			return nil, fmt.Errorf("export: concept %d is %d bytes compressed, at most %d", i+1, z.Len(), MaxConceptChunkBytes)
		}
		chunks = append(chunks, makeChunk(ConceptChunk, z.Bytes())...)
	}
	end := len(data) - iendLen
	out := make([]byte, 0, len(data)+len(chunks))
	out = append(out, data[:end]...)
	out = append(out, chunks...)
	return append(out, data[end:]...), nil
}

// Concepts returns the concept files the PNG data carries (none for a PNG
// without), each decompressed to at most maxSize bytes. A damaged chunk
// (checksum, compression, size) gives an error wrapping ErrBadConceptChunk.
func Concepts(data []byte, maxSize int64) ([][]byte, error) {
	if len(data) < 8 || string(data[1:4]) != "PNG" {
		return nil, fmt.Errorf("export: not a png")
	}
	var out [][]byte
	for p := 8; p+12 <= len(data); {
		n := int64(binary.BigEndian.Uint32(data[p:]))
		if int64(p)+12+n > int64(len(data)) {
			return nil, fmt.Errorf("export: truncated png chunk")
		}
		typ := string(data[p+4 : p+8])
		if typ == ConceptChunk {
			if len(out) == MaxEmbeddedConcepts {
				return nil, fmt.Errorf("%w: more than %d concepts", ErrBadConceptChunk, MaxEmbeddedConcepts)
			}
			if n > MaxConceptChunkBytes {
				return nil, fmt.Errorf("%w: chunk of %d bytes, at most %d", ErrBadConceptChunk, n, MaxConceptChunkBytes)
			}
			body := data[p+8 : p+8+int(n)]
			if crc32.ChecksumIEEE(data[p+4:p+8+int(n)]) != binary.BigEndian.Uint32(data[p+8+int(n):]) {
				return nil, fmt.Errorf("%w: checksum mismatch (concept %d)", ErrBadConceptChunk, len(out)+1)
			}
			f, err := inflate(body, maxSize)
			if err != nil {
				return nil, fmt.Errorf("%w: concept %d: %v", ErrBadConceptChunk, len(out)+1, err)
			}
			out = append(out, f)
		}
		p += 12 + int(n)
	}
	return out, nil
}

// inflate decompresses zlib data, refusing more than maxSize bytes.
func inflate(z []byte, maxSize int64) ([]byte, error) {
	r, err := zlib.NewReader(bytes.NewReader(z))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, err
	}
	if n > maxSize {
		return nil, fmt.Errorf("more than %d bytes decompressed", maxSize)
	}
	return buf.Bytes(), nil
}
