package main

import "testing"

func TestReplicasFor(t *testing.T) {
	for _, c := range []struct{ cores, vae, unet, want int }{
		{2, 16, 32, 2},
		{1, 16, 32, 1},
		{3, 16, 32, 2}, // 3 splits neither batch
		{8, 16, 32, 8},
		{12, 16, 32, 8},
		{4, 6, 32, 2},
		{4, 15, 32, 1},
	} {
		if got := replicasFor(c.cores, c.vae, c.unet); got != c.want {
			t.Errorf("replicasFor(%d, %d, %d) = %d, want %d", c.cores, c.vae, c.unet, got, c.want)
		}
	}
}
