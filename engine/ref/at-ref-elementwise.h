/* at-ref-elementwise.h: CPU references of the copy, concatenation, upsampling and
 * timestep-embedding ops (at_ref_add / at_ref_mul are in at-ref.h). */
#pragma once

#include <glib.h>

#include "at-types.h"

G_BEGIN_DECLS

/* --- Data movement (at-ref-copy.c) --- */

/* Element k of dst in its row-major order = element k of src in its order, converted
 * from src_type to dst_type (F32, F16, BF16) through at_ref_dequantize_row /
 * at_ref_quantize_row, or its bytes as they are when the types agree; F32 to Q8_0
 * quantizes each block of 32 as ggml's quantize_row_q8_0_ref. Both are addressed
 * through their byte strides nb (for Q8_0 nb[0] is the block's). */
void at_ref_cpy (const void *src, AtType src_type, const gint64 src_ne[4],
                 const gsize src_nb[4], void *dst, AtType dst_type, const gint64 dst_ne[4],
                 const gsize dst_nb[4]);

/* Contiguous a [a_ne] and c [c_ne] joined along dimension dim into contiguous dst. */
void at_ref_concat (const float *a, const gint64 a_ne[4], const float *c, const gint64 c_ne[4],
                    int dim, float *dst);

/* Contiguous x [ne] to contiguous dst [ne0 * factor, ne1 * factor, ne2, ne3]. */
void at_ref_upscale_nearest (const float *x, const gint64 ne[4], int factor, float *dst);
/* Contiguous x [ne] to contiguous dst [w, h, ne2, ne3], source index floor (i * ne / w). */
void at_ref_upscale_nearest_to (const float *x, const gint64 ne[4], gint64 w, gint64 h,
                                float *dst);

/* --- Timestep embedding (at-ref-timestep-embedding.c) --- */

/* dst [dim, n], contiguous, for the n timesteps. */
void at_ref_timestep_embedding (const float *timesteps, gint64 n, int dim, int max_period,
                                float *dst);

G_END_DECLS
