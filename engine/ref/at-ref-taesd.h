/* at-ref-taesd.h: CPU reference of the TAESD decoder that image/at-taesd.h runs on the
 * GPU. */
#pragma once

#include "image/at-taesd.h"

G_BEGIN_DECLS

/* rgb [8 width, 8 height, 3] as at_taesd_decode on the file's weights, through the
 * at_ref_* functions (double accumulation). */
void at_ref_taesd_decode (const AtTaesdFile *file, const float *latent, gint64 width, gint64 height,
                          float *rgb);

G_END_DECLS
