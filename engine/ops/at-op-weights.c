/* Helpers shared by the ops that read weight matrices row by row. */
#include "ops/at-ops-quant.h"

gboolean
at_op_check_weight_rows (AtBatch *batch, const AtTensor *w, const char *op)
{
  /* The shaders read F32 weights as floats and everything else as bytes and halves. */
  gsize alignment = w->type == AT_TYPE_F32 ? 4 : 2;

  return at_op_check (batch,
                      w->nb[0] == at_type_info (w->type)->type_size && w->nb[1] % alignment == 0
                          && w->offset % alignment == 0,
                      "%s: the rows of weights must be contiguous and %" G_GSIZE_FORMAT
                      "-byte aligned",
                      op, alignment);
}

gint64
at_op_rows_per_binding (AtBatch *batch, const AtTensor *t, guint64 max_range)
{
  guint64 alignment = at_gpu_get_info (at_batch_get_gpu (batch))->min_storage_offset_alignment;
  guint64 row_bytes = at_type_row_size (t->type, t->ne[0]);
  /* A binding starts up to alignment - 1 bytes before the first row and ends up to 3
   * bytes past the last one (rounded to whole words). */
  guint64 usable = max_range > alignment + 2 ? max_range - alignment - 2 : 0;
  gint64 rows = usable >= row_bytes ? (gint64)((usable - row_bytes) / t->nb[1]) + 1 : 0;

  if (!at_op_check (batch, rows > 0,
                    "a row of %" G_GUINT64_FORMAT " bytes does not fit "
                    "in a storage binding of %" G_GUINT64_FORMAT " bytes",
                    row_bytes, max_range))
    return 0;
  return rows;
}

AtBinding
at_op_weight_rows_binding (AtBatch *batch, const AtTensor *w, gint64 first_row, gint64 n_rows,
                           guint32 *first_byte)
{
  AtTensor range = *w;

  range.offset += (gsize)first_row * w->nb[1];
  range.ne[1] = n_rows;
  return at_tensor_binding (batch, &range, FALSE, 1, first_byte);
}

char *
at_op_weight_shader_name (const char *op, AtType type, const char *suffix)
{
  g_autofree char *type_name = g_ascii_strdown (at_type_name (type), -1);

  return g_strconcat (op, "_", type_name, suffix, NULL);
}
