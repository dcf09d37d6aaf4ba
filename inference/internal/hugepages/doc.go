// Package hugepages asks the kernel to back large, freshly allocated
// activation buffers with transparent huge pages: on a virtual machine a
// first touch of each 4 KiB page costs microseconds of system time, which
// adds up to seconds for the gigabytes of activations a 512x512 image or
// a training pass writes.
package hugepages

// Min is the smallest buffer (bytes) worth advising: a few 2 MiB pages.
const Min = 8 << 20
