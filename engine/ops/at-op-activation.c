#include "ops/at-ops-norm-private.h"

#include <string.h>

#define WORKGROUP_SIZE 256

static gboolean
check_f32_same_shape (AtBatch *batch, const AtTensor *x, const AtTensor *dst,
                      const char *op)
{
  return at_op_check_type (batch, x, AT_TYPE_F32, op, "x") &&
         at_op_check_type (batch, dst, AT_TYPE_F32, op, "dst") &&
         at_op_check_same_shape (batch, dst, x, op, "dst", "x");
}

static void
unary (AtBatch *batch, const char *shader, const char *op, const AtTensor *x,
       const AtTensor *dst, float scale, float bias)
{
  struct {
    guint32 ne[4];
    guint32 x_first, d_first;
    guint32 x_s[4], d_s[4];
    float scale, bias;
  } push = { .scale = scale, .bias = bias };
  AtBinding bindings[2];
  const guint32 spec[] = { WORKGROUP_SIZE };

  if (!check_f32_same_shape (batch, x, dst, op))
    return;
  at_op_push_shape (x, dst, push.ne, push.x_s, push.d_s);
  bindings[0] = at_tensor_binding (batch, x, FALSE, 4, &push.x_first);
  bindings[1] = at_tensor_binding (batch, dst, TRUE, 4, &push.d_first);
  at_batch_dispatch_1d (batch, shader, spec, 1, bindings, 2, &push, sizeof push,
                        (at_tensor_n_elements (x) + WORKGROUP_SIZE - 1) / WORKGROUP_SIZE);
}

void
at_op_scale (AtBatch *batch, const AtTensor *x, const AtTensor *dst, float scale,
             float bias)
{
  unary (batch, "unary_scale", "scale", x, dst, scale, bias);
}

void
at_op_unary (AtBatch *batch, AtUnaryOp op, const AtTensor *x, const AtTensor *dst)
{
  static const char *const shaders[] = {
    [AT_UNARY_SILU] = "unary_silu",
    [AT_UNARY_GELU] = "unary_gelu",
    [AT_UNARY_GELU_ERF] = "unary_gelu_erf",
    [AT_UNARY_GELU_QUICK] = "unary_gelu_quick",
    [AT_UNARY_RELU] = "unary_relu",
    [AT_UNARY_TANH] = "unary_tanh",
  };

  if (!at_op_check (batch, (guint) op < G_N_ELEMENTS (shaders), "unary: unknown op %d", op))
    return;
  unary (batch, shaders[op], shaders[op] + strlen ("unary_"), x, dst, 1, 0);
}

void
at_op_glu (AtBatch *batch, AtGluOp op, const AtTensor *x, const AtTensor *gate,
           const AtTensor *dst)
{
  static const char *const shaders[] = {
    [AT_GLU_SWIGLU] = "glu_swiglu",
    [AT_GLU_GEGLU] = "glu_geglu",
  };
  struct {
    guint32 ne[4];
    guint32 x_first, g_first, d_first;
    guint32 x_s[4], g_s[4], d_s[4];
  } push;
  AtBinding bindings[3];
  const guint32 spec[] = { WORKGROUP_SIZE };
  AtTensor value = *x;
  AtTensor split_gate;

  if (!at_op_check (batch, (guint) op < G_N_ELEMENTS (shaders), "glu: unknown op %d", op) ||
      !at_op_check_type (batch, x, AT_TYPE_F32, "glu", "x"))
    return;
  if (gate == NULL)
    {
      /* x's rows are [value | gate]: two views of half the row each. */
      if (!at_op_check (batch, x->ne[0] % 2 == 0,
                        "glu: x's rows (%" G_GINT64_FORMAT ") do not split into value and "
                        "gate halves", x->ne[0]))
        return;
      value.ne[0] = x->ne[0] / 2;
      split_gate = value;
      split_gate.offset += (gsize) value.ne[0] * x->nb[0];
      gate = &split_gate;
    }
  if (!at_op_check_type (batch, gate, AT_TYPE_F32, "glu", "gate") ||
      !check_f32_same_shape (batch, &value, dst, "glu") ||
      !at_op_check_same_shape (batch, gate, dst, "glu", "gate", "dst"))
    return;

  at_op_push_shape (&value, dst, push.ne, push.x_s, push.d_s);
  at_op_element_strides (gate, 4, push.g_s);
  bindings[0] = at_tensor_binding (batch, &value, FALSE, 4, &push.x_first);
  bindings[1] = at_tensor_binding (batch, gate, FALSE, 4, &push.g_first);
  bindings[2] = at_tensor_binding (batch, dst, TRUE, 4, &push.d_first);
  at_batch_dispatch_1d (batch, shaders[op], spec, 1, bindings, 3, &push, sizeof push,
                        (at_tensor_n_elements (dst) + WORKGROUP_SIZE - 1) / WORKGROUP_SIZE);
}
