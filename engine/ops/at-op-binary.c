#include "ops/at-ops-elementwise.h"

#define WORKGROUP_SIZE 256

static void
binary (AtBatch *batch, const char *shader, const char *name, const AtTensor *a,
        const AtTensor *b, const AtTensor *dst)
{
  struct {
    guint32 ne[4], b_ne[4];
    guint32 a_first, b_first, d_first;
    guint32 a_s[4], b_s[4], d_s[4];
  } push;
  AtBinding bindings[3];
  const guint32 spec[] = { WORKGROUP_SIZE };

  if (!at_op_check (batch, a->type == AT_TYPE_F32 && b->type == AT_TYPE_F32 &&
                    dst->type == AT_TYPE_F32, "%s: only F32 tensors are supported", name))
    return;
  for (int d = 0; d < 4; d++)
    if (!at_op_check (batch, b->ne[d] > 0 && a->ne[d] % b->ne[d] == 0 &&
                      (b->ne[d] == a->ne[d] || b->ne[d] == 1) && dst->ne[d] == a->ne[d],
                      "%s: shapes do not broadcast (dimension %d: %" G_GINT64_FORMAT
                      ", %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ")", name, d, a->ne[d],
                      b->ne[d], dst->ne[d]))
      return;

  bindings[0] = at_tensor_binding (batch, a, FALSE, 4, &push.a_first);
  bindings[1] = at_tensor_binding (batch, b, FALSE, 4, &push.b_first);
  bindings[2] = at_tensor_binding (batch, dst, TRUE, 4, &push.d_first);
  for (int d = 0; d < 4; d++)
    {
      push.ne[d] = (guint32) a->ne[d];
      push.b_ne[d] = (guint32) b->ne[d];
      push.a_s[d] = (guint32) (a->nb[d] / 4);
      push.b_s[d] = (guint32) (b->nb[d] / 4);
      push.d_s[d] = (guint32) (dst->nb[d] / 4);
    }
  at_batch_dispatch_1d (batch, shader, spec, 1, bindings, 3, &push, sizeof push,
                        (at_tensor_n_elements (a) + WORKGROUP_SIZE - 1) / WORKGROUP_SIZE);
}

void
at_op_add (AtBatch *batch, const AtTensor *a, const AtTensor *b, const AtTensor *dst)
{
  binary (batch, "binary_add", "add", a, b, dst);
}

void
at_op_mul (AtBatch *batch, const AtTensor *a, const AtTensor *b, const AtTensor *dst)
{
  binary (batch, "binary_mul", "mul", a, b, dst);
}
