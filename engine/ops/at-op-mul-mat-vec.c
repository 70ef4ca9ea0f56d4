#include "ops/at-ops-quant.h"

/* Threads of a workgroup stride over k together; each workgroup makes several rows, so
 * that x is read once for them, and each weight is decoded once for all n columns. On
 * GPUs a workgroup of one or two subgroups and two rows keep enough rows in flight to
 * hide memory latency. On CPU devices one subgroup per workgroup needs no barrier, and
 * four rows amortize the x loads of a single column; with more columns the weights are
 * reused already, and fewer rows keep the unrolled code (and its compile time) small. */
static void
pick_launch (const AtGpuDeviceInfo *info, gint64 n, guint32 *workgroup_size, guint32 *rows)
{
  if (info->type == VK_PHYSICAL_DEVICE_TYPE_CPU)
    {
      *workgroup_size = MAX (info->subgroup_size, 1);
      *rows = n == 1 ? 4 : 2;
    }
  else
    {
      *workgroup_size = CLAMP (info->subgroup_size, 32, 64);
      *rows = 2;
    }
}

gboolean
at_op_mul_mat_vec_supports (AtType type)
{
  return at_type_is_weight (type);
}

void
at_op_mul_mat_vec_ext (AtBatch *batch, const AtTensor *w, const AtTensor *x, const AtTensor *dst,
                       guint64 max_range, gboolean use_subgroups)
{
  const AtGpuDeviceInfo *info = at_gpu_get_info (at_batch_get_gpu (batch));
  const AtTypeInfo *type = at_type_info (w->type);
  gint64 k = w->ne[0], m = w->ne[1], n = x->ne[1], rows_per;
  g_autofree char *shader = NULL;
  guint32 spec[5] = { 0, (guint32)n };
  struct
  {
    guint32 k, m, w_first, w_stride, x_first, x_stride, d_first, d_stride, row_base;
  } push;
  AtBinding bindings[3];
  /* x's element size: F32 or F16 activations. */
  const gsize x_size = x->type == AT_TYPE_F16 ? 2 : 4;

  if (!at_op_check (batch,
                    at_op_mul_mat_vec_supports (w->type)
                        && (x->type == AT_TYPE_F32 || x->type == AT_TYPE_F16)
                        && dst->type == AT_TYPE_F32,
                    "mul_mat_vec: takes weights of a weight "
                    "type, F32 or F16 x and an F32 dst (got %s, %s, %s)",
                    at_type_name (w->type), at_type_name (x->type), at_type_name (dst->type))
      || !at_op_check (batch, x->ne[0] == k && k % type->block_size == 0 && k > 0,
                       "mul_mat_vec: k (%" G_GINT64_FORMAT " in w, %" G_GINT64_FORMAT " in x) "
                       "must agree and be a positive multiple of %s's block size %u",
                       k, x->ne[0], type->name, type->block_size)
      || !at_op_check (batch, n >= 1 && n <= AT_MUL_MAT_VEC_MAX_COLS,
                       "mul_mat_vec: x has %" G_GINT64_FORMAT " columns, 1 to %d are supported", n,
                       AT_MUL_MAT_VEC_MAX_COLS)
      || !at_op_check (batch,
                       w->ne[2] == 1 && w->ne[3] == 1 && x->ne[2] == 1 && x->ne[3] == 1
                           && dst->ne[0] == m && dst->ne[1] == n && dst->ne[2] == 1
                           && dst->ne[3] == 1,
                       "mul_mat_vec: shapes do not fit (w [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                       "], x [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "], dst [%" G_GINT64_FORMAT
                       ", %" G_GINT64_FORMAT "])",
                       k, m, x->ne[0], n, dst->ne[0], dst->ne[1])
      || !at_op_check_weight_rows (batch, w, "mul_mat_vec")
      || !at_op_check (batch,
                       x->nb[0] == x_size && x->nb[1] % x_size == 0 && dst->nb[0] == 4
                           && dst->nb[1] % 4 == 0,
                       "mul_mat_vec: x and dst rows must be contiguous"))
    return;
  if (m == 0)
    return;
  rows_per = at_op_rows_per_binding (batch, w, MIN (max_range, info->max_storage_buffer_range));
  if (rows_per == 0)
    return;

  pick_launch (info, n, &spec[0], &spec[2]);
  shader = at_op_weight_shader_name ("mul_mat_vec", w->type,
                                     use_subgroups && info->subgroup_arithmetic
                                         ? (x_size == 2 ? "_x16_subgroup" : "_subgroup")
                                         : (x_size == 2 ? "_x16" : ""));
  push.k = (guint32)k;
  push.w_stride = (guint32)w->nb[1];
  push.x_stride = (guint32)(x->nb[1] / x_size);
  push.d_stride = (guint32)(dst->nb[1] / 4);
  bindings[1] = at_tensor_binding (batch, x, FALSE, x_size, &push.x_first);
  bindings[2] = at_tensor_binding (batch, dst, TRUE, 4, &push.d_first);
  spec[4] = push.x_first % 4 == 0 && push.x_stride % 4 == 0;
  for (gint64 base = 0; base < m; base += rows_per)
    {
      push.m = (guint32)MIN (rows_per, m - base);
      push.row_base = (guint32)base;
      bindings[0] = at_op_weight_rows_binding (batch, w, base, push.m, &push.w_first);
      /* Whole 32-bit loads where every row, block and word offset is 4-aligned. */
      spec[3] = push.w_first % 4 == 0 && push.w_stride % 4 == 0
                && (type->block_size == 1 || type->type_size % 4 == 0);
      at_batch_dispatch_1d (batch, shader, spec, 5, bindings, 3, &push, sizeof push,
                            (push.m + spec[2] - 1) / spec[2]);
    }
}

void
at_op_mul_mat_vec (AtBatch *batch, const AtTensor *w, const AtTensor *x, const AtTensor *dst)
{
  at_op_mul_mat_vec_ext (batch, w, x, dst, G_MAXUINT64, TRUE);
}
