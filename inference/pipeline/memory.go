package pipeline

// Memory accounting, for the owner of the process to bound its memory.
//
// Go's collector lets garbage grow to the size of the live heap (GOGC=100)
// before it collects. Once a model is loaded the live heap is mostly
// weights (2.25 GB for SD1.5 in float16), and a generation allocates a fresh
// output for every operator, so without a limit the process peaks at three
// times the weights or more (6.8 to 8.5 GB of resident memory measured for
// a 512x512 image, more with more threads). A Go memory limit
// (runtime/debug.SetMemoryLimit) of the weights plus the activations a
// request keeps alive at once makes the collector run before that (3.4 GB
// measured). The collections themselves are cheap (the weights hold no
// pointers: about 0.1% of the CPU time); the cost is in reusing memory,
// which Go zeroes on each allocation, and in returning memory to the
// system: 1 to 6% of a generation's time, measured on 2 and 16 threads.
//
// Two things changed the picture since. Float16 weights of a mapped
// .safetensors file are page cache outside the Go heap (MappedBytes), so
// the Go limit leaves them out: counting them let the heap grow by their
// size on top of them (4.1 GB resident for a 512x512 image instead of
// 3.4). And the UNet recycles its activations through an arena
// (blocks.Arena) that stays allocated between steps: measured on SD1.5's
// CFG batch, about 0.15 GB at 256x256 and 0.8 GB at 512x512, about three
// times what unetActivations estimates, because idle buffers are kept per
// size; the budget allows arenaFactor times the estimate for it. Generate
// releases the arena before decoding.
//
// This package never sets the limit itself: it is process-wide state that
// belongs to the program (cmd/perfusion's commands, the desktop app), which
// knows what else it runs. MemoryBudget computes the figure.

// float32Bytes is the size of one activation value.
const float32Bytes = 4

// arenaFactor is how much more than unetActivations the UNet's activation
// arena holds between steps (see above), with some room.
const arenaFactor = 4

// memoryMargin covers what the estimate leaves out: the Go runtime's own
// structures, the text encoder's activations (a few MB), the latents and
// sampler state, the images, fragmentation, and collector headroom.
const memoryMargin = 256 << 20

// WeightBytes is the memory the three models' weights take as held: about
// 2.25 GB for SD1.5 with float16 layer weights, 4.3 GB in float32.
func (p *Pipeline) WeightBytes() int64 {
	return p.CLIP.WeightBytes() + p.UNet.WeightBytes() + p.VAE.WeightBytes()
}

// MappedBytes is the part of WeightBytes held as views of a mapped
// checkpoint file: resident as page cache, outside the Go heap.
func (p *Pipeline) MappedBytes() int64 {
	return p.CLIP.MappedBytes() + p.UNet.MappedBytes() + p.VAE.MappedBytes()
}

// MemoryBudget is a Go memory limit for generating batch images of width x
// height pixels with this pipeline (for debug.SetMemoryLimit): the weights
// on the Go heap (WeightBytes less MappedBytes), plus the activations (the
// larger of the UNet's arena, arenaFactor times its estimate, and the VAE
// decoder's peak), plus a fixed margin of 256 MiB. The process's resident
// memory stays near it plus MappedBytes; non-Go memory (a BLAS library's
// buffers, the program's code) comes on top.
func (p *Pipeline) MemoryBudget(width, height, batch int) int64 {
	batch = max(batch, 1)
	f := p.latentFactor()
	h, w := max(height/f, 1), max(width/f, 1)
	act := max(arenaFactor*p.unetActivations(2*batch, h, w), p.vaeActivations(height, width))
	return p.HeapWeightBytes() + act + memoryMargin
}

// keptGraphFactor is how much more than MemoryBudget a training pass
// needs when it keeps its UNet activations for backward (no
// recomputation), as a ratio: measured on SD1.5's shapes from a float16
// checkpoint at 256x256, batch 1 (budget 1.18 GB), a pass ran at full
// speed with a 1.5 GiB limit (3.6 GB resident with the mapped weights)
// and thrashed the collector at 1.1 GiB (1.7 times slower).
const keptGraphFactor = 1.4

// keptMaps is the least a training pass that keeps its UNet activations
// needs beyond MemoryBudget, counted in float32 feature maps of the
// UNet's first level (micro x ModelChannels x the latent's pixels): the
// kept graph grows with the image, while MemoryBudget's fixed parts
// (weights, margin, one float32 weight copy) do not, so keptGraphFactor
// alone falls short at larger sizes. Measured on SD1.5's shapes from a
// float16 checkpoint at 512x512, batch 1 (MemoryBudget 1.79 GB; one such
// map 5.2 MB): a pass took 13.5-16.4 s at keptGraphFactor's 2.50 GB, and
// 9.2-9.3 s at 3.0 and 3.5 GiB and 8.7 s with no limit; 290 maps give
// 3.3 GB.
const keptMaps = 290

// TrainingBudget is a Go memory limit for training a concept on micro
// images of size x size pixels per pass: MemoryBudget of generating them
// (which covers a pass that recomputes its activations, one UNet block's
// graph at a time, and the VAE encoding of the photos), or, when the pass
// keeps every activation, the larger of keptGraphFactor times that and
// that plus keptMaps first-level feature maps.
func (p *Pipeline) TrainingBudget(size, micro int, keepActivations bool) int64 {
	b := p.MemoryBudget(size, size, micro)
	if !keepActivations {
		return b
	}
	return max(int64(keptGraphFactor*float64(b)), b+keptMaps*p.firstMapBytes(size, micro))
}

// firstMapBytes is the size in float32 bytes of one feature map of the
// UNet's first level for micro images of size x size pixels.
func (p *Pipeline) firstMapBytes(size, micro int) int64 {
	side := int64(max(size/p.latentFactor(), 1))
	return int64(max(micro, 1)) * int64(p.UNet.Config.ModelChannels) * side * side * float32Bytes
}

// HeapWeightBytes is the part of WeightBytes on the Go heap (not mapped
// from the checkpoint file): what two budgets of the same pipeline count
// twice when they are added.
func (p *Pipeline) HeapWeightBytes() int64 { return p.WeightBytes() - p.MappedBytes() }

// ActivationBytes estimates the most memory that one Generate call of
// batch images of width x height pixels holds at once besides the weights:
// the larger of the UNet's and the VAE decoder's peak (they never run at
// the same time), from the model configs (see unetActivations and
// vaeActivations for the formulas). Sizes that are not valid requests are
// estimated all the same; batch < 1 counts as 1.
func (p *Pipeline) ActivationBytes(width, height, batch int) int64 {
	batch = max(batch, 1)
	f := p.latentFactor()
	h, w := max(height/f, 1), max(width/f, 1)
	return max(p.unetActivations(2*batch, h, w), p.vaeActivations(height, width))
}

// unetActivations estimates the UNet's peak for one forward pass of rows
// latents of h x w (rows = 2 x batch with classifier-free guidance), in
// float32 bytes. With C_i the width of level i (ModelChannels x
// ChannelMult[i]) and a_i = rows x C_i x (h/2^i) x (w/2^i) values (one
// feature map of level i):
//
//   - the skip connections held for the output blocks: level i keeps
//     NumResBlocks + 1 maps (the first level's input conv, or the previous
//     level's downsample, plus one per ResBlock);
//   - at the largest level with attention, a BasicTransformerBlock's
//     feed-forward holds the residual stream, its normalised copy, the
//     GEGLU projection (2 x 4 C wide) and the gated product (4 C): 14 a_i;
//     a level without attention peaks in a ResBlock of the output path:
//     the concatenated input (2 C_i), its normalised and activated copies
//     and the convolution's output: 7 a_i;
//   - the float32 copy of the largest float16 weight (the first output
//     ResBlock's conv at the deepest level: 2 C x C x 3 x 3), converted for
//     one operator call.
func (p *Pipeline) unetActivations(rows, h, w int) int64 {
	c := p.UNet.Config
	attn := map[int]bool{}
	for _, r := range c.AttentionResolutions {
		attn[r] = true
	}
	var skips, peak, widest int64
	for i, m := range c.ChannelMult {
		ch := int64(c.ModelChannels * m)
		a := int64(rows) * ch * int64(max(h>>i, 1)) * int64(max(w>>i, 1))
		skips += int64(c.NumResBlocks+1) * a
		work := 7 * a
		if attn[1<<i] {
			work = 14 * a
		}
		peak = max(peak, work)
		widest = max(widest, ch)
	}
	weight := 2 * widest * widest * 9
	return (skips + peak + weight) * float32Bytes
}

// vaeActivations estimates the VAE decoder's peak for one H x W image (the
// pipeline decodes the images of a batch one at a time), in float32 bytes.
// With C_0 and C_1 the widths of the two top levels (Ch x ChMult[0], [1]):
// the first ResBlock at full resolution holds its input (C_1 channels, the
// upsampled level below) and that input normalised and activated (C_1,
// idle in the decoder's arena once the first convolution has read it: no
// later map has its size), and then at most three maps of C_0 (the second
// normalisation, the shortcut, the output), so 2 C_1 + 3 C_0 maps of
// H x W; plus the float32 copy of the largest weight (a 3 x 3 conv of the
// widest level).
func (p *Pipeline) vaeActivations(height, width int) int64 {
	c := p.VAE.Config
	c0 := int64(c.Ch * c.ChMult[0])
	c1 := c0
	if len(c.ChMult) > 1 {
		c1 = int64(c.Ch * c.ChMult[1])
	}
	var widest int64
	for _, m := range c.ChMult {
		widest = max(widest, int64(c.Ch*m))
	}
	pixels := int64(height) * int64(width)
	return ((2*c1+3*c0)*pixels + 9*widest*widest) * float32Bytes
}
