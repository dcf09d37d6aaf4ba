package ops

import (
	"fmt"
	"strings"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/tensor"
)

// TestShapeErrors feeds every operator mismatched shapes: each must return
// an error (not panic) that names the operator and both shapes.
func TestShapeErrors(t *testing.T) {
	e := testEngine()
	r := newRand(100)
	z := func(s ...int) tensor.Tensor { return frozen(r, s...) }
	var none tensor.Tensor
	cases := []struct {
		op    string
		call  func() (tensor.Tensor, error)
		names []string // substrings the message must hold
	}{
		{"linear", func() (tensor.Tensor, error) { return e.Linear(z(2, 5), z(3, 4), none) }, []string{"[2 5]", "[3 4]"}},
		{"linear", func() (tensor.Tensor, error) { return e.Linear(z(2, 4), z(3, 4, 1), none) }, []string{"[2 4]", "[3 4 1]"}},
		{"linear", func() (tensor.Tensor, error) { return e.Linear(z(2, 4), z(3, 4), z(4)) }, []string{"[3 4]", "[4]"}},
		{"linear", func() (tensor.Tensor, error) { return e.Linear(none, z(3, 4), none) }, []string{"[]", "[3 4]"}},
		{"group_norm", func() (tensor.Tensor, error) { return e.GroupNorm(z(2, 6, 3), 4, none, none, 1e-5) }, []string{"[2 6 3]", "groups=4"}},
		{"group_norm", func() (tensor.Tensor, error) { return e.GroupNorm(z(2, 6, 3), 3, z(5), none, 1e-5) }, []string{"[2 6 3]", "[5]"}},
		{"group_norm", func() (tensor.Tensor, error) { return e.GroupNorm(z(2, 6, 3), 3, none, z(6, 1), 1e-5) }, []string{"[2 6 3]", "[6 1]"}},
		{"group_norm", func() (tensor.Tensor, error) { return e.GroupNorm(z(6), 3, none, none, 1e-5) }, []string{"[6]", "[B, C, ...]"}},
		{"layer_norm", func() (tensor.Tensor, error) { return e.LayerNorm(z(3, 8), z(7), z(8), 1e-5) }, []string{"[3 8]", "[7]"}},
		{"geglu", func() (tensor.Tensor, error) { return e.GEGLU(z(2, 7)) }, []string{"[2 7]", "[..., 2D]"}},
		{"upsample2x", func() (tensor.Tensor, error) { return e.Upsample2x(z(2, 3, 4)) }, []string{"[2 3 4]", "[B, C, H, W]"}},
		{"add", func() (tensor.Tensor, error) { return e.Add(z(2, 3), z(3, 2)) }, []string{"[2 3]", "[3 2]"}},
		{"add", func() (tensor.Tensor, error) { return e.Add(z(2, 3), none) }, []string{"missing"}},
		{"add_channel", func() (tensor.Tensor, error) { return e.AddChannel(z(2, 3, 4, 4), z(2, 4)) }, []string{"[2 3 4 4]", "[2 4]"}},
		{"add_channel", func() (tensor.Tensor, error) { return e.AddChannel(z(2, 3, 4, 4), z(2, 3, 1)) }, []string{"[2 3 4 4]", "[2 3 1]"}},
		{"concat_channels", func() (tensor.Tensor, error) { return e.ConcatChannels(z(2, 3, 4, 4), z(2, 3, 4, 5)) }, []string{"[2 3 4 4]", "[2 3 4 5]"}},
		{"concat_channels", func() (tensor.Tensor, error) { return e.ConcatChannels(z(2, 3, 4), z(1, 3, 4)) }, []string{"[2 3 4]", "[1 3 4]"}},
		{"to_tokens", func() (tensor.Tensor, error) { return e.ToTokens(z(2, 3, 4)) }, []string{"[2 3 4]", "[B, C, H, W]"}},
		{"from_tokens", func() (tensor.Tensor, error) { return e.FromTokens(z(2, 12, 3), 3, 5) }, []string{"[2 12 3]", "h=3 w=5"}},
		{"embedding", func() (tensor.Tensor, error) { return e.Embedding(z(10), []int{1}) }, []string{"[10]", "[1]"}},
		{"scale", func() (tensor.Tensor, error) { return e.Scale(none, 2) }, []string{"missing"}},
		{"silu", func() (tensor.Tensor, error) { return e.SiLU(none) }, []string{"missing"}},
		{"gelu", func() (tensor.Tensor, error) { return e.GELU(none) }, []string{"missing"}},
		{"quick_gelu", func() (tensor.Tensor, error) { return e.QuickGELU(none) }, []string{"missing"}},
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%d_%s", i, c.op), func(t *testing.T) {
			_, err := c.call()
			if err == nil {
				t.Fatalf("no error")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "ops: "+c.op+":") {
				t.Errorf("error %q lacks the prefix %q", msg, "ops: "+c.op+":")
			}
			for _, n := range c.names {
				if !strings.Contains(msg, n) {
					t.Errorf("error %q does not mention %s", msg, n)
				}
			}
		})
	}
}

func TestConv2DAddShapeErrors(t *testing.T) {
	e := testEngine()
	r := newRand(9)
	x, w := frozen(r, 1, 3, 6, 6), frozen(r, 4, 3, 3, 3)
	_, err := e.Conv2DAdd(x, w, tensor.Tensor{}, frozen(r, 1, 4, 6, 6), Conv2DParams{})
	if err == nil || !strings.Contains(err.Error(), "[1 4 6 6]") || !strings.Contains(err.Error(), "[1 4 4 4]") {
		t.Errorf("wrong residual shape: error %v", err)
	}
	if _, err := e.Conv2D(x, w, tensor.Tensor{}, Conv2DParams{Layout: OHIW + 1}); err == nil {
		t.Error("unknown layout: no error")
	}
	// OHIW reads C from dimension 2
	if _, err := e.Conv2D(x, frozen(r, 4, 3, 2, 3), tensor.Tensor{}, Conv2DParams{Layout: OHIW}); err == nil {
		t.Error("OHIW weight [4 3 2 3] on 3 channels: no error")
	}
}
