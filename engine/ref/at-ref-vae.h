/* at-ref-vae.h: CPU reference of the SD VAE that image/at-vae.h runs on the GPU. */
#pragma once

#include "image/at-vae.h"

G_BEGIN_DECLS

/* rgb [width * ds, height * ds, 3] for latent [width, height, z_channels], untiled, as
 * at_vae_model_decode, through the at_ref_* functions (double accumulation). */
void at_ref_vae_decode (const AtVaeFile *file, const float *latent, gint64 width,
                        gint64 height, float *rgb);

/* latent [width / ds, height / ds, z_channels] for rgb [width, height, 3], untiled, as
 * at_vae_model_encode: the mean, or mean + exp (logvar / 2) * noise. */
void at_ref_vae_encode (const AtVaeFile *file, const float *rgb, gint64 width, gint64 height,
                        const float *noise, float *latent);

/* The block named as for at_vae_block_locate (which must find it) on x [width, height,
 * its input channels]; out [width, height, its output channels]. */
void at_ref_vae_block (const AtVaeFile *file, const char *name, const float *x, gint64 width,
                       gint64 height, float *out);

G_END_DECLS
