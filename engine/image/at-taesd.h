/* at-taesd.h: the TAESD decoder (madebyollin/taesd), which turns Stable Diffusion latents
 * into RGB cheaply enough for live previews while sampling (CPU reference:
 * ref/at-ref-taesd.h).
 *
 * Its input is the latent as the UNet sees it, already scaled by the VAE's 0.18215: TAESD
 * was distilled on those (diffusers' AutoencoderTiny has scaling factor 1), so no
 * rescaling happens here. The network, in the file's module numbering (a PyTorch
 * Sequential, weights "N.weight" / "N.bias", blocks "N.conv.{0,2,4}.*"):
 *   0  clamp: tanh(x / 3) * 3
 *   1  conv 3x3 (4 -> width), 2 ReLU
 *   3-5 Block, 6 upsample x2 (nearest), 7 conv 3x3 without bias
 *   8-10 Block, 11 upsample, 12 conv, 13-15 Block, 16 upsample, 17 conv
 *   18 Block, 19 conv 3x3 (width -> 3)
 * with Block(x) = ReLU (conv (ReLU (conv (ReLU (conv (x))))) + x), all convs 3x3 with
 * padding 1. The real width is 64; it is read from the tensors.
 */
#pragma once

#include "formats/at-safetensors.h"
#include "gpu/at-gpu.h"

G_BEGIN_DECLS

#define AT_TAESD_N_BLOCKS 10
#define AT_TAESD_N_UPSAMPLES 3

typedef struct
{
  const AtSafetensorsTensor *weight, *bias; /* bias NULL where the conv has none */
} AtTaesdConv;

/* The decoder's tensors in the file, every shape checked. */
typedef struct
{
  gint64 width;                               /* channels between the first and last conv */
  AtTaesdConv conv_in;                        /* "1" */
  AtTaesdConv blocks[AT_TAESD_N_BLOCKS][3];   /* "3", "4", "5", "8", ... ".conv.{0,2,4}" */
  AtTaesdConv upsample[AT_TAESD_N_UPSAMPLES]; /* "7", "12", "17" */
  AtTaesdConv conv_out;                       /* "19" */
} AtTaesdFile;

/* Blocks run before each upsample (and after the last): 3, 3, 3, then 1. */
extern const int at_taesd_blocks_per_stage[AT_TAESD_N_UPSAMPLES + 1];

/* AT_ERROR_INVALID_FILE "... is not a TAESD decoder ..." when "1.weight" is not a 3x3
 * conv from 4 latent channels, or naming a missing or misshapen tensor. */
gboolean at_taesd_file_init (AtTaesdFile *file, AtSafetensors *st, GError **error);

typedef struct _AtTaesd AtTaesd;

/* Uploads the weights (F16 stays F16, F32 and BF16 become F32); keeps no pointer into
 * the file. */
AtTaesd *at_taesd_new (AtGpu *gpu, const char *path, GError **error);
AtTaesd *at_taesd_new_from_safetensors (AtGpu *gpu, AtSafetensors *st, GError **error);
void at_taesd_free (AtTaesd *taesd);

/* rgb [8 width, 8 height, 3] planar, clamped to [0, 1], for latent [width, height, 4]
 * (planar, width fastest), decoded in one batch. Activation buffers are kept for the
 * next decode of the same size. AT_ERROR_UNSUPPORTED when one activation would exceed
 * the device's largest storage buffer. */
gboolean at_taesd_decode (AtTaesd *taesd, const float *latent, gint64 width, gint64 height,
                          float *rgb, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtTaesd, at_taesd_free)

G_END_DECLS
