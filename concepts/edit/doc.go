// Package edit is Perfusion's gated rank-one edit of the cross-attention
// keys and values (Tewel, Gal, Chechik, Atzmon, "Key-Locked Rank One Editing
// for Text-to-Image Personalization", SIGGRAPH 2023, arXiv 2305.01644, Eq. 3
// and Appendix B), as ../shared/PERFUSION.md §3.2–§3.6 and §7 specify it.
//
// For a concept with target input i* (a text encoding), per-layer targets
// o*_K and o*_V, bias β and temperature τ, every text encoding e_n of a
// prompt gives, once per prompt (the folded form, spec §3.2):
//
//	u = C⁻¹ i*,  E = i*·u,  s_n = e_n·u / E,  g_n = σ((s_n − β)/τ),  e′_n = e_n − s_n i*
//
// and every cross-attention layer then projects
//
//	K = W_K e′ + g·o*_K,   V = W_V e′ + g·o*_V.
//
// Several concepts (spec §3.5) each add their own gated target; e′ removes
// either the sum of their parts along each i* (Sum, the approximate form) or
// the C⁻¹-orthogonal projection onto span{i*_c} (Exact, built by
// Gram–Schmidt in the C⁻¹ inner product). With global key locking (§3.6)
// the keys come from the encoding of the prompt with every concept word
// replaced by its superclass word.
//
// The operators (Fold, Gate, Project) are spago autograd functions with
// their backward passes: gradients reach the context e (hence, through the
// text encoder, the concept's word embedding) and the targets that require
// them (o*_V in training); i*, C⁻¹ and the frozen weights are constants.
// C⁻¹ is only used through the Metric interface.
//
// Legend: B batch rows (with classifier-free guidance the unconditional
// rows first), T context tokens, D text width, O a projection's output
// width, M concepts.
package edit
