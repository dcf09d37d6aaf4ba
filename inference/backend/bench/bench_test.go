package bench

import (
	"math"
	"testing"

	"github.com/perfusion-studio/perfusion/inference/backend/cpu"
)

func TestGemmGFLOPs(t *testing.T) {
	g := GemmGFLOPs(cpu.New(), 33, 17, 65)
	if !(g > 0) || math.IsInf(g, 0) {
		t.Errorf("GemmGFLOPs = %v, want a positive finite rate", g)
	}
}
