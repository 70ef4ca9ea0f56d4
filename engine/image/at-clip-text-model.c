/* at-clip-text-model.c: the CLIP text encoders' weights and forward pass on the GPU. */
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

#define SD1_PREFIX "cond_stage_model.transformer.text_model."
#define SD2_PREFIX "cond_stage_model.model."

/* HF CLIPTextConfig.layer_norm_eps, and PyTorch's LayerNorm default that OpenCLIP keeps. */
#define LN_EPS 1e-5f

/* --- Tensors of the file ----------------------------------------------------------- */

/* The tensor names of one family: layers are prefix + layers + N + "." + a layer name. */
typedef struct
{
  const char *prefix, *token_embd, *pos_embd, *final_ln_w, *final_ln_b, *layers;
  /* Layer tensors in the order of AtClipLayerTensors' fields; for a fused q, k, v the
   * k and v names repeat q's. */
  const char *layer[16];
} Names;

static const Names sd1_names = {
  SD1_PREFIX,
  "embeddings.token_embedding.weight",
  "embeddings.position_embedding.weight",
  "final_layer_norm.weight",
  "final_layer_norm.bias",
  "encoder.layers.",
  { "layer_norm1.weight", "layer_norm1.bias", "self_attn.q_proj.weight",
    "self_attn.q_proj.bias", "self_attn.k_proj.weight", "self_attn.k_proj.bias",
    "self_attn.v_proj.weight", "self_attn.v_proj.bias", "self_attn.out_proj.weight",
    "self_attn.out_proj.bias", "layer_norm2.weight", "layer_norm2.bias", "mlp.fc1.weight",
    "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias" },
};

static const Names sd2_names = {
  SD2_PREFIX,
  "token_embedding.weight",
  "positional_embedding",
  "ln_final.weight",
  "ln_final.bias",
  "transformer.resblocks.",
  { "ln_1.weight", "ln_1.bias", "attn.in_proj_weight", "attn.in_proj_bias",
    "attn.in_proj_weight", "attn.in_proj_bias", "attn.in_proj_weight", "attn.in_proj_bias",
    "attn.out_proj.weight", "attn.out_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias" },
};

static gboolean
find_layer (AtSafetensors *st, const Names *names, const AtClipTextHParams *hp, gboolean fused,
            gint64 il, AtClipLayerTensors *l, GError **error)
{
  const gint64 d = hp->n_embd, ff = hp->n_ff, qkv = fused ? 3 * d : d;
  /* [ne0, ne1] of each field, ne1 = 0 for vectors. */
  const gint64 shapes[16][2] = {
    { d, 0 }, { d, 0 }, { d, qkv }, { qkv, 0 }, { d, qkv }, { qkv, 0 }, { d, qkv }, { qkv, 0 },
    { d, d }, { d, 0 }, { d, 0 },   { d, 0 },   { d, ff },  { ff, 0 },  { ff, d },  { d, 0 },
  };
  const AtSafetensorsTensor **fields[16] = {
    &l->ln1_w, &l->ln1_b, &l->q_w,   &l->q_b,   &l->k_w,   &l->k_b,   &l->v_w,   &l->v_b,
    &l->out_w, &l->out_b, &l->ln2_w, &l->ln2_b, &l->fc1_w, &l->fc1_b, &l->fc2_w, &l->fc2_b,
  };

  for (guint i = 0; i < G_N_ELEMENTS (fields); i++)
    {
      g_autofree char *name = g_strdup_printf ("%s%s%" G_GINT64_FORMAT ".%s", names->prefix,
                                               names->layers, il, names->layer[i]);

      if (!(*fields[i] = at_sd_checkpoint_find_tensor (st, name, shapes[i][0], shapes[i][1],
                                                       error)))
        return FALSE;
    }
  return TRUE;
}

static const AtSafetensorsTensor *
find_top (AtSafetensors *st, const Names *names, const char *name, gint64 ne0, gint64 ne1,
          GError **error)
{
  g_autofree char *full = g_strconcat (names->prefix, name, NULL);

  return at_sd_checkpoint_find_tensor (st, full, ne0, ne1, error);
}

gboolean
at_clip_text_file_init (AtClipTextFile *file, AtSafetensors *st, GError **error)
{
  const AtClipTextHParams *hp = &file->info.clip;
  const Names *names;

  memset (file, 0, sizeof *file);
  if (!at_sd_checkpoint_detect (st, &file->info, error))
    return FALSE;
  file->qkv_fused = file->info.family == AT_SD_FAMILY_SD2;
  file->activation = file->qkv_fused ? AT_UNARY_GELU_ERF : AT_UNARY_GELU_QUICK;
  names = file->qkv_fused ? &sd2_names : &sd1_names;
  if (!(file->token_embd = find_top (st, names, names->token_embd, hp->n_embd, hp->n_vocab,
                                     error))
      || !(file->pos_embd = find_top (st, names, names->pos_embd, hp->n_embd, hp->n_ctx, error))
      || !(file->final_ln_w = find_top (st, names, names->final_ln_w, hp->n_embd, 0, error))
      || !(file->final_ln_b = find_top (st, names, names->final_ln_b, hp->n_embd, 0, error)))
    return FALSE;
  file->layers = g_new0 (AtClipLayerTensors, hp->n_layer);
  for (gint64 il = 0; il < hp->n_layer; il++)
    if (!find_layer (st, names, hp, file->qkv_fused, il, &file->layers[il], error))
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
  AtUnaryOp activation;
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

/* Uploads part `part` of n_parts equal parts of t (split along its outermost dimension)
 * into a buffer of its own: matrices in their type (F32, F16, BF16 all feed mul_mat and
 * get_rows), everything else (vectors, the position embedding that at_op_add reads)
 * converted to F32. */
static gboolean
load_part (AtClipTextModel *model, const AtSafetensorsTensor *t, guint part, guint n_parts,
           gboolean as_f32, AtTensor *out, GError **error)
{
  g_autofree float *converted = NULL;
  AtType type = as_f32 ? AT_TYPE_F32 : t->type;
  const gint64 ne0 = t->n_dims == 2 ? t->ne[0] : t->ne[0] / n_parts;
  const gint64 ne1 = t->n_dims == 2 ? t->ne[1] / n_parts : 1;
  const gint64 n = ne0 * ne1;
  const guint8 *data = t->data + part * (t->size / n_parts);
  gsize size = at_tensor_contiguous_size (type, ne0, ne1, 1, 1);
  AtGpuBuffer *buffer;

  if (type != t->type)
    {
      converted = g_new (float, n);
      at_ref_dequantize_row (t->type, data, converted, n);
      data = (const guint8 *)converted;
    }
  if (!(buffer = model_buffer (model, size, AT_GPU_MEMORY_DEVICE, error)))
    {
      g_prefix_error (error, "tensor '%s': ", t->name);
      return FALSE;
    }
  *out = at_tensor_make (buffer, 0, type, ne0, ne1, 1, 1);
  return at_gpu_upload (model->gpu, buffer, 0, data, size, error);
}

static gboolean
load_tensor (AtClipTextModel *model, const AtSafetensorsTensor *t, gboolean as_f32,
             AtTensor *out, GError **error)
{
  return load_part (model, t, 0, 1, as_f32, out, error);
}

static gboolean
load_layer (AtClipTextModel *model, const AtClipLayerTensors *f, gboolean fused, Layer *l,
            GError **error)
{
  const guint n = fused ? 3 : 1, k = fused ? 1 : 0, v = fused ? 2 : 0;

  return load_tensor (model, f->ln1_w, TRUE, &l->ln1_w, error)
         && load_tensor (model, f->ln1_b, TRUE, &l->ln1_b, error)
         && load_part (model, f->q_w, 0, n, FALSE, &l->q_w, error)
         && load_part (model, f->q_b, 0, n, TRUE, &l->q_b, error)
         && load_part (model, f->k_w, k, n, FALSE, &l->k_w, error)
         && load_part (model, f->k_b, k, n, TRUE, &l->k_b, error)
         && load_part (model, f->v_w, v, n, FALSE, &l->v_w, error)
         && load_part (model, f->v_b, v, n, TRUE, &l->v_b, error)
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
  model->activation = file.activation;
  model->buffers = g_ptr_array_new_with_free_func ((GDestroyNotify)at_gpu_buffer_free);
  model->layers = g_new0 (Layer, model->hp.n_layer);
  ok = load_tensor (model, file.token_embd, FALSE, &model->token_embd, error)
       && load_tensor (model, file.pos_embd, TRUE, &model->pos_embd, error)
       && load_tensor (model, file.final_ln_w, TRUE, &model->final_ln_w, error)
       && load_tensor (model, file.final_ln_b, TRUE, &model->final_ln_b, error);
  for (gint64 il = 0; ok && il < model->hp.n_layer; il++)
    ok = load_layer (model, &file.layers[il], file.qkv_fused, &model->layers[il], error);
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

guint64
at_clip_text_model_get_gpu_bytes (AtClipTextModel *model)
{
  guint64 bytes = 0;

  for (guint i = 0; i < model->buffers->len; i++)
    bytes += at_gpu_buffer_get_size (g_ptr_array_index (model->buffers, i));
  return bytes;
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
  at_op_unary (batch, model->activation, &ff, &ff);
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

gboolean
at_clip_text_model_encode_prompt (AtClipTextModel *model, const AtClipPromptTokens *tokens,
                                  int clip_skip, float *out, GError **error)
{
  const AtClipTextHParams *hp = &model->hp;
  const gsize window = (gsize)hp->n_ctx * hp->n_embd;

  if (hp->n_ctx != AT_CLIP_CONTEXT)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "the text encoder takes %" G_GINT64_FORMAT " tokens, not windows of %d",
                   hp->n_ctx, AT_CLIP_CONTEXT);
      return FALSE;
    }
  for (guint c = 0; c < tokens->n_chunks; c++)
    {
      if (!at_clip_text_model_encode (model, tokens->ids + c * AT_CLIP_CONTEXT, clip_skip,
                                      out + c * window, error))
        return FALSE;
      at_clip_apply_weights (out + c * window, tokens->weights + c * AT_CLIP_CONTEXT,
                             AT_CLIP_CONTEXT, hp->n_embd);
    }
  return TRUE;
}
