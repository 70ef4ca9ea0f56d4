/* at-ref-norm.h: CPU references of the norm, activation, softmax and rope ops, on
 * contiguous host arrays, accumulating in double. */
#pragma once

#include <glib.h>

#include "ops/at-ops-norm.h"

G_BEGIN_DECLS

/* x, dst [ne0, n_rows]; weight and bias [ne0] or NULL. */
void at_ref_rms_norm (const float *x, gint64 ne0, gint64 n_rows, const float *weight,
                      float eps, float *dst);
void at_ref_layer_norm (const float *x, gint64 ne0, gint64 n_rows, const float *weight,
                        const float *bias, float eps, float *dst);
/* x, dst [w, h, c, n] (ne); weight and bias [c] or NULL. */
void at_ref_group_norm (const float *x, const gint64 ne[4], const float *weight,
                        const float *bias, int n_groups, float eps, gboolean fuse_silu,
                        float *dst);

/* n elements each. */
void at_ref_scale (const float *x, gint64 n, float scale, float bias, float *dst);
void at_ref_unary (AtUnaryOp op, const float *x, gint64 n, float *dst);
void at_ref_glu (AtGluOp op, const float *x, const float *gate, gint64 n, float *dst);

/* x, dst [ne]; mask [ne0, mask_ne[1], mask_ne[2], mask_ne[3]] (dimensions 2 and 3 are
 * 1 or x's) or NULL. */
void at_ref_soft_max (const float *x, const gint64 ne[4], const float *mask,
                      const gint64 mask_ne[4], float scale, gboolean causal,
                      gint64 causal_offset, float *dst);

/* x, dst [head_dim, n_heads, n_tokens] (ne); positions [n_tokens]. */
void at_ref_rope (const float *x, const gint64 ne[3], const gint32 *positions,
                  const AtRopeParams *params, float *dst);

G_END_DECLS
