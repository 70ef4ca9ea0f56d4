/* at-taesd.c: the TAESD decoder's weights and forward pass on the GPU. */
#include "image/at-taesd.h"

#include <string.h>

#include "at-error.h"
#include "ops/at-ops-elementwise.h"
#include "ops/at-ops-matmul.h"
#include "ops/at-ops-norm.h"
#include "ref/at-ref.h"

#define LATENT_CHANNELS 4
/* TAESD's Clamp module: tanh (x / 3) * 3 bounds the latent softly to (-3, 3). */
#define LATENT_BOUND 3.0f

const int at_taesd_blocks_per_stage[AT_TAESD_N_UPSAMPLES + 1] = { 3, 3, 3, 1 };

/* --- Tensors of the file ----------------------------------------------------------- */

/* Module `module` (+ suffix) as a 3x3 conv c_in -> c_out, with or without a bias. */
static gboolean
find_conv (AtSafetensors *st, int module, const char *suffix, gint64 c_in, gint64 c_out,
           gboolean with_bias, AtTaesdConv *conv, GError **error)
{
  g_autofree char *weight = g_strdup_printf ("%d%s.weight", module, suffix);
  g_autofree char *bias = g_strdup_printf ("%d%s.bias", module, suffix);
  const AtSafetensorsTensor *w = at_safetensors_lookup (st, weight);
  const AtSafetensorsTensor *b = at_safetensors_lookup (st, bias);

  if (w == NULL || (with_bias && b == NULL))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: tensor '%s' is missing",
                   at_safetensors_get_name (st), w == NULL ? weight : bias);
      return FALSE;
    }
  if (w->n_dims != 4 || w->ne[0] != 3 || w->ne[1] != 3 || w->ne[2] != c_in || w->ne[3] != c_out
      || (with_bias && (b->n_dims != 1 || b->ne[0] != c_out)))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   "%s: module '%d%s' should be a 3x3 conv from %" G_GINT64_FORMAT
                   " to %" G_GINT64_FORMAT " channels%s",
                   at_safetensors_get_name (st), module, suffix, c_in, c_out,
                   with_bias ? " with a bias" : "");
      return FALSE;
    }
  conv->weight = w;
  conv->bias = with_bias ? b : NULL;
  return at_safetensors_tensor_check_supported (st, w, error)
         && (!with_bias || at_safetensors_tensor_check_supported (st, b, error));
}

gboolean
at_taesd_file_init (AtTaesdFile *file, AtSafetensors *st, GError **error)
{
  const AtSafetensorsTensor *first = at_safetensors_lookup (st, "1.weight");
  int module = 3, block = 0;
  gint64 w;

  memset (file, 0, sizeof *file);
  if (first == NULL || first->n_dims != 4 || first->ne[0] != 3 || first->ne[1] != 3
      || first->ne[2] != LATENT_CHANNELS)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   "%s: not a TAESD decoder ('1.weight' should be a 3x3 conv from %d latent "
                   "channels)",
                   at_safetensors_get_name (st), LATENT_CHANNELS);
      return FALSE;
    }
  w = file->width = first->ne[3];
  if (!find_conv (st, 1, "", LATENT_CHANNELS, w, TRUE, &file->conv_in, error))
    return FALSE;
  for (int stage = 0; stage <= AT_TAESD_N_UPSAMPLES; stage++)
    {
      for (int i = 0; i < at_taesd_blocks_per_stage[stage]; i++, block++, module++)
        for (int c = 0; c < 3; c++)
          {
            g_autofree char *suffix = g_strdup_printf (".conv.%d", 2 * c);

            if (!find_conv (st, module, suffix, w, w, TRUE, &file->blocks[block][c], error))
              return FALSE;
          }
      if (stage < AT_TAESD_N_UPSAMPLES)
        {
          /* The upsample module has no weights; the conv after it has no bias. */
          if (!find_conv (st, module + 1, "", w, w, FALSE, &file->upsample[stage], error))
            return FALSE;
          module += 2;
        }
    }
  return find_conv (st, module, "", w, 3, TRUE, &file->conv_out, error);
}

/* --- Weights on the GPU ------------------------------------------------------------ */

typedef struct
{
  AtTensor weight, bias; /* bias.buffer NULL where there is none */
} Conv;

struct _AtTaesd
{
  AtGpu *gpu;
  gint64 width;
  Conv conv_in, blocks[AT_TAESD_N_BLOCKS][3], upsample[AT_TAESD_N_UPSAMPLES], conv_out;
  GPtrArray *weights; /* AtGpuBuffer, one per tensor */
  AtBatch *batch;
  /* Activations for latents of act_w x act_h; three of the largest size, ping-ponged. */
  gint64 act_w, act_h;
  AtGpuBuffer *act[3];
  AtGpuBuffer *latent;   /* upload */
  AtGpuBuffer *readback; /* rgb */
};

/* Uploads t: conv kernels in their type where conv2d takes it (F32, F16), else as F32. */
static gboolean
load_tensor (AtTaesd *taesd, const AtSafetensorsTensor *t, gboolean as_f32, AtTensor *out,
             GError **error)
{
  const AtType type = as_f32 || t->type == AT_TYPE_BF16 ? AT_TYPE_F32 : t->type;
  const gint64 ne[4] = { t->ne[0], t->n_dims > 1 ? t->ne[1] : 1, t->n_dims > 2 ? t->ne[2] : 1,
                         t->n_dims > 3 ? t->ne[3] : 1 };
  const gsize size = at_tensor_contiguous_size (type, ne[0], ne[1], ne[2], ne[3]);
  g_autofree float *converted = NULL;
  const void *data = t->data;
  AtGpuBuffer *buffer;

  if (type != t->type)
    {
      converted = g_new (float, t->n_elements);
      at_ref_dequantize_row (t->type, t->data, converted, t->n_elements);
      data = converted;
    }
  if (!(buffer = at_gpu_buffer_new (taesd->gpu, size, AT_GPU_MEMORY_DEVICE, error)))
    {
      g_prefix_error (error, "tensor '%s': ", t->name);
      return FALSE;
    }
  g_ptr_array_add (taesd->weights, buffer);
  *out = at_tensor_make (buffer, 0, type, ne[0], ne[1], ne[2], ne[3]);
  return at_gpu_upload (taesd->gpu, buffer, 0, data, size, error);
}

static gboolean
load_conv (AtTaesd *taesd, const AtTaesdConv *f, Conv *conv, GError **error)
{
  return load_tensor (taesd, f->weight, FALSE, &conv->weight, error)
         && (f->bias == NULL || load_tensor (taesd, f->bias, TRUE, &conv->bias, error));
}

AtTaesd *
at_taesd_new_from_safetensors (AtGpu *gpu, AtSafetensors *st, GError **error)
{
  g_autoptr (AtTaesd) taesd = g_new0 (AtTaesd, 1);
  AtTaesdFile file;
  gboolean ok;

  if (!at_taesd_file_init (&file, st, error))
    return NULL;
  taesd->gpu = gpu;
  taesd->width = file.width;
  taesd->weights = g_ptr_array_new_with_free_func ((GDestroyNotify)at_gpu_buffer_free);
  ok = load_conv (taesd, &file.conv_in, &taesd->conv_in, error)
       && load_conv (taesd, &file.conv_out, &taesd->conv_out, error);
  for (int b = 0; ok && b < AT_TAESD_N_BLOCKS; b++)
    for (int c = 0; ok && c < 3; c++)
      ok = load_conv (taesd, &file.blocks[b][c], &taesd->blocks[b][c], error);
  for (int u = 0; ok && u < AT_TAESD_N_UPSAMPLES; u++)
    ok = load_conv (taesd, &file.upsample[u], &taesd->upsample[u], error);
  if (!ok)
    return NULL;
  taesd->batch = at_batch_new (gpu);
  return g_steal_pointer (&taesd);
}

AtTaesd *
at_taesd_new (AtGpu *gpu, const char *path, GError **error)
{
  g_autoptr (AtSafetensors) st = at_safetensors_open (path, error);

  return st != NULL ? at_taesd_new_from_safetensors (gpu, st, error) : NULL;
}

static void
free_activations (AtTaesd *taesd)
{
  for (guint i = 0; i < G_N_ELEMENTS (taesd->act); i++)
    g_clear_pointer (&taesd->act[i], at_gpu_buffer_free);
  g_clear_pointer (&taesd->latent, at_gpu_buffer_free);
  g_clear_pointer (&taesd->readback, at_gpu_buffer_free);
  taesd->act_w = taesd->act_h = 0;
}

void
at_taesd_free (AtTaesd *taesd)
{
  if (taesd == NULL)
    return;
  g_clear_pointer (&taesd->batch, at_batch_free);
  free_activations (taesd);
  g_clear_pointer (&taesd->weights, g_ptr_array_unref);
  g_free (taesd);
}

/* --- The forward pass -------------------------------------------------------------- */

static gboolean
alloc_activations (AtTaesd *taesd, gint64 width, gint64 height, GError **error)
{
  const guint64 largest = (guint64)(8 * width) * (8 * height) * taesd->width * sizeof (float);
  const gsize latent = (gsize)width * height * LATENT_CHANNELS * sizeof (float);
  const gsize rgb = (gsize)(8 * width) * (8 * height) * 3 * sizeof (float);

  if (taesd->act_w == width && taesd->act_h == height)
    return TRUE;
  free_activations (taesd);
  if (largest > at_gpu_get_info (taesd->gpu)->max_storage_buffer_range)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "a %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " latent is too large for a "
                   "TAESD preview on this device",
                   width, height);
      return FALSE;
    }
  for (guint i = 0; i < G_N_ELEMENTS (taesd->act); i++)
    if (!(taesd->act[i] = at_gpu_buffer_new (taesd->gpu, largest, AT_GPU_MEMORY_DEVICE, error)))
      return FALSE;
  if (!(taesd->latent = at_gpu_buffer_new (taesd->gpu, latent, AT_GPU_MEMORY_UPLOAD, error))
      || !(taesd->readback = at_gpu_buffer_new (taesd->gpu, rgb, AT_GPU_MEMORY_READBACK, error)))
    return FALSE;
  taesd->act_w = width;
  taesd->act_h = height;
  return TRUE;
}

/* [w, h, c] F32 at the start of buffer. */
static AtTensor
image (AtGpuBuffer *buffer, gint64 w, gint64 h, gint64 c)
{
  return at_tensor_make (buffer, 0, AT_TYPE_F32, w, h, c, 1);
}

static void
conv (AtBatch *batch, const Conv *c, const AtTensor *x, const AtTensor *dst)
{
  at_op_conv2d (batch, &c->weight, c->bias.buffer != NULL ? &c->bias : NULL, x, dst, 1, 1);
}

/* x = ReLU (conv (ReLU (conv (ReLU (conv (x))))) + x), through the two scratch buffers;
 * the result lands in *t1, which becomes the new x. */
static void
block (AtTaesd *taesd, const Conv c[3], AtGpuBuffer **x, AtGpuBuffer **t1, AtGpuBuffer *t2,
       gint64 w, gint64 h)
{
  AtBatch *batch = taesd->batch;
  AtTensor xt = image (*x, w, h, taesd->width), a = image (*t1, w, h, taesd->width);
  AtTensor b = image (t2, w, h, taesd->width);
  AtGpuBuffer *swap;

  conv (batch, &c[0], &xt, &a);
  at_op_unary (batch, AT_UNARY_RELU, &a, &a);
  conv (batch, &c[1], &a, &b);
  at_op_unary (batch, AT_UNARY_RELU, &b, &b);
  conv (batch, &c[2], &b, &a);
  at_op_add (batch, &a, &xt, &a);
  at_op_unary (batch, AT_UNARY_RELU, &a, &a);
  swap = *x;
  *x = *t1;
  *t1 = swap;
}

gboolean
at_taesd_decode (AtTaesd *taesd, const float *latent, gint64 width, gint64 height, float *rgb,
                 GError **error)
{
  AtBatch *batch = taesd->batch;
  AtGpuBuffer *x, *t1, *t2;
  AtTensor in, xt, out;
  gint64 w = width, h = height;
  int b = 0;

  if (width < 1 || height < 1)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "TAESD: a latent of %" G_GINT64_FORMAT "x%" G_GINT64_FORMAT " is empty", width,
                   height);
      return FALSE;
    }
  if (!alloc_activations (taesd, width, height, error))
    return FALSE;
  x = taesd->act[0];
  t1 = taesd->act[1];
  t2 = taesd->act[2];
  memcpy (at_gpu_buffer_get_mapped (taesd->latent), latent,
          (gsize)w * h * LATENT_CHANNELS * sizeof (float));
  in = image (taesd->latent, w, h, LATENT_CHANNELS);
  xt = image (t1, w, h, LATENT_CHANNELS);
  at_op_scale (batch, &in, &xt, 1.0f / LATENT_BOUND, 0.0f);
  at_op_unary (batch, AT_UNARY_TANH, &xt, &xt);
  at_op_scale (batch, &xt, &xt, LATENT_BOUND, 0.0f);
  out = image (x, w, h, taesd->width);
  conv (batch, &taesd->conv_in, &xt, &out);
  at_op_unary (batch, AT_UNARY_RELU, &out, &out);
  for (int stage = 0; stage <= AT_TAESD_N_UPSAMPLES; stage++)
    {
      for (int i = 0; i < at_taesd_blocks_per_stage[stage]; i++)
        block (taesd, taesd->blocks[b++], &x, &t1, t2, w, h);
      if (stage < AT_TAESD_N_UPSAMPLES)
        {
          AtTensor small = image (x, w, h, taesd->width);
          AtTensor big = image (t1, 2 * w, 2 * h, taesd->width);
          AtTensor y = image (t2, 2 * w, 2 * h, taesd->width);
          AtGpuBuffer *swap = x;

          at_op_upscale_nearest (batch, &small, &big, 2);
          conv (batch, &taesd->upsample[stage], &big, &y);
          x = t2;
          t2 = swap;
          w *= 2;
          h *= 2;
        }
    }
  xt = image (x, w, h, taesd->width);
  out = image (t1, w, h, 3);
  conv (batch, &taesd->conv_out, &xt, &out);
  at_batch_copy (batch, t1, 0, taesd->readback, 0, at_tensor_extent (&out));
  if (!at_batch_run (batch, error))
    return FALSE;
  memcpy (rgb, at_gpu_buffer_get_mapped (taesd->readback), (gsize)w * h * 3 * sizeof (float));
  for (gint64 i = 0; i < w * h * 3; i++)
    rgb[i] = CLAMP (rgb[i], 0.0f, 1.0f);
  return TRUE;
}
