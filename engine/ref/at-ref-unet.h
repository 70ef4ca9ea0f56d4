/* at-ref-unet.h: CPU reference of the Stable Diffusion UNet that image/at-unet.h runs on
 * the GPU. */
#pragma once

#include "image/at-unet.h"

G_BEGIN_DECLS

/* out [width, height, out_channels, n] as at_unet_model_forward on the file's weights,
 * through the at_ref_* functions (double accumulation). */
void at_ref_unet_forward (const AtUnetFile *file, const float *x, gint64 width, gint64 height,
                          gint64 n, const float *timesteps, const float *context, gint64 n_ctx,
                          float *out);

/* As at_unet_model_forward_block: the ResBlock or the SpatialTransformer of
 * input_blocks.index alone on x [width, height, channels, n]. */
void at_ref_unet_forward_block (const AtUnetFile *file, int index, gboolean attention,
                                const float *x, gint64 width, gint64 height, gint64 n,
                                const float *timesteps, const float *context, gint64 n_ctx,
                                float *out);

G_END_DECLS
