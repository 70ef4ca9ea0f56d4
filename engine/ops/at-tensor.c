#include "at-tensor.h"

#include "at-error.h"

gsize
at_tensor_contiguous_size (AtType type, gint64 ne0, gint64 ne1, gint64 ne2, gint64 ne3)
{
  return at_type_row_size (type, ne0) * (gsize) (ne1 * ne2 * ne3);
}

AtTensor
at_tensor_make (AtGpuBuffer *buffer, gsize offset, AtType type,
                gint64 ne0, gint64 ne1, gint64 ne2, gint64 ne3)
{
  const AtTypeInfo *info = at_type_info (type);
  AtTensor t = {
    .buffer = buffer,
    .offset = offset,
    .type = type,
    .ne = { ne0, ne1, ne2, ne3 },
  };

  t.nb[0] = info->type_size;
  t.nb[1] = at_type_row_size (type, ne0);
  t.nb[2] = t.nb[1] * (gsize) ne1;
  t.nb[3] = t.nb[2] * (gsize) ne2;
  return t;
}

gint64
at_tensor_n_elements (const AtTensor *t)
{
  return t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
}

gint64
at_tensor_n_rows (const AtTensor *t)
{
  return t->ne[1] * t->ne[2] * t->ne[3];
}

gsize
at_tensor_extent (const AtTensor *t)
{
  const AtTypeInfo *info = at_type_info (t->type);
  gsize last = 0;

  if (at_tensor_n_elements (t) == 0)
    return 0;
  last += (gsize) (t->ne[0] / info->block_size - 1) * t->nb[0];
  for (int d = 1; d < 4; d++)
    last += (gsize) (t->ne[d] - 1) * t->nb[d];
  return last + info->type_size;
}

gboolean
at_tensor_is_contiguous (const AtTensor *t)
{
  const AtTypeInfo *info = at_type_info (t->type);

  return t->nb[0] == info->type_size &&
         t->nb[1] == at_type_row_size (t->type, t->ne[0]) &&
         t->nb[2] == t->nb[1] * (gsize) t->ne[1] &&
         t->nb[3] == t->nb[2] * (gsize) t->ne[2];
}

gboolean
at_tensor_same_shape (const AtTensor *a, const AtTensor *b)
{
  for (int d = 0; d < 4; d++)
    if (a->ne[d] != b->ne[d])
      return FALSE;
  return TRUE;
}

char *
at_tensor_describe (const AtTensor *t)
{
  return g_strdup_printf ("%s [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT ", %"
                          G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]",
                          at_type_name (t->type), t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
}

AtBinding
at_tensor_binding (AtBatch *batch, const AtTensor *t, gboolean write, guint unit,
                   guint32 *first)
{
  gsize alignment = at_gpu_get_info (at_batch_get_gpu (batch))->min_storage_offset_alignment;
  gsize start = t->offset / alignment * alignment;
  gsize end = t->offset + at_tensor_extent (t);
  gsize buffer_size = at_gpu_buffer_get_size (t->buffer);

  /* Round the range up to whole units (and words) where the buffer allows, so the
   * shader's last element lies inside the binding. */
  end = MIN ((end + 3) / 4 * 4, buffer_size);
  if (first)
    {
      g_warn_if_fail ((t->offset - start) % unit == 0);
      *first = (guint32) ((t->offset - start) / unit);
    }
  return (AtBinding) { t->buffer, start, end - start, write };
}

gboolean
at_op_check (AtBatch *batch, gboolean cond, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  if (cond)
    return TRUE;
  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  at_batch_take_error (batch, g_error_new_literal (AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                                                   message));
  return FALSE;
}
