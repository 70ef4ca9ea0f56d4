/* Data movement: copies with type conversion, concatenation, nearest upsampling. Each
 * is a gather: one invocation per dst element reads its source through strides. */
#include "ops/at-ops-elementwise.h"

#define WORKGROUP_SIZE 256

static gboolean
is_plain_float (AtType type)
{
  return type == AT_TYPE_F32 || type == AT_TYPE_F16 || type == AT_TYPE_BF16;
}

/* The binding of t with its offset and strides in elements (for Q8_0 in 16-bit units:
 * its blocks are 34 bytes), which the shaders index with; refuses strides that are not
 * whole elements and tensors too large for 32-bit indices. */
static gboolean
element_binding (AtBatch *batch, const char *name, const AtTensor *t, gboolean write,
                 AtBinding *binding, guint32 *first, guint32 strides[4])
{
  gsize size = t->type == AT_TYPE_Q8_0 ? 2 : at_type_info (t->type)->type_size;
  gboolean whole = t->offset % size == 0;

  for (int d = 0; d < 4; d++)
    whole = whole && t->nb[d] % size == 0;
  if (!at_op_check (batch, whole, "%s: tensor offset and strides must be whole elements",
                    name) ||
      !at_op_check (batch, at_tensor_n_elements (t) <= G_MAXUINT32 &&
                    at_tensor_extent (t) / size <= G_MAXUINT32,
                    "%s: tensor too large for 32-bit indices", name))
    return FALSE;
  *binding = at_tensor_binding (batch, t, write, size, first);
  for (int d = 0; d < 4; d++)
    strides[d] = (guint32) (t->nb[d] / size);
  return TRUE;
}

/* n invocations; none for empty tensors */
static void
dispatch (AtBatch *batch, const char *shader, const AtBinding *bindings, guint n_bindings,
          const void *push, guint push_size, gint64 n)
{
  const guint32 spec[] = { WORKGROUP_SIZE };

  if (n == 0)
    return;

  at_batch_dispatch_1d (batch, shader, spec, 1, bindings, n_bindings, push, push_size,
                        (n + WORKGROUP_SIZE - 1) / WORKGROUP_SIZE);
}

void
at_op_cpy (AtBatch *batch, const AtTensor *src, const AtTensor *dst)
{
  struct {
    guint32 n;
    guint32 s_ne[3], d_ne[3];
    guint32 s_first, d_first;
    guint32 s_s[4], d_s[4];
  } push;
  AtBinding bindings[2];
  char shader[32];

  gboolean to_q8_0 = src->type == AT_TYPE_F32 && dst->type == AT_TYPE_Q8_0;

  if (!at_op_check (batch, (is_plain_float (src->type) && is_plain_float (dst->type)) ||
                    to_q8_0, "cpy: %s to %s is not supported (F32, F16, BF16 and F32 to Q8_0)",
                    at_type_name (src->type), at_type_name (dst->type)) ||
      !at_op_check (batch, !to_q8_0 || dst->ne[0] % 32 == 0,
                    "cpy: rows of %" G_GINT64_FORMAT " are not whole Q8_0 blocks of 32",
                    dst->ne[0]) ||
      !at_op_check (batch, at_tensor_n_elements (src) == at_tensor_n_elements (dst),
                    "cpy: %" G_GINT64_FORMAT " elements into %" G_GINT64_FORMAT,
                    at_tensor_n_elements (src), at_tensor_n_elements (dst)) ||
      !element_binding (batch, "cpy", src, FALSE, &bindings[0], &push.s_first, push.s_s) ||
      !element_binding (batch, "cpy", dst, TRUE, &bindings[1], &push.d_first, push.d_s))
    return;

  /* the same bytes in the same order: a plain transfer copy, at memory speed */
  if (src->type == dst->type && at_tensor_is_contiguous (src) && at_tensor_is_contiguous (dst) &&
      (src->buffer != dst->buffer || src->offset + at_tensor_extent (src) <= dst->offset ||
       dst->offset + at_tensor_extent (dst) <= src->offset))
    {
      at_batch_copy (batch, src->buffer, src->offset, dst->buffer, dst->offset,
                     at_tensor_extent (src));
      return;
    }

  push.n = (guint32) at_tensor_n_elements (dst);
  for (int d = 0; d < 3; d++)
    {
      push.s_ne[d] = (guint32) src->ne[d];
      push.d_ne[d] = (guint32) dst->ne[d];
    }
  g_snprintf (shader, sizeof shader, "cpy_%s_%s", at_type_name (src->type),
              at_type_name (dst->type));
  /* Q8_0 takes one invocation per block */
  dispatch (batch, shader, bindings, 2, &push, sizeof push, to_q8_0 ? push.n / 32 : push.n);
}

void
at_op_concat (AtBatch *batch, const AtTensor *a, const AtTensor *c, const AtTensor *dst,
              int dim)
{
  struct {
    guint32 ne[4];
    guint32 dim, a_n;
    guint32 a_first, c_first, d_first;
    guint32 a_s[4], c_s[4], d_s[4];
  } push;
  AtBinding bindings[3];
  gboolean sizes_agree = TRUE;

  if (!at_op_check (batch, dim >= 0 && dim < 4, "concat: dimension %d is not 0..3", dim) ||
      !at_op_check (batch, is_plain_float (a->type) && c->type == a->type &&
                    dst->type == a->type, "concat: types %s, %s into %s (all F32, F16 "
                    "or BF16 alike)", at_type_name (a->type), at_type_name (c->type),
                    at_type_name (dst->type)))
    return;
  for (int d = 0; d < 4; d++)
    sizes_agree = sizes_agree && (d == dim ? dst->ne[d] == a->ne[d] + c->ne[d]
                                           : a->ne[d] == dst->ne[d] && c->ne[d] == dst->ne[d]);
  if (!sizes_agree)
    {
      g_autofree char *a_text = at_tensor_describe (a);
      g_autofree char *c_text = at_tensor_describe (c);
      g_autofree char *d_text = at_tensor_describe (dst);
      at_op_check (batch, FALSE, "concat: %s and %s do not join into %s along dimension %d",
                   a_text, c_text, d_text, dim);
      return;
    }
  if (!element_binding (batch, "concat", a, FALSE, &bindings[0], &push.a_first, push.a_s) ||
      !element_binding (batch, "concat", c, FALSE, &bindings[1], &push.c_first, push.c_s) ||
      !element_binding (batch, "concat", dst, TRUE, &bindings[2], &push.d_first, push.d_s))
    return;

  for (int d = 0; d < 4; d++)
    push.ne[d] = (guint32) dst->ne[d];
  push.dim = (guint32) dim;
  push.a_n = (guint32) a->ne[dim];
  dispatch (batch, a->type == AT_TYPE_F32 ? "concat_b32" : "concat_b16", bindings, 3, &push,
            sizeof push, at_tensor_n_elements (dst));
}

void
at_op_upscale_nearest_to (AtBatch *batch, const AtTensor *x, const AtTensor *dst)
{
  struct {
    guint32 ne[4];
    guint32 x_ne0, x_ne1;
    guint32 x_first, d_first;
    guint32 x_s[4], d_s[4];
  } push;
  AtBinding bindings[2];

  if (!at_op_check (batch, x->type == AT_TYPE_F32 && dst->type == AT_TYPE_F32,
                    "upscale: only F32 tensors are supported") ||
      !at_op_check (batch, x->ne[0] >= 1 && x->ne[1] >= 1 && dst->ne[2] == x->ne[2] &&
                    dst->ne[3] == x->ne[3],
                    "upscale: [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                    ", %" G_GINT64_FORMAT "] does not resample to [%" G_GINT64_FORMAT ", %"
                    G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]",
                    x->ne[0], x->ne[1], x->ne[2], x->ne[3], dst->ne[0], dst->ne[1],
                    dst->ne[2], dst->ne[3]) ||
      /* the shader's i0 * x_ne0 */
      !at_op_check (batch, dst->ne[0] * x->ne[0] <= G_MAXUINT32 &&
                    dst->ne[1] * x->ne[1] <= G_MAXUINT32, "upscale: sizes too large") ||
      !element_binding (batch, "upscale", x, FALSE, &bindings[0], &push.x_first, push.x_s) ||
      !element_binding (batch, "upscale", dst, TRUE, &bindings[1], &push.d_first, push.d_s))
    return;

  for (int d = 0; d < 4; d++)
    push.ne[d] = (guint32) dst->ne[d];
  push.x_ne0 = (guint32) x->ne[0];
  push.x_ne1 = (guint32) x->ne[1];
  dispatch (batch, "upscale_nearest", bindings, 2, &push, sizeof push,
            at_tensor_n_elements (dst));
}

void
at_op_upscale_nearest (AtBatch *batch, const AtTensor *x, const AtTensor *dst, int factor)
{
  if (!at_op_check (batch, factor >= 1, "upscale: factor %d is not positive", factor) ||
      !at_op_check (batch, dst->ne[0] == x->ne[0] * factor && dst->ne[1] == x->ne[1] * factor &&
                    dst->ne[2] == x->ne[2] && dst->ne[3] == x->ne[3],
                    "upscale: [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                    ", %" G_GINT64_FORMAT "] by %d does not give [%" G_GINT64_FORMAT ", %"
                    G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]",
                    x->ne[0], x->ne[1], x->ne[2], x->ne[3], factor, dst->ne[0], dst->ne[1],
                    dst->ne[2], dst->ne[3]))
    return;
  at_op_upscale_nearest_to (batch, x, dst);
}
