/* at-text-model.h: llama-family language models (general.architecture llama, qwen2,
 * qwen3) from GGUF files, and their forward pass on the GPU.
 *
 * Everything about a model's shape comes from the file: the hyper-parameters from the
 * {arch}.* metadata, the vocabulary size from token_embd. The weights stay in the
 * file's types on the GPU; norm weights and biases are converted to F32.
 *
 * An AtTextContext holds what one sequence needs: the F16 KV cache for n_ctx positions
 * and the activations of up to n_batch tokens. Each decode call records one AtBatch
 * (one submit): embeddings, every layer, the output head and the logits' readback.
 */
#pragma once

#include <gio/gio.h>

#include "formats/at-gguf.h"
#include "gpu/at-gpu.h"
#include "ops/at-ops-norm.h"

G_BEGIN_DECLS

typedef enum
{
  AT_TEXT_ARCH_LLAMA, /* Llama 2/3, TinyLlama, Mistral, SmolLM2 */
  AT_TEXT_ARCH_QWEN2, /* + biases on q, k and v */
  AT_TEXT_ARCH_QWEN3, /* + RMS norm of each q and k head; head_dim from key_length */
} AtTextArch;

typedef struct
{
  AtTextArch arch;
  gint64 n_ctx_train; /* context_length */
  gint64 n_embd;      /* embedding_length */
  gint64 n_layer;     /* block_count */
  gint64 n_ff;        /* feed_forward_length */
  gint64 n_head, n_head_kv;
  gint64 head_dim; /* attention.key_length, else n_embd / n_head */
  gint64 n_vocab;  /* token_embd's rows */
  float rms_eps;
  AtRopeParams rope; /* n_dims, NEOX layout for qwen2/qwen3, base, linear scaling */
} AtTextHParams;

/* A block's tensors as the file holds them; the optional ones are NULL when absent. */
typedef struct
{
  const AtGgufTensor *attn_norm;
  const AtGgufTensor *attn_q, *attn_k, *attn_v;
  const AtGgufTensor *attn_q_bias, *attn_k_bias, *attn_v_bias; /* qwen2 */
  const AtGgufTensor *attn_q_norm, *attn_k_norm;               /* qwen3 */
  const AtGgufTensor *attn_output;
  const AtGgufTensor *ffn_norm, *ffn_gate, *ffn_up, *ffn_down;
} AtTextBlockTensors;

/* The hyper-parameters and tensors of a model file, validated: every tensor is present
 * with the shape the hyper-parameters ask for and a type the ops take. Shared by the
 * GPU model and the CPU reference. */
typedef struct
{
  AtTextHParams hp;
  const AtGgufTensor *token_embd, *output_norm;
  const AtGgufTensor *output; /* token_embd when the file ties them */
  AtTextBlockTensors *blocks; /* n_layer */
} AtTextModelFile;

/* Fails with AT_ERROR_UNSUPPORTED for an unknown architecture, rope scaling or weight
 * type, AT_ERROR_INVALID_FILE for a missing key or tensor, or a wrong shape (messages
 * name the file and the tensor). */
gboolean at_text_model_file_init (AtTextModelFile *file, AtGguf *gguf, GError **error);
void at_text_model_file_clear (AtTextModelFile *file);
/* Bytes of all the file's tensors, and of those one decoded token reads: everything
 * but the embedding table, of which get_rows reads one row (unless the output head
 * shares it). */
guint64 at_text_model_file_weight_bytes (const AtTextModelFile *file, AtGguf *gguf,
                                         guint64 *per_token);

typedef struct _AtTextModel AtTextModel;

/* fraction of the weights uploaded so far, 0 to 1. */
typedef void (*AtTextModelProgress) (double fraction, gpointer user_data);

/* Uploads the model's weights to gpu in chunks, reporting progress after each; the
 * model keeps no pointer into gguf. Cancelling stops between chunks with
 * G_IO_ERROR_CANCELLED. */
AtTextModel *at_text_model_new (AtGpu *gpu, AtGguf *gguf, AtTextModelProgress progress,
                                gpointer user_data, GCancellable *cancellable, GError **error);
void at_text_model_free (AtTextModel *model);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtTextModel, at_text_model_free)

const AtTextHParams *at_text_model_get_hparams (AtTextModel *model);
/* "llama", "qwen2", "qwen3". */
const char *at_text_arch_name (AtTextArch arch);

typedef struct _AtTextContext AtTextContext;

/* A sequence of up to n_ctx positions (at most the model's context_length), decoded
 * n_batch tokens at most per call. The model must outlive the context. */
AtTextContext *at_text_context_new (AtTextModel *model, gint64 n_ctx, gint64 n_batch,
                                    GError **error);
void at_text_context_free (AtTextContext *ctx);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtTextContext, at_text_context_free)

gint64 at_text_context_get_n_ctx (AtTextContext *ctx);
/* The GPU memory at_text_context_new allocates for hp, n_ctx and n_batch: the KV cache
 * and the activations; lets a loader refuse before it uploads anything. */
guint64 at_text_context_estimate_bytes (const AtTextHParams *hp, gint64 n_ctx, gint64 n_batch);

/* Runs n_tokens tokens at positions n_past.. through the model, keeping their keys and
 * values in the cache (positions from n_past + n_tokens on are forgotten). logits
 * receives n_vocab floats for the last token, or for every token ([n_tokens][n_vocab])
 * with all_logits. n_tokens must be 1..n_batch and n_past + n_tokens <= n_ctx
 * (AT_ERROR_INVALID_ARGUMENT). */
gboolean at_text_context_decode (AtTextContext *ctx, const gint32 *tokens, gsize n_tokens,
                                 gsize n_past, float *logits, gboolean all_logits,
                                 GCancellable *cancellable, GError **error);

G_END_DECLS
