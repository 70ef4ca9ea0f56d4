/* at-ref-clip-text-model.h: CPU reference of the CLIP text encoder that
 * image/at-clip-text-model.h runs on the GPU. */
#pragma once

#include "image/at-clip-text-model.h"

G_BEGIN_DECLS

/* out [n_ctx][n_embd] as at_clip_text_model_encode on the file's weights, through the
 * at_ref_* functions (double accumulation). */
void at_ref_clip_text_encode (const AtClipTextFile *file, const gint32 *ids, int clip_skip,
                              float *out);

G_END_DECLS
