/* at-ref-attention.h: CPU reference of the attention ops (see at-ops-attention.h). */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* The shape of one attention call; all arrays are contiguous. */
typedef struct {
  gint64 head_dim, n_q, n_kv, n_head, n_head_kv;
  double scale;
  gboolean causal;
  gint64 causal_offset;
} AtRefAttnShape;

/* q [head_dim, n_q, n_head], k and v [head_dim, n_kv, n_head_kv], mask NULL or
 * [n_kv, n_q], dst [head_dim, n_head, n_q]. A query whose keys are all masked gets
 * zeros. */
void at_ref_flash_attn (const AtRefAttnShape *shape, const float *q, const float *k,
                        const float *v, const float *mask, float *dst);

G_END_DECLS
