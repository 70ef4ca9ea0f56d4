#include <string.h>

#include "ref/at-ref.h"
#include "ref/at-ref-quant.h"

static guint32
float_bits (float f)
{
  guint32 u;
  memcpy (&u, &f, 4);
  return u;
}

static float
bits_float (guint32 u)
{
  float f;
  memcpy (&f, &u, 4);
  return f;
}

/* IEEE binary16 with round-to-nearest-even, subnormals, infinities and NaN. */
guint16
at_fp32_to_fp16 (float f)
{
  guint32 x = float_bits (f);
  guint32 sign = (x >> 16) & 0x8000;
  guint32 abs_x = x & 0x7fffffff;

  if (abs_x >= 0x7f800000) /* Inf or NaN */
    return (guint16) (sign | 0x7c00 | (abs_x > 0x7f800000 ? 0x200 : 0));
  if (abs_x >= 0x477ff000) /* rounds to >= 65520: overflow */
    return (guint16) (sign | 0x7c00);
  if (abs_x < 0x38800000) /* below the smallest normal half: subnormal or zero */
    {
      /* Add 0.5 (in half-subnormal units) and let the float unit round. */
      float v = bits_float (abs_x) + 0.5f;
      return (guint16) (sign | (float_bits (v) - 0x3f000000));
    }
  guint32 mantissa_odd = (abs_x >> 13) & 1;
  abs_x += 0xc8000fff + mantissa_odd; /* rebias exponent (-112 << 23) and round */
  return (guint16) (sign | (abs_x >> 13));
}

float
at_fp16_to_fp32 (guint16 h)
{
  guint32 sign = (guint32) (h & 0x8000) << 16;
  guint32 exponent = (h >> 10) & 0x1f;
  guint32 mantissa = h & 0x3ff;

  if (exponent == 0x1f)
    return bits_float (sign | 0x7f800000 | (mantissa << 13));
  if (exponent == 0)
    {
      float v = (float) mantissa * (1.0f / 16777216.0f); /* mantissa * 2^-24 */
      return sign ? -v : v;
    }
  return bits_float (sign | ((exponent + 112) << 23) | (mantissa << 13));
}

guint16
at_fp32_to_bf16 (float f)
{
  guint32 x = float_bits (f);

  if ((x & 0x7fffffff) > 0x7f800000) /* NaN stays NaN */
    return (guint16) ((x >> 16) | 0x40);
  return (guint16) ((x + 0x7fff + ((x >> 16) & 1)) >> 16);
}

float
at_bf16_to_fp32 (guint16 h)
{
  return bits_float ((guint32) h << 16);
}

gboolean
at_ref_quantize_row (AtType type, const float *src, void *dst, gint64 n)
{
  switch (type)
    {
    case AT_TYPE_F32:
      memcpy (dst, src, (gsize) n * 4);
      return TRUE;
    case AT_TYPE_I32:
      for (gint64 i = 0; i < n; i++)
        ((gint32 *) dst)[i] = (gint32) src[i];
      return TRUE;
    case AT_TYPE_F16:
      for (gint64 i = 0; i < n; i++)
        ((guint16 *) dst)[i] = at_fp32_to_fp16 (src[i]);
      return TRUE;
    case AT_TYPE_BF16:
      for (gint64 i = 0; i < n; i++)
        ((guint16 *) dst)[i] = at_fp32_to_bf16 (src[i]);
      return TRUE;
    default:
      return at_ref_quant_quantize_row (type, src, dst, n);
    }
}

gboolean
at_ref_dequantize_row (AtType type, const void *src, float *dst, gint64 n)
{
  switch (type)
    {
    case AT_TYPE_F32:
      memcpy (dst, src, (gsize) n * 4);
      return TRUE;
    case AT_TYPE_I32:
      for (gint64 i = 0; i < n; i++)
        dst[i] = (float) ((const gint32 *) src)[i];
      return TRUE;
    case AT_TYPE_F16:
      for (gint64 i = 0; i < n; i++)
        dst[i] = at_fp16_to_fp32 (((const guint16 *) src)[i]);
      return TRUE;
    case AT_TYPE_BF16:
      for (gint64 i = 0; i < n; i++)
        dst[i] = at_bf16_to_fp32 (((const guint16 *) src)[i]);
      return TRUE;
    default:
      return at_ref_quant_dequantize_row (type, src, dst, n);
    }
}
