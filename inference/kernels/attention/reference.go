package attention

import "math"

// Reference is the plain float64 attention of the package doc, holding
// each head's full score matrix: the yardstick for tests, far too slow and
// memory-hungry for models. It returns out [B, Tq, H*Dv] and the per-row
// log-sum-exp [B, H, Tq].
func Reference(p Problem, q, k, v []float32) (out, lse []float64) {
	H, Dh, Dv := p.Heads, p.Dh, p.Dv
	out = make([]float64, p.B*p.Tq*H*Dv)
	lse = make([]float64, p.B*H*p.Tq)
	s := make([]float64, p.Tk)
	for b := range p.B {
		for h := range H {
			for i := range p.Tq {
				qi := q[headRow(b, i, h, p.Tq, H, Dh):][:Dh]
				m := math.Inf(-1)
				for j := range p.Tk {
					s[j] = math.Inf(-1)
					if p.Causal && j > i {
						continue
					}
					kj := k[headRow(b, j, h, p.Tk, H, Dh):][:Dh]
					var dot float64
					for c := range Dh {
						dot += float64(qi[c]) * float64(kj[c])
					}
					s[j] = float64(p.Scale) * dot
					m = math.Max(m, s[j])
				}
				var sum float64
				for j := range p.Tk {
					s[j] = math.Exp(s[j] - m)
					sum += s[j]
				}
				o := out[headRow(b, i, h, p.Tq, H, Dv):][:Dv]
				for j := range p.Tk {
					vj := v[headRow(b, j, h, p.Tk, H, Dv):][:Dv]
					for c := range Dv {
						o[c] += s[j] / sum * float64(vj[c])
					}
				}
				lse[(b*H+h)*p.Tq+i] = m + math.Log(sum)
			}
		}
	}
	return out, lse
}
