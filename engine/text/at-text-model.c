/* at-text-model.c: loading llama-family GGUF models and their forward pass on the GPU. */
#include "text/at-text-model.h"

#include <math.h>
#include <string.h>

#include "at-error.h"
#include "ops/at-ops-attention.h"
#include "ops/at-ops-elementwise.h"
#include "ops/at-ops-matmul.h"
#include "ops/at-ops-quant.h"
#include "ref/at-ref.h"

/* Upload granularity: progress and cancellation are checked between chunks. */
#define UPLOAD_CHUNK (16u << 20)

static const char *const arch_names[] = {
  [AT_TEXT_ARCH_LLAMA] = "llama",
  [AT_TEXT_ARCH_QWEN2] = "qwen2",
  [AT_TEXT_ARCH_QWEN3] = "qwen3",
};

const char *
at_text_arch_name (AtTextArch arch)
{
  return arch_names[arch];
}

/* --- Hyper-parameters and tensors of the file -------------------------------------- */

static gboolean
get_count (AtGguf *gguf, const char *arch, const char *name, gint64 *out, GError **error)
{
  g_autofree char *key = g_strdup_printf ("%s.%s", arch, name);
  guint32 value;

  if (!at_gguf_get_u32 (gguf, key, &value, error))
    return FALSE;
  if (value == 0)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: '%s' is 0", at_gguf_get_name (gguf),
                   key);
      return FALSE;
    }
  *out = value;
  return TRUE;
}

/* An optional float key: *out keeps its default when the key is absent. */
static gboolean
get_optional_f32 (AtGguf *gguf, const char *arch, const char *name, float *out, GError **error)
{
  g_autofree char *key = g_strdup_printf ("%s.%s", arch, name);

  return at_gguf_find (gguf, key) == NULL || at_gguf_get_f32 (gguf, key, out, error);
}

static gboolean
get_optional_count (AtGguf *gguf, const char *arch, const char *name, gint64 *out, GError **error)
{
  g_autofree char *key = g_strdup_printf ("%s.%s", arch, name);

  return at_gguf_find (gguf, key) == NULL || get_count (gguf, arch, name, out, error);
}

static gboolean
read_rope_scaling (AtGguf *gguf, const char *arch, AtTextHParams *hp, GError **error)
{
  g_autofree char *type_key = g_strdup_printf ("%s.rope.scaling.type", arch);
  const char *type = "none";
  float factor = 1.0f;

  if (at_gguf_find (gguf, type_key) != NULL
      && (type = at_gguf_get_string (gguf, type_key, error)) == NULL)
    return FALSE;
  if (!get_optional_f32 (gguf, arch, "rope.scaling.factor", &factor, error))
    return FALSE;
  if (strcmp (type, "none") == 0 || (strcmp (type, "linear") == 0 && factor == 1.0f))
    return TRUE;
  if (strcmp (type, "linear") != 0)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "%s: rope scaling '%s' is not supported (only linear)", at_gguf_get_name (gguf),
                   type);
      return FALSE;
    }
  if (!(factor > 0.0f) || !isfinite (factor))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: rope scaling factor %g",
                   at_gguf_get_name (gguf), factor);
      return FALSE;
    }
  hp->rope.freq_scale = 1.0f / factor;
  return TRUE;
}

static gboolean
read_hparams (AtGguf *gguf, AtTextHParams *hp, GError **error)
{
  const char *name = at_gguf_get_name (gguf);
  const char *arch = at_gguf_get_string (gguf, "general.architecture", error);
  gint64 value_length, rope_dims;
  gsize i;

  if (arch == NULL)
    return FALSE;
  for (i = 0; i < G_N_ELEMENTS (arch_names); i++)
    if (strcmp (arch, arch_names[i]) == 0)
      break;
  if (i == G_N_ELEMENTS (arch_names))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "%s: architecture '%s' is not supported (llama, qwen2, qwen3)", name, arch);
      return FALSE;
    }
  memset (hp, 0, sizeof *hp);
  hp->arch = (AtTextArch)i;
  if (!get_count (gguf, arch, "context_length", &hp->n_ctx_train, error)
      || !get_count (gguf, arch, "embedding_length", &hp->n_embd, error)
      || !get_count (gguf, arch, "block_count", &hp->n_layer, error)
      || !get_count (gguf, arch, "feed_forward_length", &hp->n_ff, error)
      || !get_count (gguf, arch, "attention.head_count", &hp->n_head, error))
    return FALSE;
  hp->n_head_kv = hp->n_head;
  hp->head_dim = hp->n_embd / hp->n_head;
  hp->rms_eps = 1e-5f;
  hp->rope.freq_base = 10000.0f;
  hp->rope.freq_scale = 1.0f;
  /* llama.cpp's llama_model_rope_type: Qwen rotates the halves (NEOX). */
  hp->rope.neox = hp->arch != AT_TEXT_ARCH_LLAMA;
  if (!get_optional_count (gguf, arch, "attention.head_count_kv", &hp->n_head_kv, error)
      || !get_optional_count (gguf, arch, "attention.key_length", &hp->head_dim, error)
      || !get_optional_f32 (gguf, arch, "attention.layer_norm_rms_epsilon", &hp->rms_eps, error)
      || !get_optional_f32 (gguf, arch, "rope.freq_base", &hp->rope.freq_base, error)
      || !read_rope_scaling (gguf, arch, hp, error))
    return FALSE;
  value_length = hp->head_dim;
  rope_dims = hp->head_dim;
  if (!get_optional_count (gguf, arch, "attention.value_length", &value_length, error)
      || !get_optional_count (gguf, arch, "rope.dimension_count", &rope_dims, error))
    return FALSE;

  if (value_length != hp->head_dim)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "%s: value heads of %" G_GINT64_FORMAT
                   " differ from key heads of %" G_GINT64_FORMAT,
                   name, value_length, hp->head_dim);
      return FALSE;
    }
  if (hp->n_head % hp->n_head_kv != 0 || hp->head_dim % 8 != 0 || hp->head_dim > 256
      || rope_dims % 2 != 0 || rope_dims > hp->head_dim || !(hp->rms_eps > 0.0f)
      || !(hp->rope.freq_base > 0.0f))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "%s: attention shape not supported: %" G_GINT64_FORMAT
                   " heads, %" G_GINT64_FORMAT " KV heads of %" G_GINT64_FORMAT
                   " (a multiple of 8 up to 256), %" G_GINT64_FORMAT
                   " rotated dimensions, eps %g, rope base %g",
                   name, hp->n_head, hp->n_head_kv, hp->head_dim, rope_dims, hp->rms_eps,
                   hp->rope.freq_base);
      return FALSE;
    }
  hp->rope.n_dims = (int)rope_dims;
  return TRUE;
}

typedef enum
{
  KIND_MATRIX, /* a weight the mat-mul and mat-vec ops read in its own type */
  KIND_VECTOR, /* converted to F32 on load */
} TensorKind;

/* The tensor called name with shape [ne0, ne1] (ne1 = 0: a vector [ne0]), or NULL with
 * an error; a missing optional tensor is NULL without one. */
static const AtGgufTensor *
find_tensor (AtGguf *gguf, const char *name, TensorKind kind, gint64 ne0, gint64 ne1,
             gboolean optional, GError **error)
{
  const AtGgufTensor *t = at_gguf_find_tensor (gguf, name);
  guint n_dims = ne1 > 0 ? 2 : 1;

  if (t == NULL)
    {
      if (!optional)
        g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: tensor '%s' is missing",
                     at_gguf_get_name (gguf), name);
      return NULL;
    }
  if (t->n_dims > n_dims || t->ne[0] != ne0 || t->ne[1] != MAX (ne1, 1))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   "%s: tensor '%s' is [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT
                   ", %" G_GINT64_FORMAT "], expected [%" G_GINT64_FORMAT ", %" G_GINT64_FORMAT "]",
                   at_gguf_get_name (gguf), name, t->ne[0], t->ne[1], t->ne[2], ne0, MAX (ne1, 1));
      return NULL;
    }
  if (kind == KIND_MATRIX
          ? !at_op_mul_mat_supports (t->type) || !at_op_mul_mat_vec_supports (t->type)
          : t->type != AT_TYPE_F32 && t->type != AT_TYPE_F16 && t->type != AT_TYPE_BF16)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "%s: tensor '%s' has type %s, which is not supported here",
                   at_gguf_get_name (gguf), name, at_type_name (t->type));
      return NULL;
    }
  return t;
}

static gboolean
find_block (AtGguf *gguf, const AtTextHParams *hp, gint64 il, AtTextBlockTensors *b, GError **error)
{
  const gint64 n_embd = hp->n_embd, n_q = hp->n_head * hp->head_dim;
  const gint64 n_kv = hp->n_head_kv * hp->head_dim;
  const gboolean qwen2 = hp->arch == AT_TEXT_ARCH_QWEN2, qwen3 = hp->arch == AT_TEXT_ARCH_QWEN3;
  GError *e = NULL;

#define BLK(name) g_strdup_printf ("blk.%" G_GINT64_FORMAT "." name, il)
#define FIND(field, name, kind, ne0, ne1, optional)                                                \
  if (e == NULL)                                                                                   \
    {                                                                                              \
      g_autofree char *tensor_name = BLK (name);                                                   \
      b->field = find_tensor (gguf, tensor_name, kind, ne0, ne1, optional, &e);                    \
    }
  FIND (attn_norm, "attn_norm.weight", KIND_VECTOR, n_embd, 0, FALSE);
  FIND (attn_q, "attn_q.weight", KIND_MATRIX, n_embd, n_q, FALSE);
  FIND (attn_k, "attn_k.weight", KIND_MATRIX, n_embd, n_kv, FALSE);
  FIND (attn_v, "attn_v.weight", KIND_MATRIX, n_embd, n_kv, FALSE);
  /* Qwen2 has q, k and v biases; some llama conversions carry them too. */
  FIND (attn_q_bias, "attn_q.bias", KIND_VECTOR, n_q, 0, !qwen2);
  FIND (attn_k_bias, "attn_k.bias", KIND_VECTOR, n_kv, 0, !qwen2);
  FIND (attn_v_bias, "attn_v.bias", KIND_VECTOR, n_kv, 0, !qwen2);
  if (qwen3)
    {
      FIND (attn_q_norm, "attn_q_norm.weight", KIND_VECTOR, hp->head_dim, 0, FALSE);
      FIND (attn_k_norm, "attn_k_norm.weight", KIND_VECTOR, hp->head_dim, 0, FALSE);
    }
  FIND (attn_output, "attn_output.weight", KIND_MATRIX, n_q, n_embd, FALSE);
  FIND (ffn_norm, "ffn_norm.weight", KIND_VECTOR, n_embd, 0, FALSE);
  FIND (ffn_gate, "ffn_gate.weight", KIND_MATRIX, n_embd, hp->n_ff, FALSE);
  FIND (ffn_up, "ffn_up.weight", KIND_MATRIX, n_embd, hp->n_ff, FALSE);
  FIND (ffn_down, "ffn_down.weight", KIND_MATRIX, hp->n_ff, n_embd, FALSE);
#undef FIND
#undef BLK
  if (e != NULL)
    {
      g_propagate_error (error, e);
      return FALSE;
    }
  return TRUE;
}

gboolean
at_text_model_file_init (AtTextModelFile *file, AtGguf *gguf, GError **error)
{
  AtTextHParams *hp = &file->hp;
  const AtGgufTensor *embd;
  GError *e = NULL;

  memset (file, 0, sizeof *file);
  if (!read_hparams (gguf, hp, error))
    return FALSE;
  embd = at_gguf_find_tensor (gguf, "token_embd.weight");
  if (embd != NULL && embd->n_dims == 2)
    hp->n_vocab = embd->ne[1];
  file->token_embd = find_tensor (gguf, "token_embd.weight", KIND_MATRIX, hp->n_embd,
                                  MAX (hp->n_vocab, 1), FALSE, error);
  if (file->token_embd == NULL)
    return FALSE;
  file->output_norm
      = find_tensor (gguf, "output_norm.weight", KIND_VECTOR, hp->n_embd, 0, FALSE, error);
  if (file->output_norm == NULL)
    return FALSE;
  file->output
      = find_tensor (gguf, "output.weight", KIND_MATRIX, hp->n_embd, hp->n_vocab, TRUE, &e);
  if (e != NULL)
    {
      g_propagate_error (error, e);
      return FALSE;
    }
  if (file->output == NULL)
    file->output = file->token_embd;

  file->blocks = g_new0 (AtTextBlockTensors, hp->n_layer);
  for (gint64 il = 0; il < hp->n_layer; il++)
    if (!find_block (gguf, hp, il, &file->blocks[il], error))
      {
        at_text_model_file_clear (file);
        return FALSE;
      }
  return TRUE;
}

guint64
at_text_model_file_weight_bytes (const AtTextModelFile *file, AtGguf *gguf, guint64 *per_token)
{
  guint64 total = 0;

  for (guint i = 0; i < at_gguf_get_n_tensors (gguf); i++)
    total += at_gguf_get_tensor (gguf, i)->size;
  if (per_token)
    *per_token = total - (file->output == file->token_embd ? 0 : file->token_embd->size);
  return total;
}

void
at_text_model_file_clear (AtTextModelFile *file)
{
  g_clear_pointer (&file->blocks, g_free);
}

/* --- Weights on the GPU ------------------------------------------------------------ */

typedef struct
{
  AtTensor attn_norm;
  AtTensor attn_q, attn_k, attn_v;
  AtTensor attn_q_bias, attn_k_bias, attn_v_bias; /* buffer NULL when absent */
  AtTensor attn_q_norm, attn_k_norm;
  AtTensor attn_output;
  AtTensor ffn_norm, ffn_gate, ffn_up, ffn_down;
} Block;

struct _AtTextModel
{
  AtGpu *gpu;
  AtTextHParams hp;
  AtTensor token_embd, output_norm, output;
  Block *blocks;
  GPtrArray *buffers; /* AtGpuBuffer, one per tensor */
};

typedef struct
{
  AtTextModel *model;
  AtTextModelProgress progress;
  gpointer user_data;
  GCancellable *cancellable;
  guint64 done, total;
} Loader;

static gboolean
upload_chunked (Loader *loader, AtGpuBuffer *buffer, const guint8 *data, gsize size, GError **error)
{
  for (gsize offset = 0; offset < size; offset += UPLOAD_CHUNK)
    {
      gsize n = MIN (UPLOAD_CHUNK, size - offset);

      if (g_cancellable_set_error_if_cancelled (loader->cancellable, error)
          || !at_gpu_upload (loader->model->gpu, buffer, offset, data + offset, n, error))
        return FALSE;
      loader->done += n;
      /* Vectors grow when converted to F32, so the count may overshoot a little. */
      if (loader->progress != NULL)
        loader->progress (MIN (1.0, (double)loader->done / (double)loader->total),
                          loader->user_data);
    }
  return TRUE;
}

/* Uploads t into a buffer of its own: matrices in their type, vectors as F32. A NULL
 * t leaves *out empty. */
static gboolean
load_tensor (Loader *loader, const AtGgufTensor *t, TensorKind kind, AtTensor *out, GError **error)
{
  g_autofree float *converted = NULL;
  AtType type = kind == KIND_VECTOR ? AT_TYPE_F32 : t->type;
  const void *data = t == NULL ? NULL : t->data;
  AtGpuBuffer *buffer;
  gsize size;

  memset (out, 0, sizeof *out);
  if (t == NULL)
    return TRUE;
  size = at_tensor_contiguous_size (type, t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
  if (kind == KIND_VECTOR && t->type != AT_TYPE_F32)
    {
      converted = g_new (float, t->ne[0]);
      at_ref_dequantize_row (t->type, t->data, converted, t->ne[0]);
      data = converted;
    }
  buffer = at_gpu_buffer_new (loader->model->gpu, size, AT_GPU_MEMORY_DEVICE, error);
  if (buffer == NULL)
    {
      g_prefix_error (error, "tensor '%s': ", t->name);
      return FALSE;
    }
  g_ptr_array_add (loader->model->buffers, buffer);
  *out = at_tensor_make (buffer, 0, type, t->ne[0], t->ne[1], 1, 1);
  return upload_chunked (loader, buffer, data, size, error);
}

static gboolean
load_block (Loader *loader, const AtTextBlockTensors *f, Block *b, GError **error)
{
  return load_tensor (loader, f->attn_norm, KIND_VECTOR, &b->attn_norm, error)
         && load_tensor (loader, f->attn_q, KIND_MATRIX, &b->attn_q, error)
         && load_tensor (loader, f->attn_k, KIND_MATRIX, &b->attn_k, error)
         && load_tensor (loader, f->attn_v, KIND_MATRIX, &b->attn_v, error)
         && load_tensor (loader, f->attn_q_bias, KIND_VECTOR, &b->attn_q_bias, error)
         && load_tensor (loader, f->attn_k_bias, KIND_VECTOR, &b->attn_k_bias, error)
         && load_tensor (loader, f->attn_v_bias, KIND_VECTOR, &b->attn_v_bias, error)
         && load_tensor (loader, f->attn_q_norm, KIND_VECTOR, &b->attn_q_norm, error)
         && load_tensor (loader, f->attn_k_norm, KIND_VECTOR, &b->attn_k_norm, error)
         && load_tensor (loader, f->attn_output, KIND_MATRIX, &b->attn_output, error)
         && load_tensor (loader, f->ffn_norm, KIND_VECTOR, &b->ffn_norm, error)
         && load_tensor (loader, f->ffn_gate, KIND_MATRIX, &b->ffn_gate, error)
         && load_tensor (loader, f->ffn_up, KIND_MATRIX, &b->ffn_up, error)
         && load_tensor (loader, f->ffn_down, KIND_MATRIX, &b->ffn_down, error);
}

/* All tensor bytes of the file: what the progress fraction counts. */
static guint64
file_tensor_bytes (AtGguf *gguf)
{
  guint64 total = 0;

  for (guint i = 0; i < at_gguf_get_n_tensors (gguf); i++)
    total += at_gguf_get_tensor (gguf, i)->size;
  return total;
}

AtTextModel *
at_text_model_new (AtGpu *gpu, AtGguf *gguf, AtTextModelProgress progress, gpointer user_data,
                   GCancellable *cancellable, GError **error)
{
  g_autoptr (AtTextModel) model = g_new0 (AtTextModel, 1);
  AtTextModelFile file;
  Loader loader = { model, progress, user_data, cancellable, 0, 0 };
  gboolean ok;

  if (!at_text_model_file_init (&file, gguf, error))
    return NULL;
  model->gpu = gpu;
  model->hp = file.hp;
  model->buffers = g_ptr_array_new_with_free_func ((GDestroyNotify)at_gpu_buffer_free);
  model->blocks = g_new0 (Block, file.hp.n_layer);
  loader.total = file_tensor_bytes (gguf);

  ok = load_tensor (&loader, file.token_embd, KIND_MATRIX, &model->token_embd, error)
       && load_tensor (&loader, file.output_norm, KIND_VECTOR, &model->output_norm, error);
  if (ok && file.output == file.token_embd)
    model->output = model->token_embd;
  else if (ok)
    ok = load_tensor (&loader, file.output, KIND_MATRIX, &model->output, error);
  for (gint64 il = 0; ok && il < file.hp.n_layer; il++)
    ok = load_block (&loader, &file.blocks[il], &model->blocks[il], error);
  at_text_model_file_clear (&file);
  if (!ok)
    return NULL;
  if (progress != NULL)
    progress (1.0, user_data);
  return g_steal_pointer (&model);
}

void
at_text_model_free (AtTextModel *model)
{
  if (model == NULL)
    return;
  g_free (model->blocks);
  g_clear_pointer (&model->buffers, g_ptr_array_unref);
  g_free (model);
}

const AtTextHParams *
at_text_model_get_hparams (AtTextModel *model)
{
  return &model->hp;
}

/* --- A sequence: KV cache and activations ------------------------------------------ */

struct _AtTextContext
{
  AtTextModel *model;
  AtGpu *gpu;
  gint64 n_ctx, n_batch;
  AtBatch *batch;
  GPtrArray *buffers;
  AtGpuBuffer **k_cache, **v_cache; /* per layer F16 [head_dim, n_ctx, n_head_kv] */
  /* Activations of up to n_batch tokens (one column per token). */
  AtGpuBuffer *x;                  /* [n_embd] the residual stream */
  AtGpuBuffer *xb;                 /* [n_embd] a block's normed input, then its output */
  AtGpuBuffer *q, *qb;             /* [n_head * head_dim] queries, and their normed/rotated form */
  AtGpuBuffer *k, *kb;             /* [n_head_kv * head_dim] */
  AtGpuBuffer *v;                  /* [n_head_kv * head_dim] */
  AtGpuBuffer *att;                /* [n_head * head_dim] attention output */
  AtGpuBuffer *hb, *hb2, *hb3;     /* [n_ff] gate, up, silu(gate) * up */
  AtGpuBuffer *logits;             /* [n_vocab] per token */
  AtGpuBuffer *tokens, *positions; /* I32 [n_batch], written by the CPU */
  AtGpuBuffer *readback;           /* logits for the CPU */
};

static AtGpuBuffer *
context_buffer (AtTextContext *ctx, gsize size, AtGpuMemoryKind kind, GError **error)
{
  AtGpuBuffer *buffer = at_gpu_buffer_new (ctx->gpu, size, kind, error);

  if (buffer != NULL)
    g_ptr_array_add (ctx->buffers, buffer);
  return buffer;
}

guint64
at_text_context_estimate_bytes (const AtTextHParams *hp, gint64 n_ctx, gint64 n_batch)
{
  const guint64 n_q = hp->n_head * hp->head_dim, n_kv = hp->n_head_kv * hp->head_dim;
  const guint64 cache = (guint64)hp->n_layer * 2
                        * at_tensor_contiguous_size (AT_TYPE_F16, hp->head_dim, n_ctx,
                                                     hp->n_head_kv, 1);
  /* The rows of at_text_context_new's activations, each n_batch F32 columns. */
  const guint64 rows = 2 * hp->n_embd + 3 * n_q + 3 * n_kv + 3 * hp->n_ff + 2 * hp->n_vocab + 2;

  return cache + rows * (guint64)n_batch * 4;
}

AtTextContext *
at_text_context_new (AtTextModel *model, gint64 n_ctx, gint64 n_batch, GError **error)
{
  const AtTextHParams *hp = &model->hp;
  g_autoptr (AtTextContext) ctx = g_new0 (AtTextContext, 1);
  const gsize cols = (gsize)n_batch * 4;
  const gsize n_q = hp->n_head * hp->head_dim, n_kv = hp->n_head_kv * hp->head_dim;
  const gsize cache_size
      = at_tensor_contiguous_size (AT_TYPE_F16, hp->head_dim, n_ctx, hp->n_head_kv, 1);

  if (n_ctx < 1 || n_ctx > hp->n_ctx_train || n_batch < 1 || n_batch > n_ctx)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "a context of %" G_GINT64_FORMAT " tokens in batches of %" G_GINT64_FORMAT
                   " (the model takes 1 to %" G_GINT64_FORMAT ")",
                   n_ctx, n_batch, hp->n_ctx_train);
      return NULL;
    }
  ctx->model = model;
  ctx->gpu = model->gpu;
  ctx->n_ctx = n_ctx;
  ctx->n_batch = n_batch;
  ctx->buffers = g_ptr_array_new_with_free_func ((GDestroyNotify)at_gpu_buffer_free);
  ctx->k_cache = g_new0 (AtGpuBuffer *, hp->n_layer);
  ctx->v_cache = g_new0 (AtGpuBuffer *, hp->n_layer);
  for (gint64 il = 0; il < hp->n_layer; il++)
    if (!(ctx->k_cache[il] = context_buffer (ctx, cache_size, AT_GPU_MEMORY_DEVICE, error))
        || !(ctx->v_cache[il] = context_buffer (ctx, cache_size, AT_GPU_MEMORY_DEVICE, error)))
      return NULL;

#define ACTIVATION(field, rows, kind)                                                              \
  if (!(ctx->field = context_buffer (ctx, (rows)*cols, kind, error)))                              \
    return NULL;
  ACTIVATION (x, hp->n_embd, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (xb, hp->n_embd, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (q, n_q, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (qb, n_q, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (k, n_kv, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (kb, n_kv, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (v, n_kv, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (att, n_q, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (hb, hp->n_ff, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (hb2, hp->n_ff, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (hb3, hp->n_ff, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (logits, hp->n_vocab, AT_GPU_MEMORY_DEVICE);
  ACTIVATION (readback, hp->n_vocab, AT_GPU_MEMORY_READBACK);
  ACTIVATION (tokens, 1, AT_GPU_MEMORY_UPLOAD);
  ACTIVATION (positions, 1, AT_GPU_MEMORY_UPLOAD);
#undef ACTIVATION
  ctx->batch = at_batch_new (ctx->gpu);
  return g_steal_pointer (&ctx);
}

void
at_text_context_free (AtTextContext *ctx)
{
  if (ctx == NULL)
    return;
  g_clear_pointer (&ctx->batch, at_batch_free);
  g_clear_pointer (&ctx->buffers, g_ptr_array_unref);
  g_free (ctx->k_cache);
  g_free (ctx->v_cache);
  g_free (ctx);
}

gint64
at_text_context_get_n_ctx (AtTextContext *ctx)
{
  return ctx->n_ctx;
}

/* --- The forward pass -------------------------------------------------------------- */

/* [rows, n] F32 activations at the start of buffer. */
static AtTensor
act (AtGpuBuffer *buffer, gint64 rows, gint64 n)
{
  return at_tensor_make (buffer, 0, AT_TYPE_F32, rows, n, 1, 1);
}

/* The same memory seen as [ne0, ne1, ne2] (contiguous). */
static AtTensor
reshape_3d (const AtTensor *t, gint64 ne0, gint64 ne1, gint64 ne2)
{
  return at_tensor_make (t->buffer, t->offset, t->type, ne0, ne1, ne2, 1);
}

/* dst = w x: mat-vec for a few tokens (decoding), the tiled GEMM for more. */
static void
linear (AtBatch *batch, const AtTensor *w, const AtTensor *x, const AtTensor *dst)
{
  if (x->ne[1] <= AT_MUL_MAT_VEC_MAX_COLS)
    at_op_mul_mat_vec (batch, w, x, dst);
  else
    at_op_mul_mat (batch, w, x, dst);
}

/* dst = w x (+ bias). */
static void
linear_bias (AtBatch *batch, const AtTensor *w, const AtTensor *bias, const AtTensor *x,
             const AtTensor *dst)
{
  linear (batch, w, x, dst);
  if (bias->buffer != NULL)
    at_op_add (batch, dst, bias, dst);
}

/* Positions [first, first + n) of layer il's cache: F16 [head_dim, n_head_kv, n], the
 * layout the projections produce. */
static AtTensor
cache_slots (AtTextContext *ctx, AtGpuBuffer *cache, gint64 first, gint64 n)
{
  const AtTextHParams *hp = &ctx->model->hp;
  AtTensor t = at_tensor_make (cache, 0, AT_TYPE_F16, hp->head_dim, hp->n_head_kv, n, 1);

  t.offset = (gsize)first * hp->head_dim * 2;
  t.nb[1] = (gsize)ctx->n_ctx * hp->head_dim * 2;
  t.nb[2] = (gsize)hp->head_dim * 2;
  t.nb[3] = t.nb[2] * n;
  return t;
}

/* The first n_kv positions of a cache: [head_dim, n_kv, n_head_kv] for attention. */
static AtTensor
cache_prefix (AtTextContext *ctx, AtGpuBuffer *cache, gint64 n_kv)
{
  const AtTextHParams *hp = &ctx->model->hp;
  AtTensor t = at_tensor_make (cache, 0, AT_TYPE_F16, hp->head_dim, ctx->n_ctx, hp->n_head_kv, 1);

  t.ne[1] = n_kv;
  return t;
}

static void
attention (AtTextContext *ctx, gint64 il, gint64 n, gint64 n_past)
{
  const AtTextHParams *hp = &ctx->model->hp;
  const Block *b = &ctx->model->blocks[il];
  AtBatch *batch = ctx->batch;
  const gint64 hd = hp->head_dim, n_q = hp->n_head * hd, n_kv = hp->n_head_kv * hd;
  AtTensor x = act (ctx->x, hp->n_embd, n), xb = act (ctx->xb, hp->n_embd, n);
  AtTensor q = act (ctx->q, n_q, n), qb = act (ctx->qb, n_q, n);
  AtTensor k = act (ctx->k, n_kv, n), kb = act (ctx->kb, n_kv, n);
  AtTensor v = act (ctx->v, n_kv, n), att = act (ctx->att, n_q, n);
  AtTensor positions = at_tensor_make (ctx->positions, 0, AT_TYPE_I32, n, 1, 1, 1);
  AtTensor q_heads = reshape_3d (&q, hd, hp->n_head, n);
  AtTensor k_heads = reshape_3d (&k, hd, hp->n_head_kv, n);
  AtTensor qb_heads = reshape_3d (&qb, hd, hp->n_head, n);
  AtTensor v_heads = reshape_3d (&v, hd, hp->n_head_kv, n);
  AtTensor k_slots = cache_slots (ctx, ctx->k_cache[il], n_past, n);
  AtTensor v_slots = cache_slots (ctx, ctx->v_cache[il], n_past, n);
  AtTensor k_cache = cache_prefix (ctx, ctx->k_cache[il], n_past + n);
  AtTensor v_cache = cache_prefix (ctx, ctx->v_cache[il], n_past + n);
  AtTensor out = reshape_3d (&att, hd, hp->n_head, n);
  AtTensor q_rot, q_by_head;
  AtFlashAttnParams params = { 1.0f / sqrtf ((float)hd), TRUE, n_past };

  at_op_rms_norm (batch, &x, &b->attn_norm, &xb, hp->rms_eps);
  linear_bias (batch, &b->attn_q, &b->attn_q_bias, &xb, &q);
  linear_bias (batch, &b->attn_k, &b->attn_k_bias, &xb, &k);
  linear_bias (batch, &b->attn_v, &b->attn_v_bias, &xb, &v);
  if (b->attn_q_norm.buffer != NULL)
    {
      AtTensor kb_heads = reshape_3d (&kb, hd, hp->n_head_kv, n);

      /* Qwen3 normalizes every head of q and k before rotating it. */
      at_op_rms_norm (batch, &q_heads, &b->attn_q_norm, &qb_heads, hp->rms_eps);
      at_op_rms_norm (batch, &k_heads, &b->attn_k_norm, &kb_heads, hp->rms_eps);
      at_op_rope (batch, &qb_heads, &positions, &q_heads, &hp->rope);
      at_op_rope (batch, &kb_heads, &positions, &k_slots, &hp->rope);
      q_rot = q_heads;
    }
  else
    {
      at_op_rope (batch, &q_heads, &positions, &qb_heads, &hp->rope);
      at_op_rope (batch, &k_heads, &positions, &k_slots, &hp->rope);
      q_rot = qb_heads;
    }
  at_op_cpy (batch, &v_heads, &v_slots);

  q_by_head = at_tensor_permute (&q_rot, 0, 2, 1, 3);
  at_op_flash_attn (batch, &q_by_head, &k_cache, &v_cache, NULL, &out, &params);
  linear (batch, &b->attn_output, &att, &xb);
  at_op_add (batch, &x, &xb, &x);
}

static void
feed_forward (AtTextContext *ctx, gint64 il, gint64 n)
{
  const AtTextHParams *hp = &ctx->model->hp;
  const Block *b = &ctx->model->blocks[il];
  AtBatch *batch = ctx->batch;
  AtTensor x = act (ctx->x, hp->n_embd, n), xb = act (ctx->xb, hp->n_embd, n);
  AtTensor hb = act (ctx->hb, hp->n_ff, n), hb2 = act (ctx->hb2, hp->n_ff, n);
  AtTensor hb3 = act (ctx->hb3, hp->n_ff, n);

  at_op_rms_norm (batch, &x, &b->ffn_norm, &xb, hp->rms_eps);
  linear (batch, &b->ffn_gate, &xb, &hb);
  linear (batch, &b->ffn_up, &xb, &hb2);
  at_op_glu (batch, AT_GLU_SWIGLU, &hb2, &hb, &hb3);
  linear (batch, &b->ffn_down, &hb3, &xb);
  at_op_add (batch, &x, &xb, &x);
}

/* Logits of the last n_out of the n tokens, copied to the readback buffer. */
static void
output_head (AtTextContext *ctx, gint64 n, gint64 n_out)
{
  const AtTextHParams *hp = &ctx->model->hp;
  AtBatch *batch = ctx->batch;
  AtTensor x = act (ctx->x, hp->n_embd, n);
  AtTensor xb = act (ctx->xb, hp->n_embd, n_out);
  AtTensor logits = act (ctx->logits, hp->n_vocab, n_out);

  x.offset = (gsize)(n - n_out) * x.nb[1];
  x.ne[1] = n_out;
  at_op_rms_norm (batch, &x, &ctx->model->output_norm, &xb, hp->rms_eps);
  linear (batch, &ctx->model->output, &xb, &logits);
  at_batch_copy (batch, ctx->logits, 0, ctx->readback, 0, at_tensor_extent (&logits));
}

gboolean
at_text_context_decode (AtTextContext *ctx, const gint32 *tokens, gsize n_tokens, gsize n_past,
                        float *logits, gboolean all_logits, GCancellable *cancellable,
                        GError **error)
{
  const AtTextHParams *hp = &ctx->model->hp;
  const gint64 n = (gint64)n_tokens, n_out = all_logits ? n : 1;
  gint32 *positions = at_gpu_buffer_get_mapped (ctx->positions);
  AtTensor ids = at_tensor_make (ctx->tokens, 0, AT_TYPE_I32, n, 1, 1, 1);
  AtTensor x = act (ctx->x, hp->n_embd, n);

  if (n < 1 || n > ctx->n_batch || n_past > (gsize)(ctx->n_ctx - n))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "decode: %" G_GSIZE_FORMAT " tokens after %" G_GSIZE_FORMAT
                   " do not fit a context of %" G_GINT64_FORMAT " in batches of %" G_GINT64_FORMAT,
                   n_tokens, n_past, ctx->n_ctx, ctx->n_batch);
      return FALSE;
    }
  if (g_cancellable_set_error_if_cancelled (cancellable, error))
    return FALSE;

  memcpy (at_gpu_buffer_get_mapped (ctx->tokens), tokens, n_tokens * sizeof (gint32));
  for (gsize i = 0; i < n_tokens; i++)
    positions[i] = (gint32)(n_past + i);

  at_op_get_rows (ctx->batch, &ctx->model->token_embd, &ids, &x);
  for (gint64 il = 0; il < hp->n_layer; il++)
    {
      attention (ctx, il, n, (gint64)n_past);
      feed_forward (ctx, il, n);
    }
  output_head (ctx, n, n_out);
  if (!at_batch_run (ctx->batch, error))
    return FALSE;
  memcpy (logits, at_gpu_buffer_get_mapped (ctx->readback),
          (gsize)n_out * hp->n_vocab * sizeof (float));
  return TRUE;
}
