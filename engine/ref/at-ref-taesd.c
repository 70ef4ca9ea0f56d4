/* at-ref-taesd.c: the TAESD decoder on the CPU, op by op as the GPU runs it. */
#include "ref/at-ref-taesd.h"

#include <string.h>

#include "ref/at-ref-elementwise.h"
#include "ref/at-ref-matmul.h"
#include "ref/at-ref-norm.h"
#include "ref/at-ref.h"

static float *
read_floats (const AtSafetensorsTensor *t)
{
  float *values = g_new (float, t->n_elements);

  at_ref_dequantize_row (t->type, t->data, values, t->n_elements);
  return values;
}

/* dst [w, h, c_out] = the 3x3 conv (padding 1) of x [w, h, c_in]. */
static void
conv (const AtTaesdConv *c, const float *x, gint64 w, gint64 h, float *dst)
{
  g_autofree float *weight = read_floats (c->weight);
  g_autofree float *bias = c->bias != NULL ? read_floats (c->bias) : NULL;
  const gint64 x_ne[4] = { w, h, c->weight->ne[2], 1 };

  at_ref_conv2d (weight, c->weight->ne, bias, x, x_ne, dst, 1, 1);
}

void
at_ref_taesd_decode (const AtTaesdFile *file, const float *latent, gint64 width, gint64 height,
                     float *rgb)
{
  const gint64 n = 64 * width * height * file->width;
  g_autofree float *x = g_new (float, n), *a = g_new (float, n), *b = g_new (float, n);
  gint64 w = width, h = height;
  int block = 0;

  at_ref_scale (latent, w * h * 4, 1.0f / 3.0f, 0.0f, a);
  at_ref_unary (AT_UNARY_TANH, a, w * h * 4, a);
  at_ref_scale (a, w * h * 4, 3.0f, 0.0f, a);
  conv (&file->conv_in, a, w, h, x);
  at_ref_unary (AT_UNARY_RELU, x, w * h * file->width, x);
  for (int stage = 0; stage <= AT_TAESD_N_UPSAMPLES; stage++)
    {
      for (int i = 0; i < at_taesd_blocks_per_stage[stage]; i++, block++)
        {
          const gint64 m = w * h * file->width;
          const gint64 ne[4] = { w, h, file->width, 1 };

          conv (&file->blocks[block][0], x, w, h, a);
          at_ref_unary (AT_UNARY_RELU, a, m, a);
          conv (&file->blocks[block][1], a, w, h, b);
          at_ref_unary (AT_UNARY_RELU, b, m, b);
          conv (&file->blocks[block][2], b, w, h, a);
          at_ref_add (a, ne, x, ne, a);
          at_ref_unary (AT_UNARY_RELU, a, m, x);
        }
      if (stage < AT_TAESD_N_UPSAMPLES)
        {
          const gint64 ne[4] = { w, h, file->width, 1 };

          at_ref_upscale_nearest (x, ne, 2, a);
          w *= 2;
          h *= 2;
          conv (&file->upsample[stage], a, w, h, x);
        }
    }
  conv (&file->conv_out, x, w, h, rgb);
  for (gint64 i = 0; i < w * h * 3; i++)
    rgb[i] = CLAMP (rgb[i], 0.0f, 1.0f);
}
