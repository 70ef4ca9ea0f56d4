/* at-ops-norm.h: normalizations, activations, softmax and rotary embeddings, on F32
 * activations. Tensors may be strided views unless a function says otherwise; dst
 * always has x's shape. */
#pragma once

#include "ops/at-tensor.h"

G_BEGIN_DECLS

/* y = x / sqrt(mean(x^2) + eps) * weight, over each row (ne[0] elements). weight is
 * F32 [ne0] or NULL; applying it here saves the separate multiply. */
void at_op_rms_norm (AtBatch *batch, const AtTensor *x, const AtTensor *weight,
                     const AtTensor *dst, float eps);

/* y = (x - mean) / sqrt(var + eps) * weight + bias, over each row; weight and bias are
 * F32 [ne0] or NULL. */
void at_op_layer_norm (AtBatch *batch, const AtTensor *x, const AtTensor *weight,
                       const AtTensor *bias, const AtTensor *dst, float eps);

/* Layer norm over each group of c / n_groups channels (times w × h) of each sample of
 * x [w, h, c, n], then per-channel weight and bias (F32 [c] or NULL), then SiLU when
 * fuse_silu (Stable Diffusion's resblocks). Dimensions 0..2 of x and dst must be
 * contiguous. */
void at_op_group_norm (AtBatch *batch, const AtTensor *x, const AtTensor *weight,
                       const AtTensor *bias, const AtTensor *dst, int n_groups, float eps,
                       gboolean fuse_silu);

/* y = x * scale + bias; dst may alias x. */
void at_op_scale (AtBatch *batch, const AtTensor *x, const AtTensor *dst, float scale,
                  float bias);

typedef enum {
  AT_UNARY_SILU,       /* x * sigmoid(x) */
  AT_UNARY_GELU,       /* tanh approximation */
  AT_UNARY_GELU_ERF,   /* exact: 0.5 x (1 + erf(x / sqrt(2))) */
  AT_UNARY_GELU_QUICK, /* x * sigmoid(1.702 x) */
  AT_UNARY_RELU,       /* max(x, 0) */
  AT_UNARY_TANH,
} AtUnaryOp;

/* y = op(x); dst may alias x. */
void at_op_unary (AtBatch *batch, AtUnaryOp op, const AtTensor *x, const AtTensor *dst);

typedef enum {
  AT_GLU_SWIGLU, /* silu(gate) * x: LLaMA's FFN, silu(ffn_gate) * ffn_up */
  AT_GLU_GEGLU,  /* gelu(gate) * x with the exact erf GELU, as Stable Diffusion uses */
} AtGluOp;

/* dst = act(gate) * x. gate has dst's shape; or gate is NULL and x's rows are twice
 * as long, their first half the value and their second half the gate (SD's GEGLU
 * projection output). */
void at_op_glu (AtBatch *batch, AtGluOp op, const AtTensor *x, const AtTensor *gate,
                const AtTensor *dst);

/* y = softmax(x * scale + mask) over each row. mask is F32 or F16 [ne0, >= ne1, 1 or
 * ne2, 1 or ne3] (rows past ne1 are ignored: KQ masks are often padded), or NULL.
 * With causal, column j of row i (i along dimension 1) is masked when
 * j > i + causal_offset (causal_offset = n_past in LLM attention). A fully masked row
 * gives zeros. */
void at_op_soft_max (AtBatch *batch, const AtTensor *x, const AtTensor *mask,
                     const AtTensor *dst, float scale, gboolean causal,
                     gint64 causal_offset);

typedef struct {
  int n_dims;       /* rotated dimensions, even, <= head_dim (partial rotary) */
  gboolean neox;    /* NEOX layout pairs (i, i + n_dims/2); normal pairs (2i, 2i + 1) */
  float freq_base;  /* theta_i = pos * freq_scale * freq_base^(-2i / n_dims) */
  float freq_scale; /* linear position scaling */
} AtRopeParams;

/* Rotary position embedding with ggml's semantics (no YaRN). x is F32 [head_dim,
 * n_heads, n_tokens, 1], positions I32 [n_tokens]; dst is F32 or F16 (writing the
 * rotated keys straight into an F16 KV cache). Dimensions past n_dims are copied. */
void at_op_rope (AtBatch *batch, const AtTensor *x, const AtTensor *positions,
                 const AtTensor *dst, const AtRopeParams *params);

G_END_DECLS
