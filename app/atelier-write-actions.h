/* atelier-write-actions.h: what the Write page asks the language model to do with the
 * writer's text — the instruction for each AI action, the bounds of its reply, the
 * clean-up of chat-model preambles and quotes, the record the library keeps of it and
 * the progress line. Pure functions of their arguments: no GTK, no model. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef enum
{
  /* Plain continuation of the text before the cursor (no chat template). */
  ATELIER_WRITE_CONTINUE,
  ATELIER_WRITE_REWRITE,
  ATELIER_WRITE_SHORTEN,
  ATELIER_WRITE_EXPAND,
  ATELIER_WRITE_CHANGE_TONE,
  ATELIER_WRITE_SUMMARISE,
  ATELIER_WRITE_TRANSLATE_TO_CHINESE,
  ATELIER_WRITE_TRANSLATE_TO_ENGLISH,
} AtelierWriteAction;

typedef enum
{
  ATELIER_TONE_NONE,
  ATELIER_TONE_FORMAL,
  ATELIER_TONE_FRIENDLY,
  ATELIER_TONE_CONFIDENT,
  ATELIER_TONE_PLAYFUL,
  ATELIER_TONE_EMPATHETIC,
} AtelierWriteTone;

/* Stable names, used as action targets and stored in the library: "rewrite",
 * "translate-zh", ... and "formal", ...; NULL / "" for ATELIER_TONE_NONE. */
const char *atelier_write_action_to_string (AtelierWriteAction action);
gboolean atelier_write_action_from_string (const char *name, AtelierWriteAction *action);
const char *atelier_write_tone_to_string (AtelierWriteTone tone);
gboolean atelier_write_tone_from_string (const char *name, AtelierWriteTone *tone);

/* Which way "Translate" goes for text: to English when at least a third of its letters
 * are Chinese, Japanese or Korean, to Chinese otherwise. */
AtelierWriteAction atelier_write_translation_for (const char *text);

/* The conversation for an instruction action (not ATELIER_WRITE_CONTINUE): a system
 * message saying to answer with the edited text only, and a user message holding the
 * instruction (with tone for ATELIER_WRITE_CHANGE_TONE) and text. */
typedef struct
{
  char *system;
  char *user;
} AtelierWritePrompt;

AtelierWritePrompt *atelier_write_prompt_new (AtelierWriteAction action, AtelierWriteTone tone,
                                              const char *text);
void atelier_write_prompt_free (AtelierWritePrompt *prompt);
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtelierWritePrompt, atelier_write_prompt_free)

/* An upper bound on the reply's tokens: the text's length in tokens, estimated
 * generously from its bytes, scaled by what the action does to it (a summary is short,
 * an expansion long), within [64, 2048]. */
gint64 atelier_write_max_tokens (AtelierWriteAction action, const char *text);

/* Where the body of a reply starts: after any leading blank space and a first line such
 * as "Here is the rewritten text:" or "以下是翻译：" (a short line opening with one of a
 * few known phrases and ending with a colon). While the reply is still streaming
 * (complete FALSE), -1 means more text is needed to tell. */
gssize atelier_write_reply_body_start (const char *reply, gboolean complete);
/* A complete reply without its preamble, without the blank space around it and without
 * quotation marks around the whole of it. */
char *atelier_write_clean_reply (const char *reply);

/* The library's record of a generation: the prompt ("Rewrite: " and the first 200
 * characters of the source text) and the parameters JSON object. */
char *atelier_write_asset_prompt (AtelierWriteAction action, AtelierWriteTone tone,
                                  const char *source);
char *atelier_write_parameters_json (AtelierWriteAction action, AtelierWriteTone tone,
                                     const char *model, double temperature, guint64 seed,
                                     gint64 tokens);

/* The progress line while generating: tokens so far, tokens per second over the decode
 * time (the time since the first token) and, when max_tokens >= 0, the most time left
 * at that speed. */
char *atelier_write_progress_text (gint64 n_tokens, double decode_seconds, gint64 max_tokens);

G_END_DECLS
