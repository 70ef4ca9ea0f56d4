#include "ops/at-ops-norm-private.h"

void
at_op_soft_max (AtBatch *batch, const AtTensor *x, const AtTensor *mask,
                const AtTensor *dst, float scale, gboolean causal, gint64 causal_offset)
{
  const char *op = "soft_max";
  struct {
    guint32 ne[4];
    guint32 x_first, m_first, d_first;
    guint32 x_s[4], m_s[4], d_s[4];
    guint32 has_mask, causal;
    gint32 causal_offset;
    float scale;
  } push = {
    .has_mask = mask != NULL,
    .causal = causal,
    .causal_offset = (gint32) CLAMP (causal_offset, -G_MAXINT32, G_MAXINT32),
    .scale = scale,
  };
  AtBinding bindings[3];
  guint32 spec[1];
  gboolean mask_f16 = mask && mask->type == AT_TYPE_F16;

  if (!at_op_check_type (batch, x, AT_TYPE_F32, op, "x") ||
      !at_op_check_type (batch, dst, AT_TYPE_F32, op, "dst") ||
      !at_op_check_same_shape (batch, dst, x, op, "dst", "x"))
    return;
  if (mask != NULL &&
      !(at_op_check (batch, mask->type == AT_TYPE_F32 || mask->type == AT_TYPE_F16,
                     "%s: mask must be f32 or f16, not %s", op, at_type_name (mask->type)) &&
        at_op_check (batch, mask->ne[0] == x->ne[0] && mask->ne[1] >= x->ne[1] &&
                     (mask->ne[2] == 1 || mask->ne[2] == x->ne[2]) &&
                     (mask->ne[3] == 1 || mask->ne[3] == x->ne[3]),
                     "%s: mask [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %"
                     G_GINT64_FORMAT ", %" G_GINT64_FORMAT "] does not cover x's rows", op,
                     mask->ne[0], mask->ne[1], mask->ne[2], mask->ne[3])))
    return;

  at_op_push_shape (x, dst, push.ne, push.x_s, push.d_s);
  bindings[0] = at_tensor_binding (batch, x, FALSE, 4, &push.x_first);
  if (mask != NULL)
    {
      guint elem_size = mask_f16 ? 2 : 4;
      at_op_element_strides (mask, elem_size, push.m_s);
      /* Broadcast dimensions stay on the same mask rows. */
      for (int d = 2; d < 4; d++)
        if (mask->ne[d] == 1)
          push.m_s[d] = 0;
      bindings[1] = at_tensor_binding (batch, mask, FALSE, elem_size, &push.m_first);
    }
  else
    {
      /* The shader does not read the mask then; any readable binding will do. */
      bindings[1] = at_tensor_binding (batch, x, FALSE, 4, &push.m_first);
    }
  bindings[2] = at_tensor_binding (batch, dst, TRUE, 4, &push.d_first);
  spec[0] = at_op_row_workgroup_size (batch, x->ne[0]);
  at_batch_dispatch_1d (batch,
                        mask_f16 ? at_op_pick_reduce_variant (batch, "soft_max_f16",
                                                              "soft_max_f16_sg")
                                 : at_op_pick_reduce_variant (batch, "soft_max", "soft_max_sg"),
                        spec, 1, bindings, 3, &push, sizeof push, at_tensor_n_rows (x));
}
