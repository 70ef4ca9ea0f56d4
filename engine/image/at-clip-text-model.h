/* at-clip-text-model.h: the text encoders of SD 1.x (CLIP ViT-L/14, HF CLIPTextModel
 * keys under cond_stage_model.transformer.text_model.) and SD 2.x (OpenCLIP ViT-H/14,
 * open_clip keys under cond_stage_model.model.) on the GPU (CPU reference:
 * ref/at-ref-clip-text-model.h).
 *
 * Both are the same pre-LN transformer: x = token_embedding[ids] + position_embedding;
 * per layer x += out_proj (causal attention (layer_norm1 (x))), x += fc2 (act (fc1
 * (layer_norm2 (x)))) with act quick_gelu for CLIP and the erf GELU for OpenCLIP; the
 * output is final_layer_norm of the last layer's x, or with clip skip n of the x n - 1
 * layers before the end. As A1111's FrozenCLIPEmbedderWithCustomWords and ldm's
 * FrozenOpenCLIPEmbedder (layer "penultimate") do, final_layer_norm is applied to the
 * skipped layer's output too: the UNets were trained on normed states.
 */
#pragma once

#include "gpu/at-gpu.h"
#include "image/at-clip-tokenizer.h"
#include "image/at-sd-checkpoint.h"
#include "ops/at-ops-norm.h"

G_BEGIN_DECLS

typedef struct {
  const AtSafetensorsTensor *ln1_w, *ln1_b, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b;
  const AtSafetensorsTensor *out_w, *out_b, *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} AtClipLayerTensors;

/* The text encoder's tensors in the file, every shape checked. */
typedef struct {
  AtSdCheckpointInfo info;
  AtUnaryOp activation; /* of the MLP */
  /* OpenCLIP's attention has one in_proj [n_embd, 3 n_embd] and bias [3 n_embd]: then
   * q_w, k_w and v_w are all that tensor (q its first third, k the second, v the last),
   * and likewise the biases. */
  gboolean qkv_fused;
  const AtSafetensorsTensor *token_embd, *pos_embd, *final_ln_w, *final_ln_b;
  AtClipLayerTensors *layers; /* info.clip.n_layer */
} AtClipTextFile;

/* Fails as at_sd_checkpoint_detect, or with AT_ERROR_INVALID_FILE naming a missing or
 * misshapen tensor. */
gboolean at_clip_text_file_init (AtClipTextFile *file, AtSafetensors *st, GError **error);
void at_clip_text_file_clear (AtClipTextFile *file);

typedef struct _AtClipTextModel AtClipTextModel;

/* Uploads the weights (matrices in their type, vectors and position embeddings as F32)
 * and allocates the activations of one window of n_ctx tokens; the model keeps no
 * pointer into st. */
AtClipTextModel *at_clip_text_model_new (AtGpu *gpu, AtSafetensors *st, GError **error);
void at_clip_text_model_free (AtClipTextModel *model);
const AtClipTextHParams *at_clip_text_model_get_hparams (AtClipTextModel *model);
/* GPU bytes the model holds: weights and activations. */
guint64 at_clip_text_model_get_gpu_bytes (AtClipTextModel *model);

/* out [n_ctx][n_embd] = the encoder output for one window of n_ctx ids, recorded in one
 * batch. 1 <= clip_skip <= n_layer (1: the last layer). */
gboolean at_clip_text_model_encode (AtClipTextModel *model, const gint32 *ids, int clip_skip,
                                    float *out, GError **error);

/* The conditioning of a tokenized prompt as A1111 builds it: each window encoded on its
 * own, weighted (at_clip_apply_weights), and the windows joined along the tokens:
 * out [n_chunks * n_ctx][n_embd]. The windows must be n_ctx = AT_CLIP_CONTEXT long. */
gboolean at_clip_text_model_encode_prompt (AtClipTextModel *model,
                                           const AtClipPromptTokens *tokens, int clip_skip,
                                           float *out, GError **error);

/* A1111's emphasis on one window z [n_tokens][n_embd]: each token's vector multiplied by
 * its weight, then all of z scaled so that its mean is the mean it had before
 * (sd_hijack_clip: z * weights, then z * original_mean / new_mean). */
void at_clip_apply_weights (float *z, const float *weights, gsize n_tokens, gint64 n_embd);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtClipTextModel, at_clip_text_model_free)

G_END_DECLS
