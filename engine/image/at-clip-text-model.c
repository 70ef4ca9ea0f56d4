/* at-clip-text-model.c: the SD 1.x CLIP text encoder's weights and forward pass on the
 * GPU. */
#include "image/at-clip-text-model.h"

#include <math.h>
#include <string.h>

#include "at-error.h"
#include "ops/at-ops-attention.h"
#include "ops/at-ops-elementwise.h"
#include "ops/at-ops-matmul.h"
#include "ops/at-ops-norm.h"
#include "ops/at-ops-quant.h"
#include "ref/at-ref.h"

#define PREFIX "cond_stage_model.transformer.text_model."

/* HF CLIPTextConfig.layer_norm_eps. */
#define LN_EPS 1e-5f

/* --- Tensors of the file ----------------------------------------------------------- */

static gboolean
find_layer (AtSafetensors *st, const AtClipTextHParams *hp, gint64 il, AtClipLayerTensors *l,
            GError **error)
{
  const gint64 d = hp->n_embd, ff = hp->n_ff;
  GError *e = NULL;

#define FIND(field, name, ne0, ne1)                                                                \
  if (e == NULL)                                                                                   \
    {                                                                                              \
      g_autofree char *tensor_name                                                                 \
          = g_strdup_printf (PREFIX "encoder.layers.%" G_GINT64_FORMAT "." name, il);              \
      l->field = at_sd_checkpoint_find_tensor (st, tensor_name, ne0, ne1, &e);                     \
    }
  FIND (ln1_w, "layer_norm1.weight", d, 0);
  FIND (ln1_b, "layer_norm1.bias", d, 0);
  FIND (q_w, "self_attn.q_proj.weight", d, d);
  FIND (q_b, "self_attn.q_proj.bias", d, 0);
  FIND (k_w, "self_attn.k_proj.weight", d, d);
  FIND (k_b, "self_attn.k_proj.bias", d, 0);
  FIND (v_w, "self_attn.v_proj.weight", d, d);
  FIND (v_b, "self_attn.v_proj.bias", d, 0);
  FIND (out_w, "self_attn.out_proj.weight", d, d);
  FIND (out_b, "self_attn.out_proj.bias", d, 0);
  FIND (ln2_w, "layer_norm2.weight", d, 0);
  FIND (ln2_b, "layer_norm2.bias", d, 0);
  FIND (fc1_w, "mlp.fc1.weight", d, ff);
  FIND (fc1_b, "mlp.fc1.bias", ff, 0);
  FIND (fc2_w, "mlp.fc2.weight", ff, d);
  FIND (fc2_b, "mlp.fc2.bias", d, 0);
#undef FIND
  if (e != NULL)
    {
      g_propagate_error (error, e);
      return FALSE;
    }
  return TRUE;
}

gboolean
at_clip_text_file_init (AtClipTextFile *file, AtSafetensors *st, GError **error)
{
  const AtClipTextHParams *hp = &file->info.clip;

  memset (file, 0, sizeof *file);
  if (!at_sd_checkpoint_detect (st, &file->info, error))
    return FALSE;
  if (file->info.family != AT_SD_FAMILY_SD1)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "%s: the %s text encoder is not supported yet", at_safetensors_get_name (st),
                   at_sd_family_name (file->info.family));
      return FALSE;
    }
  if (!(file->token_embd = at_sd_checkpoint_find_tensor (
            st, PREFIX "embeddings.token_embedding.weight", hp->n_embd, hp->n_vocab, error))
      || !(file->pos_embd = at_sd_checkpoint_find_tensor (
               st, PREFIX "embeddings.position_embedding.weight", hp->n_embd, hp->n_ctx, error))
      || !(file->final_ln_w = at_sd_checkpoint_find_tensor (st, PREFIX "final_layer_norm.weight",
                                                            hp->n_embd, 0, error))
      || !(file->final_ln_b = at_sd_checkpoint_find_tensor (st, PREFIX "final_layer_norm.bias",
                                                            hp->n_embd, 0, error)))
    return FALSE;
  file->layers = g_new0 (AtClipLayerTensors, hp->n_layer);
  for (gint64 il = 0; il < hp->n_layer; il++)
    if (!find_layer (st, hp, il, &file->layers[il], error))
      {
        at_clip_text_file_clear (file);
        return FALSE;
      }
  return TRUE;
}

void
at_clip_text_file_clear (AtClipTextFile *file)
{
  g_clear_pointer (&file->layers, g_free);
}

/* --- Weights on the GPU ------------------------------------------------------------ */

typedef struct
{
  AtTensor ln1_w, ln1_b, q_w, q_b, k_w, k_b, v_w, v_b;
  AtTensor out_w, out_b, ln2_w, ln2_b, fc1_w, fc1_b, fc2_w, fc2_b;
} Layer;

struct _AtClipTextModel
{
  AtGpu *gpu;
  AtClipTextHParams hp;
  AtTensor token_embd, pos_embd, final_ln_w, final_ln_b;
  Layer *layers;
  GPtrArray *buffers; /* AtGpuBuffer: one per tensor, then the activations */
  AtBatch *batch;
  /* Activations of one window, one column per token. */
  AtGpuBuffer *x;           /* [n_embd] the residual stream */
  AtGpuBuffer *xb;          /* [n_embd] a layer's normed input, then its output */
  AtGpuBuffer *q, *k, *v;   /* [n_embd] */
  AtGpuBuffer *att;         /* [n_embd] attention output */
  AtGpuBuffer *ff;          /* [n_ff] */
  AtGpuBuffer *ids;         /* I32 [n_ctx], written by the CPU */
  AtGpuBuffer *readback;    /* [n_embd] per token, for the CPU */
};

static AtGpuBuffer *
model_buffer (AtClipTextModel *model, gsize size, AtGpuMemoryKind kind, GError **error)
{
  AtGpuBuffer *buffer = at_gpu_buffer_new (model->gpu, size, kind, error);

  if (buffer != NULL)
    g_ptr_array_add (model->buffers, buffer);
  return buffer;
}

/* Uploads t into a buffer of its own: matrices in their type (F32, F16, BF16 all feed
 * mul_mat and get_rows), everything else (vectors, the position embedding that at_op_add
 * reads) converted to F32. */
static gboolean
load_tensor (AtClipTextModel *model, const AtSafetensorsTensor *t, gboolean as_f32,
             AtTensor *out, GError **error)
{
  g_autofree float *converted = NULL;
  AtType type = as_f32 ? AT_TYPE_F32 : t->type;
  gint64 ne1 = t->n_dims == 2 ? t->ne[1] : 1;
  const void *data = t->data;
  gsize size = at_tensor_contiguous_size (type, t->ne[0], ne1, 1, 1);
  AtGpuBuffer *buffer;

  if (type != t->type)
    {
      converted = g_new (float, t->n_elements);
      at_ref_dequantize_row (t->type, t->data, converted, t->n_elements);
      data = converted;
    }
  if (!(buffer = model_buffer (model, size, AT_GPU_MEMORY_DEVICE, error)))
    {
      g_prefix_error (error, "tensor '%s': ", t->name);
      return FALSE;
    }
  *out = at_tensor_make (buffer, 0, type, t->ne[0], ne1, 1, 1);
  return at_gpu_upload (model->gpu, buffer, 0, data, size, error);
}

static gboolean
load_layer (AtClipTextModel *model, const AtClipLayerTensors *f, Layer *l, GError **error)
{
  return load_tensor (model, f->ln1_w, TRUE, &l->ln1_w, error)
         && load_tensor (model, f->ln1_b, TRUE, &l->ln1_b, error)
         && load_tensor (model, f->q_w, FALSE, &l->q_w, error)
         && load_tensor (model, f->q_b, TRUE, &l->q_b, error)
         && load_tensor (model, f->k_w, FALSE, &l->k_w, error)
         && load_tensor (model, f->k_b, TRUE, &l->k_b, error)
         && load_tensor (model, f->v_w, FALSE, &l->v_w, error)
         && load_tensor (model, f->v_b, TRUE, &l->v_b, error)
         && load_tensor (model, f->out_w, FALSE, &l->out_w, error)
         && load_tensor (model, f->out_b, TRUE, &l->out_b, error)
         && load_tensor (model, f->ln2_w, TRUE, &l->ln2_w, error)
         && load_tensor (model, f->ln2_b, TRUE, &l->ln2_b, error)
         && load_tensor (model, f->fc1_w, FALSE, &l->fc1_w, error)
         && load_tensor (model, f->fc1_b, TRUE, &l->fc1_b, error)
         && load_tensor (model, f->fc2_w, FALSE, &l->fc2_w, error)
         && load_tensor (model, f->fc2_b, TRUE, &l->fc2_b, error);
}

static gboolean
alloc_activations (AtClipTextModel *model, GError **error)
{
  const AtClipTextHParams *hp = &model->hp;
  const gsize cols = (gsize)hp->n_ctx * 4;

#define ACTIVATION(field, rows, kind)                                                              \
  if (!(model->field = model_buffer (model, (rows)*cols, kind, error)))                            \
    return FALSE;
  ACTIVATION (x, hp->n_embd, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (xb, hp->n_embd, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (q, hp->n_embd, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (k, hp->n_embd, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (v, hp->n_embd, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (att, hp->n_embd, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (ff, hp->n_ff, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (ids, 1, AT_GPU_MEMORY_UPLOAD);
  ACTIVATION (readback, hp->n_embd, AT_GPU_MEMORY_READBACK);
#undef ACTIVATION
  return TRUE;
}

AtClipTextModel *
at_clip_text_model_new (AtGpu *gpu, AtSafetensors *st, GError **error)
{
  g_autoptr (AtClipTextModel) model = g_new0 (AtClipTextModel, 1);
  AtClipTextFile file;
  gboolean ok;

  if (!at_clip_text_file_init (&file, st, error))
    return NULL;
  model->gpu = gpu;
  model->hp = file.info.clip;
  model->buffers = g_ptr_array_new_with_free_func ((GDestroyNotify)at_gpu_buffer_free);
  model->layers = g_new0 (Layer, model->hp.n_layer);
  ok = load_tensor (model, file.token_embd, FALSE, &model->token_embd, error)
       && load_tensor (model, file.pos_embd, TRUE, &model->pos_embd, error)
       && load_tensor (model, file.final_ln_w, TRUE, &model->final_ln_w, error)
       && load_tensor (model, file.final_ln_b, TRUE, &model->final_ln_b, error);
  for (gint64 il = 0; ok && il < model->hp.n_layer; il++)
    ok = load_layer (model, &file.layers[il], &model->layers[il], error);
  at_clip_text_file_clear (&file);
  if (!ok || !alloc_activations (model, error))
    return NULL;
  model->batch = at_batch_new (gpu);
  return g_steal_pointer (&model);
}

void
at_clip_text_model_free (AtClipTextModel *model)
{
  if (model == NULL)
    return;
  g_clear_pointer (&model->batch, at_batch_free);
  g_free (model->layers);
  g_clear_pointer (&model->buffers, g_ptr_array_unref);
  g_free (model);
}

const AtClipTextHParams *
at_clip_text_model_get_hparams (AtClipTextModel *model)
{
  return &model->hp;
}

/* --- The forward pass -------------------------------------------------------------- */

/* [rows, n] F32 activations at the start of buffer. */
static AtTensor
act (AtGpuBuffer *buffer, gint64 rows, gint64 n)
{
  return at_tensor_make (buffer, 0, AT_TYPE_F32, rows, n, 1, 1);
}

/* dst = w x + bias. */
static void
linear (AtBatch *batch, const AtTensor *w, const AtTensor *bias, const AtTensor *x,
        const AtTensor *dst)
{
  at_op_mul_mat (batch, w, x, dst);
  at_op_add (batch, dst, bias, dst);
}

/* [n_embd, n] seen as its heads [head_dim, n, n_head], as attention reads them. */
static AtTensor
by_head (const AtTensor *t, gint64 n_head)
{
  AtTensor heads = at_tensor_make (t->buffer, t->offset, t->type, t->ne[0] / n_head, n_head,
                                   t->ne[1], 1);

  return at_tensor_permute (&heads, 0, 2, 1, 3);
}

static void
attention (AtClipTextModel *model, const Layer *l)
{
  const AtClipTextHParams *hp = &model->hp;
  const gint64 d = hp->n_embd, n = hp->n_ctx;
  AtBatch *batch = model->batch;
  AtTensor x = act (model->x, d, n), xb = act (model->xb, d, n);
  AtTensor q = act (model->q, d, n), k = act (model->k, d, n), v = act (model->v, d, n);
  AtTensor att = act (model->att, d, n);
  AtTensor qh = by_head (&q, hp->n_head), kh = by_head (&k, hp->n_head);
  AtTensor vh = by_head (&v, hp->n_head);
  AtTensor out = at_tensor_make (model->att, 0, AT_TYPE_F32, d / hp->n_head, hp->n_head, n, 1);
  AtFlashAttnParams params = { 1.0f / sqrtf ((float)(d / hp->n_head)), TRUE, 0 };

  at_op_layer_norm (batch, &x, &l->ln1_w, &l->ln1_b, &xb, LN_EPS);
  linear (batch, &l->q_w, &l->q_b, &xb, &q);
  linear (batch, &l->k_w, &l->k_b, &xb, &k);
  linear (batch, &l->v_w, &l->v_b, &xb, &v);
  at_op_flash_attn (batch, &qh, &kh, &vh, NULL, &out, &params);
  linear (batch, &l->out_w, &l->out_b, &att, &xb);
  at_op_add (batch, &x, &xb, &x);
}

static void
feed_forward (AtClipTextModel *model, const Layer *l)
{
  const AtClipTextHParams *hp = &model->hp;
  AtBatch *batch = model->batch;
  AtTensor x = act (model->x, hp->n_embd, hp->n_ctx), xb = act (model->xb, hp->n_embd, hp->n_ctx);
  AtTensor ff = act (model->ff, hp->n_ff, hp->n_ctx);

  at_op_layer_norm (batch, &x, &l->ln2_w, &l->ln2_b, &xb, LN_EPS);
  linear (batch, &l->fc1_w, &l->fc1_b, &xb, &ff);
  at_op_unary (batch, AT_UNARY_GELU_QUICK, &ff, &ff);
  linear (batch, &l->fc2_w, &l->fc2_b, &ff, &xb);
  at_op_add (batch, &x, &xb, &x);
}

gboolean
at_clip_text_model_encode (AtClipTextModel *model, const gint32 *ids, int clip_skip,
                           float *out, GError **error)
{
  const AtClipTextHParams *hp = &model->hp;
  AtTensor ids_t = at_tensor_make (model->ids, 0, AT_TYPE_I32, hp->n_ctx, 1, 1, 1);
  AtTensor x = act (model->x, hp->n_embd, hp->n_ctx), xb = act (model->xb, hp->n_embd, hp->n_ctx);

  if (clip_skip < 1 || clip_skip > hp->n_layer)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "clip skip %d: the text encoder has %" G_GINT64_FORMAT " layers", clip_skip,
                   hp->n_layer);
      return FALSE;
    }
  memcpy (at_gpu_buffer_get_mapped (model->ids), ids, hp->n_ctx * sizeof (gint32));
  at_op_get_rows (model->batch, &model->token_embd, &ids_t, &x);
  at_op_add (model->batch, &x, &model->pos_embd, &x);
  for (gint64 il = 0; il < hp->n_layer - (clip_skip - 1); il++)
    {
      attention (model, &model->layers[il]);
      feed_forward (model, &model->layers[il]);
    }
  at_op_layer_norm (model->batch, &x, &model->final_ln_w, &model->final_ln_b, &xb, LN_EPS);
  at_batch_copy (model->batch, model->xb, 0, model->readback, 0, at_tensor_extent (&xb));
  if (!at_batch_run (model->batch, error))
    return FALSE;
  memcpy (out, at_gpu_buffer_get_mapped (model->readback),
          (gsize)hp->n_ctx * hp->n_embd * sizeof (float));
  return TRUE;
}

/* --- Prompt weighting -------------------------------------------------------------- */

static double
mean (const float *z, gsize n)
{
  double sum = 0.0;

  for (gsize i = 0; i < n; i++)
    sum += z[i];
  return sum / (double)n;
}

void
at_clip_apply_weights (float *z, const float *weights, gsize n_tokens, gint64 n_embd)
{
  const gsize n = n_tokens * (gsize)n_embd;
  const double original_mean = mean (z, n);
  double new_mean;

  for (gsize t = 0; t < n_tokens; t++)
    for (gint64 i = 0; i < n_embd; i++)
      z[t * n_embd + i] *= weights[t];
  new_mean = mean (z, n);
  for (gsize i = 0; i < n; i++)
    z[i] = (float)(z[i] * (original_mean / new_mean));
}
