package x86

import (
	"os"
	"runtime"
	"strings"
	"testing"
)

// On Linux the kernel's own reading of the flags is in /proc/cpuinfo: ours
// must agree with it.
func TestAgreesWithProcCPUInfo(t *testing.T) {
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skip("needs /proc/cpuinfo on linux/amd64")
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		t.Skipf("no /proc/cpuinfo: %v", err)
	}
	var flags map[string]bool
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "flags" {
			flags = map[string]bool{}
			for _, f := range strings.Fields(v) {
				flags[f] = true
			}
			break
		}
	}
	if flags == nil {
		t.Skip("no flags line in /proc/cpuinfo")
	}
	if want := flags["avx2"] && flags["fma"]; HasAVX2FMA() != want {
		t.Errorf("HasAVX2FMA = %v, /proc/cpuinfo says %v", HasAVX2FMA(), want)
	}
	if want := flags["avx512f"] && flags["avx2"] && flags["fma"]; HasAVX512() != want {
		t.Errorf("HasAVX512 = %v, /proc/cpuinfo says %v", HasAVX512(), want)
	}
	if want := flags["f16c"] && flags["avx"]; HasF16C() != want {
		t.Errorf("HasF16C = %v, /proc/cpuinfo says %v", HasF16C(), want)
	}
}
