/* at-language-model.h: text generation for front ends.
 *
 * An AtLanguageModel is a llama-family GGUF model on the engine's GPU with its
 * tokenizer and one sequence (AtTextContext). Loading and generating are jobs on the
 * engine's queue; tokens stream to the caller's main context as valid UTF-8 text,
 * stop strings held back.
 *
 * The model remembers the tokens in its KV cache: a request whose tokens begin with
 * them (the next turn of a chat, the same prompt again) decodes only the new tail.
 */
#pragma once

#include <gio/gio.h>

#include "at-engine.h"
#include "text/at-chat-template.h"
#include "text/at-sampler.h"

G_BEGIN_DECLS

#define AT_TYPE_LANGUAGE_MODEL (at_language_model_get_type ())
G_DECLARE_FINAL_TYPE (AtLanguageModel, at_language_model, AT, LANGUAGE_MODEL, GObject)

/* Opens the GGUF file at path and uploads it with a context of n_ctx positions (<= 0:
 * the model's context_length). Before uploading anything, refuses with
 * AT_ERROR_OUT_OF_MEMORY when the weights, KV cache and activations will not fit the
 * GPU memory that is free. progress gets the fraction of the weights uploaded. */
void at_language_model_load_async (AtEngine *engine, const char *path, gint64 n_ctx,
                                   GCancellable *cancellable, AtLoadProgress progress,
                                   gpointer progress_data, GAsyncReadyCallback callback,
                                   gpointer user_data);
AtLanguageModel *at_language_model_load_finish (GAsyncResult *result, GError **error);

gint64 at_language_model_get_n_ctx (AtLanguageModel *model);
AtChatFamily at_language_model_get_chat_family (AtLanguageModel *model);
/* Bytes of weights one generated token reads: every matrix but the embedding table
 * (which is read a row at a time), plus the output head. */
guint64 at_language_model_get_weight_bytes_per_token (AtLanguageModel *model);
/* Tokens run through the model since it was loaded (prompt and generated): how tests
 * see that prefix reuse skipped work. */
gint64 at_language_model_get_n_decoded (AtLanguageModel *model);

typedef enum
{
  /* The request ends with AT_STOP_CONTEXT_FULL. */
  AT_CONTEXT_FULL_STOP,
  /* Keep the first n_keep tokens, drop the older half of the rest, re-decode what is
   * kept and go on. */
  AT_CONTEXT_FULL_SHIFT,
} AtContextFullPolicy;

typedef enum
{
  AT_STOP_EOS,          /* the model ended its text (EOS, end of turn) */
  AT_STOP_STRING,       /* a stop string appeared; it is not in the text */
  AT_STOP_MAX_TOKENS,   /* max_tokens were generated */
  AT_STOP_CONTEXT_FULL, /* no room left under AT_CONTEXT_FULL_STOP */
} AtStopReason;

typedef struct
{
  /* Plain text to continue, or NULL to use messages. */
  const char *prompt;
  /* A conversation in the model's chat format (its tokenizer.chat_template family,
   * ChatML if unknown), an assistant turn opened at its end; system messages allowed. */
  const AtChatMessage *messages;
  gsize n_messages;
  AtSamplerParams sampler; /* seed included */
  gint64 max_tokens;       /* < 0: until something else stops */
  const char *const *stops; /* NULL-terminated, or NULL */
  AtContextFullPolicy context_full;
  /* Tokens kept at the front when shifting; < 0: the system messages (the BOS alone
   * for a plain prompt). */
  gint64 n_keep;
} AtGenerateRequest;

/* llama.cpp's sampler defaults, 256 tokens, no stop strings, AT_CONTEXT_FULL_STOP,
 * n_keep -1. */
void at_generate_request_init (AtGenerateRequest *request);

typedef struct
{
  char *text; /* what was generated, as the callback received it */
  AtStopReason reason;
  char *message; /* why it stopped, in words */
  gint64 n_prompt, n_generated;
} AtGenerateResult;

void at_generate_result_free (AtGenerateResult *result);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtGenerateResult, at_generate_result_free)

/* text: the next piece of generated text (valid UTF-8, never empty), on the caller's
 * main context. */
typedef void (*AtTokenCallback) (const char *text, gpointer user_data);

/* Generates a continuation of request (copied: it need not outlive the call). Cancelling
 * stops between tokens with G_IO_ERROR_CANCELLED; the model stays usable. */
void at_language_model_generate_async (AtLanguageModel *model, const AtGenerateRequest *request,
                                       AtTokenCallback on_token, gpointer token_data,
                                       GCancellable *cancellable, GAsyncReadyCallback callback,
                                       gpointer user_data);
AtGenerateResult *at_language_model_generate_finish (AtLanguageModel *model,
                                                     GAsyncResult *result, GError **error);

G_END_DECLS
