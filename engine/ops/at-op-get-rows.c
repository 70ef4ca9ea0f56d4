#include "ops/at-ops-quant.h"

#define WORKGROUP_SIZE 256

void
at_op_get_rows_ext (AtBatch *batch, const AtTensor *table, const AtTensor *ids, const AtTensor *dst,
                    guint64 max_range)
{
  const AtGpuDeviceInfo *info = at_gpu_get_info (at_batch_get_gpu (batch));
  const guint32 spec[] = { WORKGROUP_SIZE };
  g_autofree char *shader = NULL;
  gint64 n_rows = table->ne[1], rows_per;
  struct
  {
    guint32 ne0, n, table_first, row_stride, row_base, n_rows_bound, n_rows_total;
    guint32 ids_first, d_first, d_stride, zero_out_of_range;
  } push;
  AtBinding bindings[3];

  if (!at_op_check (batch,
                    at_type_is_weight (table->type) && ids->type == AT_TYPE_I32
                        && dst->type == AT_TYPE_F32,
                    "get_rows: takes a weight table, I32 ids "
                    "and an F32 dst (got %s, %s, %s)",
                    at_type_name (table->type), at_type_name (ids->type), at_type_name (dst->type))
      || !at_op_check (batch,
                       table->ne[2] == 1 && table->ne[3] == 1 && ids->ne[1] == 1 && ids->ne[2] == 1
                           && ids->ne[3] == 1 && dst->ne[0] == table->ne[0]
                           && dst->ne[1] == ids->ne[0] && dst->ne[2] == 1 && dst->ne[3] == 1,
                       "get_rows: shapes do not fit (table [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                       "], %" G_GINT64_FORMAT " ids, dst [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                       "])",
                       table->ne[0], table->ne[1], ids->ne[0], dst->ne[0], dst->ne[1])
      || !at_op_check_weight_rows (batch, table, "get_rows")
      || !at_op_check (batch, ids->nb[0] == 4 && dst->nb[0] == 4 && dst->nb[1] % 4 == 0,
                       "get_rows: ids and dst rows must be contiguous"))
    return;
  if (n_rows == 0 || ids->ne[0] == 0 || table->ne[0] == 0)
    return;
  rows_per = at_op_rows_per_binding (batch, table, MIN (max_range, info->max_storage_buffer_range));
  if (rows_per == 0)
    return;

  shader = at_op_weight_shader_name ("get_rows", table->type, "");
  push.ne0 = (guint32)table->ne[0];
  push.n = (guint32)ids->ne[0];
  push.row_stride = (guint32)table->nb[1];
  push.n_rows_total = (guint32)n_rows;
  push.d_stride = (guint32)(dst->nb[1] / 4);
  bindings[1] = at_tensor_binding (batch, ids, FALSE, 4, &push.ids_first);
  bindings[2] = at_tensor_binding (batch, dst, TRUE, 4, &push.d_first);
  /* Ids are only known on the GPU: each range writes the rows whose id falls in it,
   * and the first also writes the zero rows of ids out of range. */
  for (gint64 base = 0; base < n_rows; base += rows_per)
    {
      push.row_base = (guint32)base;
      push.n_rows_bound = (guint32)MIN (rows_per, n_rows - base);
      bindings[0]
          = at_op_weight_rows_binding (batch, table, base, push.n_rows_bound, &push.table_first);
      push.zero_out_of_range = base == 0;
      at_batch_dispatch_1d (batch, shader, spec, 1, bindings, 3, &push, sizeof push,
                            (guint64)(table->ne[0] * ids->ne[0] + WORKGROUP_SIZE - 1)
                                / WORKGROUP_SIZE);
    }
}

void
at_op_get_rows (AtBatch *batch, const AtTensor *table, const AtTensor *ids, const AtTensor *dst)
{
  at_op_get_rows_ext (batch, table, ids, dst, G_MAXUINT64);
}
