/* Matrix-matrix products and 2-D convolution: both are dispatches of the tiled GEMM in
 * shaders/gemm.glsl (mul-mat.comp, conv2d.comp) and share its tile sizes. */
#include "ops/at-ops-matmul.h"

/* Weight types with a mul_mat_<type>_<f32|f16> shader variant (shaders/meson.build). */
static const AtType mul_mat_types[] = {
  AT_TYPE_F32, AT_TYPE_F16, AT_TYPE_BF16, AT_TYPE_Q4_0, AT_TYPE_Q4_1, AT_TYPE_Q5_0,
  AT_TYPE_Q5_1, AT_TYPE_Q8_0, AT_TYPE_Q2_K, AT_TYPE_Q3_K, AT_TYPE_Q4_K, AT_TYPE_Q5_K,
  AT_TYPE_Q6_K,
};

/* The GEMM's spec constants: tile rows/columns/depth and the register tile each thread
 * accumulates; the workgroup size follows. They must meet shaders/gemm.glsl's
 * constraints (multiples of 4, staging loads dividing evenly among the threads). */
typedef struct {
  guint32 bm, bn, bk, tm, tn;
} Tiles;

static const Tiles tile_sizes[] = {
  { 128, 128, 16, 8, 8 }, /* big products: most reuse per staged element */
  { 64, 64, 16, 4, 4 },
  { 32, 32, 16, 4, 4 },   /* small ones: enough workgroups to spread */
};

/* A GPU needs a few hundred workgroups in flight to be busy. */
#define ENOUGH_WORKGROUPS 128

static const Tiles *
pick_tiles (gint64 m, gint64 n, gint64 batches)
{
  for (guint i = 0; i + 1 < G_N_ELEMENTS (tile_sizes); i++)
    {
      const Tiles *t = &tile_sizes[i];
      if ((m + t->bm - 1) / t->bm * ((n + t->bn - 1) / t->bn) * batches >= ENOUGH_WORKGROUPS)
        return t;
    }
  return &tile_sizes[G_N_ELEMENTS (tile_sizes) - 1];
}

/* Fills spec[0..5]. */
static void
tile_spec (const Tiles *t, guint32 spec[6])
{
  spec[0] = (t->bm / t->tm) * (t->bn / t->tn);
  spec[1] = t->bm;
  spec[2] = t->bn;
  spec[3] = t->bk;
  spec[4] = t->tm;
  spec[5] = t->tn;
}

gboolean
at_op_mul_mat_supports (AtType weight_type)
{
  for (guint i = 0; i < G_N_ELEMENTS (mul_mat_types); i++)
    if (mul_mat_types[i] == weight_type)
      return TRUE;
  return FALSE;
}

static gboolean
rows_contiguous (const AtTensor *t)
{
  return t->nb[0] == at_type_info (t->type)->type_size;
}

/* One dispatch over w's rows (a row range of the caller's when w was split) and the
 * matching rows of dst. */
static void
mul_mat_dispatch (AtBatch *batch, const AtTensor *w, const AtTensor *x, const AtTensor *dst)
{
  struct {
    guint32 m, n, k;
    guint32 ne2, r2, r3;
    guint32 w_first, w_s1, w_s2, w_s3;
    guint32 x_first, x_s1, x_s2, x_s3;
    guint32 d_first, d_s1, d_s2, d_s3;
  } push;
  const guint x_size = x->type == AT_TYPE_F16 ? 2 : 4;
  const Tiles *tiles = pick_tiles (w->ne[1], x->ne[1], x->ne[2] * x->ne[3]);
  g_autofree char *type_name = g_ascii_strdown (at_type_name (w->type), -1);
  g_autofree char *shader = g_strdup_printf ("mul_mat_%s_%s", type_name,
                                             x->type == AT_TYPE_F16 ? "f16" : "f32");
  AtBinding bindings[3];
  guint32 spec[7];

  bindings[0] = at_tensor_binding (batch, w, FALSE, 1, &push.w_first);
  bindings[1] = at_tensor_binding (batch, x, FALSE, x_size, &push.x_first);
  bindings[2] = at_tensor_binding (batch, dst, TRUE, 4, &push.d_first);
  push.m = (guint32) w->ne[1];
  push.n = (guint32) x->ne[1];
  push.k = (guint32) w->ne[0];
  push.ne2 = (guint32) x->ne[2];
  push.r2 = (guint32) (x->ne[2] / w->ne[2]);
  push.r3 = (guint32) (x->ne[3] / w->ne[3]);
  push.w_s1 = (guint32) w->nb[1];
  push.w_s2 = (guint32) w->nb[2];
  push.w_s3 = (guint32) w->nb[3];
  push.x_s1 = (guint32) (x->nb[1] / x_size);
  push.x_s2 = (guint32) (x->nb[2] / x_size);
  push.x_s3 = (guint32) (x->nb[3] / x_size);
  push.d_s1 = (guint32) (dst->nb[1] / 4);
  push.d_s2 = (guint32) (dst->nb[2] / 4);
  push.d_s3 = (guint32) (dst->nb[3] / 4);

  tile_spec (tiles, spec);
  spec[6] = push.x_first % 4 == 0 && push.x_s1 % 4 == 0 && push.x_s2 % 4 == 0 &&
            push.x_s3 % 4 == 0;
  at_batch_dispatch (batch, shader, spec, G_N_ELEMENTS (spec), bindings, 3, &push,
                     sizeof push, (guint32) ((push.n + tiles->bn - 1) / tiles->bn),
                     (guint32) ((push.m + tiles->bm - 1) / tiles->bm),
                     (guint32) (x->ne[2] * x->ne[3]));
}

void
at_op_mul_mat (AtBatch *batch, const AtTensor *w, const AtTensor *x, const AtTensor *dst)
{
  const AtGpuDeviceInfo *info = at_gpu_get_info (at_batch_get_gpu (batch));
  g_autofree char *w_text = at_tensor_describe (w);
  g_autofree char *x_text = at_tensor_describe (x);
  g_autofree char *d_text = at_tensor_describe (dst);
  gsize max_rows;

  if (!at_op_check (batch, at_op_mul_mat_supports (w->type),
                    "mul_mat: weight type %s is not supported", at_type_name (w->type)) ||
      !at_op_check (batch, (x->type == AT_TYPE_F32 || x->type == AT_TYPE_F16) &&
                    dst->type == AT_TYPE_F32,
                    "mul_mat: x must be F32 or F16 and dst F32 (x %s, dst %s)", x_text,
                    d_text) ||
      !at_op_check (batch, w->ne[0] == x->ne[0] && w->ne[2] > 0 && w->ne[3] > 0 &&
                    x->ne[2] % w->ne[2] == 0 && x->ne[3] % w->ne[3] == 0,
                    "mul_mat: w %s and x %s do not match (same k, x's batches a multiple "
                    "of w's)", w_text, x_text) ||
      !at_op_check (batch, dst->ne[0] == w->ne[1] && dst->ne[1] == x->ne[1] &&
                    dst->ne[2] == x->ne[2] && dst->ne[3] == x->ne[3],
                    "mul_mat: dst %s should be [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                    ", %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]", d_text, w->ne[1],
                    x->ne[1], x->ne[2], x->ne[3]) ||
      !at_op_check (batch, rows_contiguous (w) && rows_contiguous (x) && rows_contiguous (dst),
                    "mul_mat: rows must be contiguous (w %s, x %s, dst %s)", w_text, x_text,
                    d_text))
    return;
  if (at_tensor_n_elements (dst) == 0)
    return;
  if (at_tensor_extent (w) <= info->max_storage_buffer_range)
    {
      mul_mat_dispatch (batch, w, x, dst);
      return;
    }

  /* Bind a large weight matrix in row ranges; the binding of each may start up to an
   * alignment before its first row and is rounded up to a word. */
  max_rows = (info->max_storage_buffer_range - info->min_storage_offset_alignment - 4) /
             w->nb[1];
  if (!at_op_check (batch, w->ne[2] * w->ne[3] == 1 && max_rows > 0,
                    "mul_mat: w %s exceeds the device's storage buffer range", w_text))
    return;
  for (gint64 r0 = 0; r0 < w->ne[1]; r0 += (gint64) max_rows)
    {
      AtTensor w_rows = *w, dst_rows = *dst;

      w_rows.offset += (gsize) r0 * w->nb[1];
      w_rows.ne[1] = MIN ((gint64) max_rows, w->ne[1] - r0);
      dst_rows.offset += (gsize) r0 * 4;
      dst_rows.ne[0] = w_rows.ne[1];
      mul_mat_dispatch (batch, &w_rows, x, &dst_rows);
    }
}

void
at_op_conv2d (AtBatch *batch, const AtTensor *weight, const AtTensor *bias, const AtTensor *x,
              const AtTensor *dst, int stride, int padding)
{
  at_op_conv2d_padded (batch, weight, bias, x, dst, stride, padding, padding);
}

void
at_op_conv2d_padded (AtBatch *batch, const AtTensor *weight, const AtTensor *bias,
                     const AtTensor *x, const AtTensor *dst, int stride, int pad_begin,
                     int pad_end)
{
  struct {
    guint32 m, n, k;
    guint32 kw, kh, stride, pad;
    guint32 w_in, h_in, w_out, h_out;
    guint32 w_first, w_s3;
    guint32 x_first, x_s1, x_s2, x_s3;
    guint32 d_first, d_s1, d_s2, d_s3;
    guint32 bias_first;
  } push = { 0 };
  g_autofree char *weight_text = at_tensor_describe (weight);
  g_autofree char *x_text = at_tensor_describe (x);
  g_autofree char *d_text = at_tensor_describe (dst);
  const gint64 kw = weight->ne[0], kh = weight->ne[1], c_in = weight->ne[2];
  const gint64 c_out = weight->ne[3];
  gint64 w_out, h_out;
  const Tiles *tiles;
  AtBinding bindings[4];
  guint32 spec[7];

  if (!at_op_check (batch, (weight->type == AT_TYPE_F32 || weight->type == AT_TYPE_F16) &&
                    at_tensor_is_contiguous (weight),
                    "conv2d: weight %s must be contiguous F32 or F16", weight_text) ||
      !at_op_check (batch, x->type == AT_TYPE_F32 && dst->type == AT_TYPE_F32 &&
                    rows_contiguous (x) && rows_contiguous (dst),
                    "conv2d: x %s and dst %s must be F32 with contiguous rows", x_text,
                    d_text) ||
      !at_op_check (batch, bias == NULL ||
                    (bias->type == AT_TYPE_F32 && rows_contiguous (bias) &&
                     bias->ne[0] == c_out && at_tensor_n_elements (bias) == c_out),
                    "conv2d: bias must be F32 [%" G_GINT64_FORMAT "]", c_out) ||
      !at_op_check (batch, stride >= 1 && pad_begin >= 0 && pad_end >= 0,
                    "conv2d: stride %d must be positive and padding %d, %d not negative",
                    stride, pad_begin, pad_end) ||
      !at_op_check (batch, x->ne[2] == c_in && x->ne[0] + pad_begin + pad_end >= kw &&
                    x->ne[1] + pad_begin + pad_end >= kh,
                    "conv2d: x %s does not fit weight %s (c_in, kernel larger than the "
                    "padded input)", x_text, weight_text))
    return;
  /* The shader reads zero for every tap outside x on either side, so padding only the
   * end is a matter of the output size. */
  w_out = (x->ne[0] + pad_begin + pad_end - kw) / stride + 1;
  h_out = (x->ne[1] + pad_begin + pad_end - kh) / stride + 1;
  if (!at_op_check (batch, dst->ne[0] == w_out && dst->ne[1] == h_out && dst->ne[2] == c_out &&
                    dst->ne[3] == x->ne[3],
                    "conv2d: dst %s should be [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %"
                    G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]", d_text, w_out, h_out, c_out,
                    x->ne[3]))
    return;
  if (at_tensor_n_elements (dst) == 0)
    return;

  bindings[0] = at_tensor_binding (batch, weight, FALSE, 1, &push.w_first);
  bindings[1] = at_tensor_binding (batch, x, FALSE, 4, &push.x_first);
  bindings[2] = at_tensor_binding (batch, dst, TRUE, 4, &push.d_first);
  /* Without a bias, binding 3 needs some buffer all the same: the weights, unread. */
  bindings[3] = bias ? at_tensor_binding (batch, bias, FALSE, 4, &push.bias_first)
                     : bindings[0];
  push.m = (guint32) (w_out * h_out * x->ne[3]);
  push.n = (guint32) c_out;
  push.k = (guint32) (kw * kh * c_in);
  push.kw = (guint32) kw;
  push.kh = (guint32) kh;
  push.stride = (guint32) stride;
  push.pad = (guint32) pad_begin;
  push.w_in = (guint32) x->ne[0];
  push.h_in = (guint32) x->ne[1];
  push.w_out = (guint32) w_out;
  push.h_out = (guint32) h_out;
  push.w_s3 = (guint32) weight->nb[3];
  push.x_s1 = (guint32) (x->nb[1] / 4);
  push.x_s2 = (guint32) (x->nb[2] / 4);
  push.x_s3 = (guint32) (x->nb[3] / 4);
  push.d_s1 = (guint32) (dst->nb[1] / 4);
  push.d_s2 = (guint32) (dst->nb[2] / 4);
  push.d_s3 = (guint32) (dst->nb[3] / 4);

  tiles = pick_tiles (push.m, push.n, 1);
  tile_spec (tiles, spec);
  spec[6] = bias != NULL;
  at_batch_dispatch (batch, weight->type == AT_TYPE_F16 ? "conv2d_f16" : "conv2d_f32", spec,
                     G_N_ELEMENTS (spec), bindings, 4, &push, sizeof push,
                     (push.n + tiles->bn - 1) / tiles->bn,
                     (push.m + tiles->bm - 1) / tiles->bm, 1);
}
