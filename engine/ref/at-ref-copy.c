#include <string.h>

#include "ref/at-ref-elementwise.h"

#include "ref/at-ref.h"

/* The byte offset of element k (row-major over ne) of a strided tensor, or of the block
 * that holds it for a block type (nb[0] is then the block's stride). */
static gsize
element_offset (gint64 k, const gint64 ne[4], const gsize nb[4], guint block_size)
{
  gsize offset = (gsize) (k % ne[0] / block_size) * nb[0];

  k /= ne[0];
  for (int d = 1; d < 4; d++)
    {
      offset += (gsize) (k % ne[d]) * nb[d];
      k /= ne[d];
    }
  return offset;
}

void
at_ref_cpy (const void *src, AtType src_type, const gint64 src_ne[4], const gsize src_nb[4],
            void *dst, AtType dst_type, const gint64 dst_ne[4], const gsize dst_nb[4])
{
  gint64 n = dst_ne[0] * dst_ne[1] * dst_ne[2] * dst_ne[3];
  guint block_size = at_type_info (dst_type)->block_size;

  /* a block of dst at a time: the elements that fill it, converted to floats */
  for (gint64 k = 0; k < n; k += block_size)
    {
      guint8 *to = (guint8 *) dst + element_offset (k, dst_ne, dst_nb, block_size);
      float values[32];

      if (src_type == dst_type)
        {
          memcpy (to, (const guint8 *) src + element_offset (k, src_ne, src_nb, 1),
                  at_type_info (src_type)->type_size);
          continue;
        }
      for (guint e = 0; e < block_size; e++)
        at_ref_dequantize_row (src_type,
                               (const guint8 *) src + element_offset (k + e, src_ne, src_nb, 1),
                               &values[e], 1);
      at_ref_quantize_row (dst_type, values, to, block_size);
    }
}

void
at_ref_concat (const float *a, const gint64 a_ne[4], const float *c, const gint64 c_ne[4],
               int dim, float *dst)
{
  gint64 ne[4] = { a_ne[0], a_ne[1], a_ne[2], a_ne[3] };

  ne[dim] += c_ne[dim];
  for (gint64 i3 = 0; i3 < ne[3]; i3++)
    for (gint64 i2 = 0; i2 < ne[2]; i2++)
      for (gint64 i1 = 0; i1 < ne[1]; i1++)
        for (gint64 i0 = 0; i0 < ne[0]; i0++)
          {
            gint64 i[4] = { i0, i1, i2, i3 };
            gint64 k = ((i3 * ne[2] + i2) * ne[1] + i1) * ne[0] + i0;

            if (i[dim] < a_ne[dim])
              dst[k] = a[((i3 * a_ne[2] + i2) * a_ne[1] + i1) * a_ne[0] + i0];
            else
              {
                i[dim] -= a_ne[dim];
                dst[k] = c[((i[3] * c_ne[2] + i[2]) * c_ne[1] + i[1]) * c_ne[0] + i[0]];
              }
          }
}

void
at_ref_upscale_nearest_to (const float *x, const gint64 ne[4], gint64 w, gint64 h, float *dst)
{
  for (gint64 i3 = 0; i3 < ne[3]; i3++)
    for (gint64 i2 = 0; i2 < ne[2]; i2++)
      for (gint64 i1 = 0; i1 < h; i1++)
        for (gint64 i0 = 0; i0 < w; i0++)
          dst[((i3 * ne[2] + i2) * h + i1) * w + i0] =
            x[((i3 * ne[2] + i2) * ne[1] + i1 * ne[1] / h) * ne[0] + i0 * ne[0] / w];
}

void
at_ref_upscale_nearest (const float *x, const gint64 ne[4], int factor, float *dst)
{
  at_ref_upscale_nearest_to (x, ne, ne[0] * factor, ne[1] * factor, dst);
}
