//go:build !linux

package safetensors

// adviseWillNeed does nothing here: the system reads ahead on its own.
func adviseWillNeed([]byte) {}
