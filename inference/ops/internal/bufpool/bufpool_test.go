package bufpool

import "testing"

func TestClassOf(t *testing.T) {
	prev := -1
	for n := MinSize + 1; n < 1<<22; n += n/7 + 1 {
		idx, size := classOf(n)
		if idx < 0 {
			t.Fatalf("classOf(%d) not pooled", n)
		}
		if size < n || 4*(size-n) > n { // fits n, wastes at most a quarter
			t.Fatalf("classOf(%d) = size %d", n, size)
		}
		if idx < prev {
			t.Fatalf("classOf(%d) = %d, not monotone (prev %d)", n, idx, prev)
		}
		prev = idx
		if i2, s2 := classOf(size); i2 != idx || s2 != size {
			t.Fatalf("class of capacity %d is (%d, %d), want (%d, %d)", size, i2, s2, idx, size)
		}
	}
	if idx, _ := classOf(MinSize); idx != -1 {
		t.Fatalf("MinSize must not be pooled")
	}
}

func TestGetPut(t *testing.T) {
	var p Pool
	b := p.Get(5000)
	if len(b) != 5000 || cap(b) < 5000 {
		t.Fatalf("Get(5000): len %d cap %d", len(b), cap(b))
	}
	for i := range b {
		b[i] = 1
	}
	p.Put(b)
	z := p.GetZero(4900)
	for i, v := range z {
		if v != 0 {
			t.Fatalf("GetZero: element %d = %v", i, v)
		}
	}
	p.Put(make([]float32, 3000)) // foreign capacity: dropped, must not panic
	var nilPool *Pool
	if got := nilPool.Get(10); len(got) != 10 {
		t.Fatalf("nil pool Get: len %d", len(got))
	}
	nilPool.Put(b)
}
