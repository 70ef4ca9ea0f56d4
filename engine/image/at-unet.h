/* at-unet.h: the Stable Diffusion 1.x / 2.x UNet (ldm's openaimodel.UNetModel, keys under
 * model.diffusion_model. of a single-file checkpoint) on the GPU (CPU reference:
 * ref/at-ref-unet.h).
 *
 * emb = time_embed.2 (SiLU (time_embed.0 (timestep_embedding (t, model_channels)))).
 * input_blocks.0.0 is a 3x3 conv in_channels -> model_channels; then per level
 * num_res_blocks x [ResBlock, SpatialTransformer where the level has attention] and,
 * except on the last level, a stride-2 Downsample (input_blocks.N.0.op). Every input
 * block's output is kept as a skip. middle_block: ResBlock, SpatialTransformer,
 * ResBlock. output_blocks: per level in reverse, (num_res_blocks + 1) x [ResBlock on
 * (h joined with the last skip along the channels), SpatialTransformer] and, but on the
 * last one, a nearest Upsample to the size of the next skip + 3x3 conv
 * (output_blocks.N.{1|2}.conv). out.0 GroupNorm + SiLU, out.2 3x3 conv.
 *
 * ResBlock: h = in_layers.2 (SiLU (GN (x))) + emb_layers.1 (SiLU (emb)) per channel;
 * h = out_layers.3 (SiLU (GN (h))); out = skip_connection (x) (a 1x1 conv when the
 * channels change) + h. GroupNorm has 32 groups, eps 1e-5.
 *
 * SpatialTransformer: x_in + proj_out (blocks (proj_in (GN (x)))) with GN eps 1e-6 and
 * proj_in / proj_out 1x1 convs (SD 1.x) or Linear layers (SD 2.x: the same maths on the
 * tokens); each of transformer_blocks.D is x += attn1 (norm1 (x)); x += attn2 (norm2 (x),
 * context); x += ff.net.2 (GEGLU (ff.net.0.proj (norm3 (x)))), LayerNorm eps 1e-5.
 * Heads: SD 1.x has 8 per block (head_dim = channels / 8), SD 2.x heads of 64.
 *
 * Every size but the heads comes from tensor names and shapes, so tiny test checkpoints
 * run the same code as the real ones.
 */
#pragma once

#include "gpu/at-gpu.h"
#include "image/at-sd-checkpoint.h"

G_BEGIN_DECLS

#define AT_UNET_MAX_LEVELS 8

typedef struct
{
  gint64 in_channels, out_channels, model_channels, context_dim;
  int n_levels;                              /* len(channel_mult) */
  gint64 level_channels[AT_UNET_MAX_LEVELS]; /* model_channels * channel_mult[i] */
  int n_res_blocks;
  gboolean level_attention[AT_UNET_MAX_LEVELS];
  int transformer_depth;
  gint64 head_dim_per_level[AT_UNET_MAX_LEVELS]; /* as the family's rule gives */
  gboolean linear_proj;
} AtUnetHParams;

/* --- The tensors of the file ---------------------------------------------------------- */

typedef struct
{
  gint64 c_in, c_out;
  const AtSafetensorsTensor *in_norm_w, *in_norm_b, *in_conv_w, *in_conv_b;
  const AtSafetensorsTensor *emb_w, *emb_b;
  const AtSafetensorsTensor *out_norm_w, *out_norm_b, *out_conv_w, *out_conv_b;
  const AtSafetensorsTensor *skip_w, *skip_b; /* NULL when c_in == c_out (identity) */
} AtUnetResTensors;

/* One attention: to_k and to_v read the block's own tokens (attn1) or the context. */
typedef struct
{
  const AtSafetensorsTensor *q, *k, *v, *out_w, *out_b;
} AtUnetAttnTensors;

typedef struct
{
  const AtSafetensorsTensor *norm1_w, *norm1_b, *norm2_w, *norm2_b, *norm3_w, *norm3_b;
  AtUnetAttnTensors attn1, attn2;
  const AtSafetensorsTensor *ff_proj_w, *ff_proj_b, *ff_out_w, *ff_out_b;
} AtUnetTransformerTensors;

typedef struct
{
  gint64 channels, head_dim;
  /* proj_in and proj_out are [1, 1, C, C] convs or [C, C] matrices: the same memory. */
  const AtSafetensorsTensor *norm_w, *norm_b, *proj_in_w, *proj_in_b, *proj_out_w, *proj_out_b;
  AtUnetTransformerTensors *blocks; /* transformer_depth */
} AtUnetSpatialTensors;

/* One entry of input_blocks, middle_block or output_blocks, its parts in order: a
 * ResBlock, a SpatialTransformer, then a stride-2 Downsample (input blocks) or an
 * Upsample (output blocks), each present or not. input_blocks.0 is conv_in instead. */
typedef struct
{
  int level; /* of channel_mult: the block runs at the input size / 2^level */
  gboolean has_res, has_attn;
  AtUnetResTensors res;
  AtUnetSpatialTensors attn;
  const AtSafetensorsTensor *down_w, *down_b, *up_w, *up_b;
} AtUnetBlockTensors;

typedef struct
{
  AtSdCheckpointInfo info;
  AtUnetHParams hp;
  const AtSafetensorsTensor *time_embed0_w, *time_embed0_b, *time_embed2_w, *time_embed2_b;
  const AtSafetensorsTensor *conv_in_w, *conv_in_b, *out_norm_w, *out_norm_b;
  const AtSafetensorsTensor *out_conv_w, *out_conv_b;
  int n_input_blocks, n_output_blocks; /* input_blocks from 1 (0 is conv_in) */
  AtUnetBlockTensors *input_blocks;    /* [n_input_blocks], entry 0 unused */
  AtUnetBlockTensors middle[3];        /* Res, ST, Res as three blocks */
  AtUnetBlockTensors *output_blocks;   /* [n_output_blocks] */
} AtUnetFile;

/* Reads the UNet's shape off its tensors and finds every tensor with its shape checked;
 * info (at_sd_checkpoint_detect's) gives the family, which sets the heads. Fails with
 * AT_ERROR_INVALID_FILE naming a missing or misshapen tensor, or AT_ERROR_UNSUPPORTED
 * for UNet variants it does not run. */
gboolean at_unet_file_init (AtUnetFile *file, AtSafetensors *st, const AtSdCheckpointInfo *info,
                            GError **error);
void at_unet_file_clear (AtUnetFile *file);

/* --- The model on the GPU ------------------------------------------------------------- */

typedef struct _AtUnetModel AtUnetModel;

/* Uploads the weights (conv/linear weights in their file type F16/F32/BF16 as the ops
 * take them — BF16 conv weights converted to F16 — vectors F32); the model keeps no
 * pointer into st. */
AtUnetModel *at_unet_model_new (AtGpu *gpu, AtSafetensors *st, const AtSdCheckpointInfo *info,
                                GError **error);
void at_unet_model_free (AtUnetModel *model);
const AtUnetHParams *at_unet_model_get_hparams (AtUnetModel *model);
/* GPU bytes of the weights. */
guint64 at_unet_model_get_weight_bytes (AtUnetModel *model);
/* GPU bytes of the activations currently allocated. */
guint64 at_unet_model_get_activation_bytes (AtUnetModel *model);

/* out [width, height, out_channels, n] (ggml order = NCHW) = the model output for x
 * [width, height, in_channels, n], timesteps [n] (the model's t, 0..999, fractional
 * allowed), context [context_dim, n_ctx, n]. Activations are (re)allocated when the
 * shape changes; one batch per call. */
gboolean at_unet_model_forward (AtUnetModel *model, const float *x, gint64 width, gint64 height,
                                gint64 n, const float *timesteps, const float *context,
                                gint64 n_ctx, float *out, GError **error);

/* One part of input_blocks.index alone, for tests against the reference: its ResBlock
 * (attention FALSE) or its SpatialTransformer on x [width, height, channels, n], the
 * size of that block's input; out has the part's output shape. */
gboolean at_unet_model_forward_block (AtUnetModel *model, int index, gboolean attention,
                                      const float *x, gint64 width, gint64 height, gint64 n,
                                      const float *timesteps, const float *context, gint64 n_ctx,
                                      float *out, GError **error);

/* FLOPs of one forward at that shape (2 per multiply-add, convs + matmuls + attention),
 * for the benchmark's TFLOP/s. */
double at_unet_model_forward_flops (AtUnetModel *model, gint64 width, gint64 height, gint64 n,
                                    gint64 n_ctx);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtUnetModel, at_unet_model_free)

G_END_DECLS
