/* at-ops-attention.h: fused attention over a KV cache. */
#pragma once

#include "ops/at-tensor.h"

G_BEGIN_DECLS

typedef struct {
  float scale;          /* applied to Q·K, usually 1 / sqrt (head_dim) */
  gboolean causal;      /* key j is masked for query i when j > i + causal_offset */
  gint64 causal_offset; /* tokens cached before this batch of queries (n_past), >= 0 */
} AtFlashAttnParams;

/* dst = softmax (Q·Kᵀ·scale + mask) · V per head, without materialising the scores.
 *
 *   q     F32 [head_dim, n_q, n_head, 1]
 *   k, v  F16 or F32 (both the same) [head_dim, n_kv, n_head_kv, 1]; rows and heads may
 *         have any strides (views of a bigger KV cache)
 *   mask  NULL, or F32 or F16 [n_kv, n_q, 1, 1], added to the scores of every head
 *   dst   F32 [head_dim, n_head, n_q, 1]: the heads of one query side by side, so that
 *         it reshapes to [head_dim * n_head, n_q] for the output projection
 *
 * head_dim is a multiple of 8 up to 256; n_head is a multiple of n_head_kv (grouped-query
 * attention: head h reads KV head h / (n_head / n_head_kv)). A query whose keys are all
 * masked gets zeros. */
void at_op_flash_attn (AtBatch *batch, const AtTensor *q, const AtTensor *k,
                       const AtTensor *v, const AtTensor *mask, const AtTensor *dst,
                       const AtFlashAttnParams *params);

G_END_DECLS
