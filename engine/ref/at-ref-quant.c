/* Block codecs of GGUF's quantized types. Element e of a block is decoded on its own,
 * with the float operations of ggml's dequantize_row_* in the same order, so the
 * results match ggml bit for bit. */
#include <math.h>
#include <string.h>

#include "ref/at-ref.h"
#include "ref/at-ref-quant.h"

#define QK_K 256

static float
get_half (const guint8 *p)
{
  return at_fp16_to_fp32 ((guint16)(p[0] | p[1] << 8));
}

/* Stores f as a half and returns the value the decoder will see. */
static float
put_half (guint8 *p, float f)
{
  guint16 h = at_fp32_to_fp16 (f);
  p[0] = (guint8)h;
  p[1] = (guint8)(h >> 8);
  return at_fp16_to_fp32 (h);
}

static int
clamp_round (float v, int lo, int hi)
{
  return CLAMP ((int)lrintf (v), lo, hi);
}

static float
max_abs_signed (const float *x, int n)
{
  float best = 0;
  for (int i = 0; i < n; i++)
    if (fabsf (x[i]) > fabsf (best))
      best = x[i];
  return best;
}

static void
min_max (const float *x, int n, float *lo, float *hi)
{
  *lo = *hi = x[0];
  for (int i = 1; i < n; i++)
    {
      *lo = MIN (*lo, x[i]);
      *hi = MAX (*hi, x[i]);
    }
}

static float
inverse (float d)
{
  return d != 0 ? 1.0f / d : 0.0f;
}

/* --- 32-element blocks ------------------------------------------------------
 * q4_0 { f16 d; u8 qs[16]; }             x = (q - 8) * d
 * q4_1 { f16 d, m; u8 qs[16]; }          x = q * d + m
 * q5_0 { f16 d; u8 qh[4]; u8 qs[16]; }   x = (q - 16) * d
 * q5_1 { f16 d, m; u8 qh[4]; u8 qs[16]; } x = q * d + m
 * q8_0 { f16 d; i8 qs[32]; }             x = q * d
 * Element j < 16 is the low nibble of qs[j], j + 16 the high one; the fifth bit of
 * element j is bit j of qh (a little-endian 32-bit word). */

static int
nibble32 (const guint8 *qs, int j)
{
  return (qs[j & 15] >> (4 * (j >> 4))) & 15;
}

static int
fifth_bit (const guint8 *qh, int j)
{
  return ((qh[j >> 3] >> (j & 7)) & 1) << 4;
}

static void
put_q32 (guint8 *qs, guint8 *qh, int j, int q)
{
  qs[j & 15] |= (guint8)((q & 15) << (4 * (j >> 4)));
  if (qh)
    qh[j >> 3] |= (guint8)(((q >> 4) & 1) << (j & 7));
}

static void
dequant_q32 (AtType type, const guint8 *b, float *y)
{
  float d = get_half (b);

  for (int j = 0; j < 32; j++)
    switch (type)
      {
      case AT_TYPE_Q4_0:
        y[j] = (float)(nibble32 (b + 2, j) - 8) * d;
        break;
      case AT_TYPE_Q4_1:
        y[j] = (float)nibble32 (b + 4, j) * d + get_half (b + 2);
        break;
      case AT_TYPE_Q5_0:
        y[j] = (float)((nibble32 (b + 6, j) | fifth_bit (b + 2, j)) - 16) * d;
        break;
      case AT_TYPE_Q5_1:
        y[j] = (float)(nibble32 (b + 8, j) | fifth_bit (b + 4, j)) * d + get_half (b + 2);
        break;
      case AT_TYPE_Q8_0:
        y[j] = (float)(gint8)b[2 + j] * d;
        break;
      default:
        g_assert_not_reached ();
      }
}

static void
quant_q32 (AtType type, const float *x, guint8 *b)
{
  const AtTypeInfo *info = at_type_info (type);
  float lo, hi, d, m;

  memset (b, 0, info->type_size);
  min_max (x, 32, &lo, &hi);
  switch (type)
    {
    case AT_TYPE_Q4_0:
    case AT_TYPE_Q5_0:
      {
        /* The value of largest magnitude maps to the most negative code exactly. */
        int half_range = type == AT_TYPE_Q4_0 ? 8 : 16;
        d = inverse (put_half (b, max_abs_signed (x, 32) / (float)-half_range));
        for (int j = 0; j < 32; j++)
          put_q32 (b + (type == AT_TYPE_Q4_0 ? 2 : 6), type == AT_TYPE_Q5_0 ? b + 2 : NULL, j,
                   clamp_round (x[j] * d, -half_range, half_range - 1) + half_range);
        break;
      }
    case AT_TYPE_Q4_1:
    case AT_TYPE_Q5_1:
      {
        int top = type == AT_TYPE_Q4_1 ? 15 : 31;
        d = inverse (put_half (b, (hi - lo) / (float)top));
        m = put_half (b + 2, lo);
        for (int j = 0; j < 32; j++)
          put_q32 (b + (type == AT_TYPE_Q4_1 ? 4 : 8), type == AT_TYPE_Q5_1 ? b + 4 : NULL, j,
                   clamp_round ((x[j] - m) * d, 0, top));
        break;
      }
    case AT_TYPE_Q8_0:
      {
        /* As ggml's quantize_row_q8_0_ref, which the GPU's F32 -> Q8_0 copy follows:
         * the codes use the unrounded scale; only the stored scale is a half. */
        float scale = MAX (fabsf (lo), fabsf (hi)) / 127.0f;
        put_half (b, scale);
        d = inverse (scale);
        for (int j = 0; j < 32; j++)
          b[2 + j] = (guint8)(gint8)roundf (x[j] * d);
        break;
      }
    default:
      g_assert_not_reached ();
    }
}

/* --- K-quants: 256-element super-blocks --------------------------------------
 * q2_K { u8 scales[16]; u8 qs[64]; f16 d, dmin; }
 *   16 sub-blocks of 16: scales[s] = sc | m << 4, x = d * sc * q - dmin * m, q 2-bit.
 * q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d; }
 *   16 sub-blocks of 16: 6-bit scales s (biased by 32), x = d * (s - 32) * (q - 4), q
 *   3-bit: the low two bits in qs, the third in hmask.
 * q4_K { f16 d, dmin; u8 scales[12]; u8 qs[128]; }
 * q5_K { f16 d, dmin; u8 scales[12]; u8 qh[32]; u8 qs[128]; }
 *   8 sub-blocks of 32: 6-bit scale sc and min m each, x = d * sc * q - dmin * m.
 * q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d; }
 *   16 sub-blocks of 16: x = d * scales[s] * (q - 32), q 6-bit.
 * For q2_K and q3_K, element e sits in byte 32 * (e / 128) + e % 32 of qs at bit
 * 2 * ((e % 128) / 32); its hmask bit (q3_K) is bit e / 32 of hmask[e % 32]. */

static int
q2_bits (const guint8 *qs, int e)
{
  return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
}

static void
put_q2_bits (guint8 *qs, int e, int q)
{
  qs[32 * (e / 128) + e % 32] |= (guint8)((q & 3) << (2 * ((e % 128) / 32)));
}

/* q3_K's 6-bit scale of sub-block i: low nibbles in bytes 0..7, high bit pairs in
 * bytes 8..11. */
static int
q3_k_scale (const guint8 *scales, int i)
{
  int low = (scales[i % 8] >> (4 * (i / 8))) & 15;
  int high = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
  return low | high << 4;
}

static void
put_q3_k_scale (guint8 *scales, int i, int s)
{
  scales[i % 8] |= (guint8)((s & 15) << (4 * (i / 8)));
  scales[8 + i % 4] |= (guint8)(((s >> 4) & 3) << (2 * (i / 4)));
}

/* q4_K/q5_K's 6-bit scale and min of sub-block j (ggml's get_scale_min_k4): for
 * j < 4 the low six bits of bytes j and j + 4; for j >= 4 a nibble each of byte j + 4
 * and the top two bits of bytes j - 4 and j. */
static void
k4_scale_min (const guint8 *q, int j, int *sc, int *m)
{
  if (j < 4)
    {
      *sc = q[j] & 63;
      *m = q[j + 4] & 63;
    }
  else
    {
      *sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
      *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void
put_k4_scale_min (guint8 *q, int j, int sc, int m)
{
  if (j < 4)
    {
      q[j] |= (guint8)sc;
      q[j + 4] |= (guint8)m;
    }
  else
    {
      q[j + 4] |= (guint8)((sc & 15) | (m & 15) << 4);
      q[j - 4] |= (guint8)((sc >> 4) << 6);
      q[j] |= (guint8)((m >> 4) << 6);
    }
}

/* q4_K/q5_K: element e's low nibble is in byte 32 * (e / 64) + e % 32 of qs. */
static int
k4_nibble (const guint8 *qs, int e)
{
  return (qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) & 1))) & 15;
}

static void
put_k4_nibble (guint8 *qs, int e, int q)
{
  qs[32 * (e / 64) + e % 32] |= (guint8)((q & 15) << (4 * ((e / 32) & 1)));
}

/* q6_K: element e's low nibble is in ql[64 * h + 32 * (g & 1) + l] at bit 4 * (g >> 1),
 * its top two bits in qh[32 * h + l] at bit 2 * g (h = e / 128, g = (e % 128) / 32,
 * l = e % 32). */
static int
q6_k_value (const guint8 *ql, const guint8 *qh, int e)
{
  int h = e / 128, g = (e % 128) / 32, l = e % 32;
  int low = (ql[64 * h + 32 * (g & 1) + l] >> (4 * (g >> 1))) & 15;
  int high = (qh[32 * h + l] >> (2 * g)) & 3;
  return low | high << 4;
}

static void
put_q6_k_value (guint8 *ql, guint8 *qh, int e, int q)
{
  int h = e / 128, g = (e % 128) / 32, l = e % 32;
  ql[64 * h + 32 * (g & 1) + l] |= (guint8)((q & 15) << (4 * (g >> 1)));
  qh[32 * h + l] |= (guint8)(((q >> 4) & 3) << (2 * g));
}

static void
dequant_k (AtType type, const guint8 *b, float *y)
{
  for (int e = 0; e < QK_K; e++)
    switch (type)
      {
      case AT_TYPE_Q2_K:
        {
          int sc = b[e / 16];
          float dl = get_half (b + 80) * (float)(sc & 15);
          float ml = get_half (b + 82) * (float)(sc >> 4);
          y[e] = dl * (float)q2_bits (b + 16, e) - ml;
          break;
        }
      case AT_TYPE_Q3_K:
        {
          float dl = get_half (b + 108) * (float)(q3_k_scale (b + 96, e / 16) - 32);
          int high = (b[e % 32] >> (e / 32)) & 1;
          y[e] = dl * (float)(q2_bits (b + 32, e) - (high ? 0 : 4));
          break;
        }
      case AT_TYPE_Q4_K:
      case AT_TYPE_Q5_K:
        {
          int sc, m, q;
          k4_scale_min (b + 4, e / 32, &sc, &m);
          if (type == AT_TYPE_Q4_K)
            q = k4_nibble (b + 16, e);
          else
            q = k4_nibble (b + 48, e) + (((b[16 + e % 32] >> (e / 32)) & 1) ? 16 : 0);
          y[e] = get_half (b) * (float)sc * (float)q - get_half (b + 2) * (float)m;
          break;
        }
      case AT_TYPE_Q6_K:
        y[e] = get_half (b + 208) * (float)(gint8)b[192 + e / 16]
               * (float)(q6_k_value (b, b + 128, e) - 32);
        break;
      default:
        g_assert_not_reached ();
      }
}

/* Sub-block scales and mins are found in float, then coded relative to the
 * super-block's d and dmin; the elements are coded with the decoded scales. */
static void
quant_k (AtType type, const float *x, guint8 *b)
{
  const AtTypeInfo *info = at_type_info (type);
  int sub = type == AT_TYPE_Q4_K || type == AT_TYPE_Q5_K ? 32 : 16;
  int n_sub = QK_K / sub;
  float scale[16], min[16], max_scale = 0, max_min = 0;

  memset (b, 0, info->type_size);
  for (int s = 0; s < n_sub; s++)
    {
      const float *xs = x + s * sub;
      float lo, hi;

      min_max (xs, sub, &lo, &hi);
      lo = MIN (lo, 0.0f);
      switch (type)
        {
        case AT_TYPE_Q2_K:
          scale[s] = (hi - lo) / 3;
          min[s] = -lo;
          break;
        case AT_TYPE_Q3_K:
          scale[s] = max_abs_signed (xs, sub) / -4;
          break;
        case AT_TYPE_Q4_K:
          scale[s] = (hi - lo) / 15;
          min[s] = -lo;
          break;
        case AT_TYPE_Q5_K:
          scale[s] = (hi - lo) / 31;
          min[s] = -lo;
          break;
        case AT_TYPE_Q6_K:
          scale[s] = max_abs_signed (xs, sub) / -32;
          break;
        default:
          g_assert_not_reached ();
        }
      max_scale = MAX (max_scale, fabsf (scale[s]));
      if (type != AT_TYPE_Q3_K && type != AT_TYPE_Q6_K)
        max_min = MAX (max_min, min[s]);
    }

  switch (type)
    {
    case AT_TYPE_Q2_K:
      {
        float d = put_half (b + 80, max_scale / 15), dmin = put_half (b + 82, max_min / 15);
        for (int s = 0; s < 16; s++)
          {
            int sc = clamp_round (scale[s] * inverse (d), 0, 15);
            int m = clamp_round (min[s] * inverse (dmin), 0, 15);
            float id = inverse (d * (float)sc), ml = dmin * (float)m;
            b[s] = (guint8)(sc | m << 4);
            for (int e = s * 16; e < s * 16 + 16; e++)
              put_q2_bits (b + 16, e, clamp_round ((x[e] + ml) * id, 0, 3));
          }
        break;
      }
    case AT_TYPE_Q3_K:
      {
        float d = put_half (b + 108, max_scale / 31);
        for (int s = 0; s < 16; s++)
          {
            int sc = clamp_round (scale[s] * inverse (d), -32, 31);
            float id = inverse (d * (float)sc);
            put_q3_k_scale (b + 96, s, sc + 32);
            for (int e = s * 16; e < s * 16 + 16; e++)
              {
                int u = clamp_round (x[e] * id, -4, 3) + 4;
                put_q2_bits (b + 32, e, u & 3);
                b[e % 32] |= (guint8)((u >> 2) << (e / 32));
              }
          }
        break;
      }
    case AT_TYPE_Q4_K:
    case AT_TYPE_Q5_K:
      {
        float d = put_half (b, max_scale / 63), dmin = put_half (b + 2, max_min / 63);
        int top = type == AT_TYPE_Q4_K ? 15 : 31;
        for (int s = 0; s < 8; s++)
          {
            int sc = clamp_round (scale[s] * inverse (d), 0, 63);
            int m = clamp_round (min[s] * inverse (dmin), 0, 63);
            float id = inverse (d * (float)sc), ml = dmin * (float)m;
            put_k4_scale_min (b + 4, s, sc, m);
            for (int e = s * 32; e < s * 32 + 32; e++)
              {
                int q = clamp_round ((x[e] + ml) * id, 0, top);
                if (type == AT_TYPE_Q4_K)
                  put_k4_nibble (b + 16, e, q);
                else
                  {
                    put_k4_nibble (b + 48, e, q);
                    b[16 + e % 32] |= (guint8)((q >> 4) << (e / 32));
                  }
              }
          }
        break;
      }
    case AT_TYPE_Q6_K:
      {
        float d = put_half (b + 208, max_scale / 127);
        for (int s = 0; s < 16; s++)
          {
            int sc = clamp_round (scale[s] * inverse (d), -128, 127);
            float id = inverse (d * (float)sc);
            b[192 + s] = (guint8)(gint8)sc;
            for (int e = s * 16; e < s * 16 + 16; e++)
              put_q6_k_value (b, b + 128, e, clamp_round (x[e] * id, -32, 31) + 32);
          }
        break;
      }
    default:
      g_assert_not_reached ();
    }
}

static gboolean
is_k_quant (AtType type)
{
  return type == AT_TYPE_Q2_K || type == AT_TYPE_Q3_K || type == AT_TYPE_Q4_K
         || type == AT_TYPE_Q5_K || type == AT_TYPE_Q6_K;
}

static gboolean
is_block_32 (AtType type)
{
  return type == AT_TYPE_Q4_0 || type == AT_TYPE_Q4_1 || type == AT_TYPE_Q5_0
         || type == AT_TYPE_Q5_1 || type == AT_TYPE_Q8_0;
}

gboolean
at_ref_quant_quantize_row (AtType type, const float *src, void *dst, gint64 n)
{
  const AtTypeInfo *info = at_type_info (type);
  guint8 *out = dst;

  if (!is_k_quant (type) && !is_block_32 (type))
    return FALSE;
  g_return_val_if_fail (n % info->block_size == 0, FALSE);
  for (gint64 i = 0; i < n / info->block_size; i++)
    {
      if (is_k_quant (type))
        quant_k (type, src + i * QK_K, out + i * info->type_size);
      else
        quant_q32 (type, src + i * 32, out + i * info->type_size);
    }
  return TRUE;
}

gboolean
at_ref_quant_dequantize_row (AtType type, const void *src, float *dst, gint64 n)
{
  const AtTypeInfo *info = at_type_info (type);
  const guint8 *in = src;

  if (!is_k_quant (type) && !is_block_32 (type))
    return FALSE;
  g_return_val_if_fail (n % info->block_size == 0, FALSE);
  for (gint64 i = 0; i < n / info->block_size; i++)
    {
      if (is_k_quant (type))
        dequant_k (type, in + i * info->type_size, dst + i * QK_K);
      else
        dequant_q32 (type, in + i * info->type_size, dst + i * 32);
    }
  return TRUE;
}

void
at_ref_get_rows (AtType type, const void *table, gsize row_bytes, gint64 ne0, gint64 n_rows,
                 const gint32 *ids, gint64 n, float *dst)
{
  for (gint64 i = 0; i < n; i++)
    {
      if (ids[i] < 0 || ids[i] >= n_rows)
        memset (dst + i * ne0, 0, (gsize)ne0 * sizeof (float));
      else
        at_ref_dequantize_row (type, (const guint8 *)table + (gsize)ids[i] * row_bytes,
                               dst + i * ne0, ne0);
    }
}
