#include "ops/at-ops-norm-private.h"

#include <math.h>

#define WORKGROUP_SIZE 256

void
at_op_rope (AtBatch *batch, const AtTensor *x, const AtTensor *positions,
            const AtTensor *dst, const AtRopeParams *params)
{
  const char *op = "rope";
  struct {
    guint32 ne[3];
    guint32 x_first, p_first, d_first;
    guint32 x_s[3], d_s[3];
    guint32 n_dims;
    float log2_theta_scale;
    float freq_scale;
  } push;
  guint32 x_s[4], d_s[4];
  AtBinding bindings[3];
  const guint32 spec[] = { WORKGROUP_SIZE };
  gboolean dst_f16 = dst->type == AT_TYPE_F16;
  guint dst_size = dst_f16 ? 2 : 4;
  static const char *const shaders[2][2] = {
    { "rope", "rope_f16" },
    { "rope_neox", "rope_neox_f16" },
  };

  if (!at_op_check_type (batch, x, AT_TYPE_F32, op, "x") ||
      !at_op_check (batch, dst->type == AT_TYPE_F32 || dst_f16,
                    "%s: dst must be f32 or f16, not %s", op, at_type_name (dst->type)) ||
      !at_op_check_same_shape (batch, dst, x, op, "dst", "x") ||
      !at_op_check (batch, x->ne[3] == 1, "%s: x must be [head_dim, n_heads, n_tokens, 1]",
                    op) ||
      !at_op_check_type (batch, positions, AT_TYPE_I32, op, "positions") ||
      !at_op_check (batch, at_tensor_n_elements (positions) == x->ne[2] &&
                    positions->nb[0] == 4,
                    "%s: positions must be %" G_GINT64_FORMAT " contiguous elements, one "
                    "per token", op, x->ne[2]) ||
      !at_op_check (batch, params->n_dims > 0 && params->n_dims % 2 == 0 &&
                    params->n_dims <= x->ne[0] && x->ne[0] % 2 == 0,
                    "%s: %d rotated dimensions do not fit head_dim %" G_GINT64_FORMAT
                    " (both must be even)", op, params->n_dims, x->ne[0]) ||
      !at_op_check (batch, params->freq_base > 0, "%s: freq_base must be positive", op))
    return;

  at_op_element_strides (x, 4, x_s);
  at_op_element_strides (dst, dst_size, d_s);
  for (int d = 0; d < 3; d++)
    {
      push.ne[d] = (guint32) x->ne[d];
      push.x_s[d] = x_s[d];
      push.d_s[d] = d_s[d];
    }
  push.n_dims = (guint32) params->n_dims;
  /* theta_scale = freq_base^(-2 / n_dims), as a base-2 exponent per pair index. */
  push.log2_theta_scale = (float) (-2.0 / params->n_dims * log2 (params->freq_base));
  push.freq_scale = params->freq_scale;
  bindings[0] = at_tensor_binding (batch, x, FALSE, 4, &push.x_first);
  bindings[1] = at_tensor_binding (batch, positions, FALSE, 4, &push.p_first);
  bindings[2] = at_tensor_binding (batch, dst, TRUE, dst_size, &push.d_first);
  at_batch_dispatch_1d (batch, shaders[params->neox != 0][dst_f16], spec, 1, bindings, 3,
                        &push, sizeof push,
                        (at_tensor_n_elements (x) / 2 + WORKGROUP_SIZE - 1) / WORKGROUP_SIZE);
}
