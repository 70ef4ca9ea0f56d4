/* at-vae.h: the Stable Diffusion VAE (ldm's AutoencoderKL, keys under
 * first_stage_model.) on the GPU, tiled so that large images fit (CPU reference:
 * ref/at-ref-vae.h).
 *
 * Decoder: post_quant_conv (1x1), conv_in (3x3), mid (ResnetBlock, AttnBlock,
 * ResnetBlock), then up.L-1 .. up.0, each n_res_blocks + 1 ResnetBlocks and, but for
 * up.0, a nearest x2 upsample and a 3x3 conv; norm_out + SiLU, conv_out to RGB.
 * Encoder: conv_in, down.0 .. down.L-1, each n_res_blocks ResnetBlocks and, but for the
 * last, a stride-2 3x3 conv over the input padded by one on the right and bottom only;
 * mid; norm_out + SiLU; conv_out to mean and log-variance; quant_conv (1x1).
 * ResnetBlock: x + conv2 (silu (norm2 (conv1 (silu (norm1 (x)))))), x through the 1x1
 * nin_shortcut when the width changes. AttnBlock: x + proj_out (softmax (q kᵀ / sqrt
 * (C)) v), one head over every position, q, k, v of norm (x). Norms are GroupNorm (32
 * groups, eps 1e-6). Widths, depth and latent channels come from the tensor shapes.
 *
 * Activations are F32 (F16 storage would halve their memory; not done yet). Images are
 * planar [width, height, channel] (ggml order, NCHW for one image).
 */
#pragma once

#include <gio/gio.h>

#include "formats/at-safetensors.h"
#include "gpu/at-gpu.h"

G_BEGIN_DECLS

#define AT_VAE_MAX_LEVELS 8

typedef struct {
  gint64 ch;                                 /* level_channels[0] */
  int n_levels;                              /* resolutions */
  gint64 level_channels[AT_VAE_MAX_LEVELS];  /* ch * ch_mult */
  int n_res_blocks;                          /* the encoder's per level; the decoder has one more */
  gint64 z_channels;                         /* latent channels (post_quant_conv's input) */
  int downscale;                             /* 2^(n_levels - 1) */
  gboolean has_encoder;
} AtVaeHParams;

/* A weight and its bias (a conv, a norm); w NULL where the model has no such layer. */
typedef struct {
  const AtSafetensorsTensor *w, *b;
} AtVaeTensorPair;

typedef struct {
  AtVaeTensorPair norm1, conv1, norm2, conv2, nin_shortcut;
  gint64 c_in, c_out;
} AtVaeResnetTensors;

/* q, k, v, proj_out: [1, 1, C, C] convs or [C, C] linears, the same numbers. */
typedef struct {
  AtVaeTensorPair norm, q, k, v, proj_out;
} AtVaeAttnTensors;

/* One half of the autoencoder; quant is quant_conv (encoder) or post_quant_conv
 * (decoder). Level i's blocks are blocks[i * blocks_per_level ...]; resample[i] is its
 * down- or upsample conv. */
typedef struct {
  AtVaeTensorPair quant, conv_in, norm_out, conv_out;
  AtVaeResnetTensors *blocks;
  int blocks_per_level;
  AtVaeTensorPair resample[AT_VAE_MAX_LEVELS];
  AtVaeResnetTensors mid_block_1, mid_block_2;
  AtVaeAttnTensors mid_attn_1;
} AtVaeCoderTensors;

/* The VAE's tensors in the file, every shape checked. */
typedef struct {
  AtVaeHParams hp;
  AtVaeCoderTensors decoder, encoder; /* encoder all NULL without hp.has_encoder */
} AtVaeFile;

/* AT_ERROR_INVALID_FILE "no VAE in this checkpoint" without first_stage_model.
 * post_quant_conv and decoder.conv_in, or naming a missing or misshapen tensor. */
gboolean at_vae_file_init (AtVaeFile *file, AtSafetensors *st, GError **error);
void at_vae_file_clear (AtVaeFile *file);

/* Where the block named as in the checkpoint without the prefix ("decoder.mid.attn_1",
 * "decoder.up.1.block.2", "encoder.down.0.block.1") sits: level -1 for mid, whose
 * index is 0 (block_1), 1 (attn_1) or 2 (block_2). FALSE for any other name. */
gboolean at_vae_block_locate (const AtVaeHParams *hp, const char *name, gboolean *decoder,
                              int *level, int *index);

typedef struct _AtVaeModel AtVaeModel;

/* Loads the decoder (and the encoder when present): convs in F16 or F32 as the file
 * has them (BF16 as F32), vectors as F32. Keeps no pointer into st. */
AtVaeModel *at_vae_model_new (AtGpu *gpu, AtSafetensors *st, GError **error);
void at_vae_model_free (AtVaeModel *model);
const AtVaeHParams *at_vae_model_get_hparams (AtVaeModel *model);
guint64 at_vae_model_get_weight_bytes (AtVaeModel *model);
/* The largest set of activation buffers held so far. */
guint64 at_vae_model_get_peak_activation_bytes (AtVaeModel *model);

/* rgb [width * downscale, height * downscale, 3] in about [-1, 1] for latent [width,
 * height, z_channels] (already divided by the scale factor). Tiled when the whole
 * image would not fit (tile_size 0) or in tiles of tile_size latent pixels (reduced to
 * what fits), overlapping by up to 8 latent pixels and blended linearly: a tile takes
 * all of the image where it covers it alone. Checks cancellable before each tile. */
gboolean at_vae_model_decode (AtVaeModel *model, const float *latent, gint64 width,
                              gint64 height, gint64 tile_size, float *rgb,
                              GCancellable *cancellable, GError **error);

/* latent [width / ds, height / ds, z_channels] for rgb [width, height, 3] (multiples of
 * ds = downscale): the posterior mean, or mean + exp (logvar / 2) * noise (noise of the
 * latent's size) when noise is given, logvar clamped to [-30, 20] as ldm does. Tiling
 * as decode, tile_size in image pixels. */
gboolean at_vae_model_encode (AtVaeModel *model, const float *rgb, gint64 width,
                              gint64 height, gint64 tile_size, const float *noise,
                              float *latent, GCancellable *cancellable, GError **error);

/* Multiply-adds times two of the convolutions and attention of an untiled decode of a
 * latent [width, height]. */
double at_vae_model_decode_flops (AtVaeModel *model, gint64 width, gint64 height);

/* For tests: at most n_queries queries per attention chunk (the score matrix is
 * [positions, n_queries]); 0 restores the automatic size. */
void at_vae_model_set_attn_chunk (AtVaeModel *model, gint64 n_queries);

/* For tests: the one block named as for at_vae_block_locate on x [width, height, its
 * input channels], out [width, height, its output channels]. */
gboolean at_vae_model_run_block (AtVaeModel *model, const char *name, const float *x,
                                 gint64 width, gint64 height, float *out, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtVaeModel, at_vae_model_free)

G_END_DECLS
