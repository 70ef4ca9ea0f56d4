#include "ops/at-ops-norm-private.h"

typedef struct {
  guint32 ne[4];
  guint32 x_first, w_first, b_first, d_first;
  guint32 x_s[4], d_s[4];
  guint32 has_weight, has_bias;
  guint32 channel_size, group_channels;
  guint32 fuse_silu;
  float eps;
} NormPush;

const char *
at_op_pick_reduce_variant (AtBatch *batch, const char *plain, const char *subgroup)
{
  /* The override lets tests (and users chasing a driver bug) run the shared-memory
   * reduction on devices that have subgroup arithmetic. */
  if (at_gpu_get_info (at_batch_get_gpu (batch))->subgroup_arithmetic &&
      g_getenv ("ATELIER_DISABLE_SUBGROUP_ARITHMETIC") == NULL)
    return subgroup;
  return plain;
}

guint32
at_op_row_workgroup_size (AtBatch *batch, gint64 row_length)
{
  guint32 limit = at_gpu_get_info (at_batch_get_gpu (batch))->max_workgroup_invocations;
  guint32 size = 64;

  /* Enough invocations that each has a few elements of the row, at most 512. */
  while (size < 512 && (gint64) size * 4 < row_length && size * 2 <= limit)
    size *= 2;
  return size;
}

void
at_op_element_strides (const AtTensor *t, guint elem_size, guint32 strides[4])
{
  for (int d = 0; d < 4; d++)
    strides[d] = (guint32) (t->nb[d] / elem_size);
}

void
at_op_push_shape (const AtTensor *x, const AtTensor *dst, guint32 ne[4],
                  guint32 x_strides[4], guint32 dst_strides[4])
{
  for (int d = 0; d < 4; d++)
    ne[d] = (guint32) x->ne[d];
  at_op_element_strides (x, 4, x_strides);
  at_op_element_strides (dst, 4, dst_strides);
}

gboolean
at_op_check_type (AtBatch *batch, const AtTensor *t, AtType type, const char *op,
                  const char *role)
{
  return at_op_check (batch, t->type == type, "%s: %s must be %s, not %s", op, role,
                      at_type_name (type), at_type_name (t->type));
}

/* A weight or bias: NULL, or F32 holding n contiguous elements. */
static gboolean
check_affine (AtBatch *batch, const AtTensor *t, gint64 n, const char *op,
              const char *role)
{
  if (t == NULL)
    return TRUE;
  return at_op_check_type (batch, t, AT_TYPE_F32, op, role) &&
         at_op_check (batch, at_tensor_n_elements (t) == n && at_tensor_is_contiguous (t),
                      "%s: %s must be %" G_GINT64_FORMAT " contiguous elements", op, role, n);
}

gboolean
at_op_check_same_shape (AtBatch *batch, const AtTensor *a, const AtTensor *b,
                        const char *op, const char *a_role, const char *b_role)
{
  g_autofree char *a_text = NULL;
  g_autofree char *b_text = NULL;

  if (at_tensor_same_shape (a, b))
    return TRUE;
  a_text = at_tensor_describe (a);
  b_text = at_tensor_describe (b);
  return at_op_check (batch, FALSE, "%s: %s %s differs from %s %s", op, a_role, a_text,
                      b_role, b_text);
}

static gboolean
check_x_dst (AtBatch *batch, const AtTensor *x, const AtTensor *dst, const char *op)
{
  return at_op_check_type (batch, x, AT_TYPE_F32, op, "x") &&
         at_op_check_type (batch, dst, AT_TYPE_F32, op, "dst") &&
         at_op_check_same_shape (batch, dst, x, op, "dst", "x");
}

/* Records the norm shader over rows of push->ne[0] elements. The weight and bias
 * bindings fall back to x's when absent: the shader does not read them then. */
static void
dispatch_norm (AtBatch *batch, const char *plain, const char *subgroup, NormPush *push,
               const AtTensor *x, const AtTensor *weight, const AtTensor *bias,
               const AtTensor *dst)
{
  AtBinding bindings[4];
  const guint32 spec[] = { at_op_row_workgroup_size (batch, push->ne[0]) };

  bindings[0] = at_tensor_binding (batch, x, FALSE, 4, &push->x_first);
  bindings[1] = at_tensor_binding (batch, weight ? weight : x, FALSE, 4, &push->w_first);
  bindings[2] = at_tensor_binding (batch, bias ? bias : x, FALSE, 4, &push->b_first);
  bindings[3] = at_tensor_binding (batch, dst, TRUE, 4, &push->d_first);
  push->has_weight = weight != NULL;
  push->has_bias = bias != NULL;
  at_batch_dispatch_1d (batch, at_op_pick_reduce_variant (batch, plain, subgroup), spec, 1,
                        bindings, 4, push, sizeof *push,
                        (guint64) push->ne[1] * push->ne[2] * push->ne[3]);
}

static void
row_norm (AtBatch *batch, const char *op, const char *plain, const char *subgroup,
          const AtTensor *x, const AtTensor *weight, const AtTensor *bias,
          const AtTensor *dst, float eps)
{
  NormPush push = { .eps = eps };

  if (!check_x_dst (batch, x, dst, op) ||
      !check_affine (batch, weight, x->ne[0], op, "weight") ||
      !check_affine (batch, bias, x->ne[0], op, "bias"))
    return;
  at_op_push_shape (x, dst, push.ne, push.x_s, push.d_s);
  dispatch_norm (batch, plain, subgroup, &push, x, weight, bias, dst);
}

void
at_op_rms_norm (AtBatch *batch, const AtTensor *x, const AtTensor *weight,
                const AtTensor *dst, float eps)
{
  row_norm (batch, "rms_norm", "rms_norm", "rms_norm_sg", x, weight, NULL, dst, eps);
}

void
at_op_layer_norm (AtBatch *batch, const AtTensor *x, const AtTensor *weight,
                  const AtTensor *bias, const AtTensor *dst, float eps)
{
  row_norm (batch, "layer_norm", "layer_norm", "layer_norm_sg", x, weight, bias, dst, eps);
}

static gboolean
sample_is_contiguous (const AtTensor *t)
{
  return t->nb[0] == 4 && t->nb[1] == 4 * (gsize) t->ne[0] &&
         t->nb[2] == t->nb[1] * (gsize) t->ne[1];
}

void
at_op_group_norm (AtBatch *batch, const AtTensor *x, const AtTensor *weight,
                  const AtTensor *bias, const AtTensor *dst, int n_groups, float eps,
                  gboolean fuse_silu)
{
  const char *op = "group_norm";
  gint64 channels = x->ne[2];
  gint64 group_channels;
  NormPush push = { .eps = eps, .fuse_silu = fuse_silu };

  if (!check_x_dst (batch, x, dst, op) ||
      !at_op_check (batch, n_groups > 0 && channels % n_groups == 0,
                    "%s: %" G_GINT64_FORMAT " channels do not split into %d groups", op,
                    channels, n_groups) ||
      !at_op_check (batch, sample_is_contiguous (x) && sample_is_contiguous (dst),
                    "%s: x and dst must be contiguous in dimensions 0..2", op) ||
      !check_affine (batch, weight, channels, op, "weight") ||
      !check_affine (batch, bias, channels, op, "bias"))
    return;

  /* One row per group of each sample: group_channels contiguous channel planes. */
  group_channels = channels / n_groups;
  push.channel_size = (guint32) (x->ne[0] * x->ne[1]);
  push.group_channels = (guint32) group_channels;
  push.ne[0] = (guint32) (x->ne[0] * x->ne[1] * group_channels);
  push.ne[1] = (guint32) n_groups;
  push.ne[2] = (guint32) x->ne[3];
  push.ne[3] = 1;
  push.x_s[0] = push.d_s[0] = 1;
  push.x_s[1] = push.d_s[1] = push.ne[0];
  push.x_s[2] = (guint32) (x->nb[3] / 4);
  push.d_s[2] = (guint32) (dst->nb[3] / 4);
  push.x_s[3] = push.d_s[3] = 0;
  dispatch_norm (batch, "group_norm", "group_norm_sg", &push, x, weight, bias, dst);
}
