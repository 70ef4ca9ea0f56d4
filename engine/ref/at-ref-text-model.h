/* at-ref-text-model.h: the llama-family forward pass in plain C, the reference that the
 * GPU model (text/at-text-model.h) is tested against. */
#pragma once

#include "text/at-text-model.h"

G_BEGIN_DECLS

typedef struct _AtRefTextModel AtRefTextModel;

/* A model reading its weights from gguf (which must outlive it), with an F32 KV cache of
 * n_ctx positions whose values are rounded through F16 as the GPU's cache stores them. */
AtRefTextModel *at_ref_text_model_new (AtGguf *gguf, gint64 n_ctx, GError **error);
void at_ref_text_model_free (AtRefTextModel *model);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtRefTextModel, at_ref_text_model_free)

const AtTextHParams *at_ref_text_model_get_hparams (AtRefTextModel *model);

/* at_text_context_decode's contract: n_tokens tokens at positions n_past.., logits of
 * the last token or ([n_tokens][n_vocab]) of all; n_past + n_tokens <= n_ctx. */
void at_ref_text_model_decode (AtRefTextModel *model, const gint32 *tokens, gsize n_tokens,
                               gsize n_past, float *logits, gboolean all_logits);

G_END_DECLS
