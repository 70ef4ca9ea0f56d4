/* at-clip-tokenizer.h: CLIP's byte-level BPE tokenizer (OpenAI SimpleTokenizer, HF
 * CLIPTokenizer), and prompts cut into 77-token windows with A1111's emphasis weights. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Prompt tokens per window; each window is BOS + 75 tokens + EOS. */
#define AT_CLIP_CHUNK_TOKENS 75
#define AT_CLIP_CONTEXT (AT_CLIP_CHUNK_TOKENS + 2)

typedef struct _AtClipTokenizer AtClipTokenizer;

typedef struct {
  guint n_chunks;
  gint32 *ids;    /* n_chunks windows of AT_CLIP_CONTEXT ids */
  float *weights; /* one per id: 1 for BOS, EOS and padding */
} AtClipPromptTokens;

/* Loads bpe_simple_vocab_16e6.txt.gz (gzip, or plain text): 48894 merges giving a
 * vocabulary of 49408 with BOS 49406 and EOS 49407. */
AtClipTokenizer *at_clip_tokenizer_new_from_file (const char *path, GError **error);
void at_clip_tokenizer_free (AtClipTokenizer *tokenizer);

guint at_clip_tokenizer_get_n_vocab (AtClipTokenizer *tokenizer);
gint32 at_clip_tokenizer_get_bos (AtClipTokenizer *tokenizer);
gint32 at_clip_tokenizer_get_eos (AtClipTokenizer *tokenizer);

/* Token ids of text without BOS and EOS (gint32 elements): whitespace collapsed, lowercased,
 * split as CLIP's regex does, each piece byte-pair encoded. */
GArray *at_clip_tokenizer_encode (AtClipTokenizer *tokenizer, const char *text);
/* The text of ids, "</w>" ends of words shown as spaces. */
char *at_clip_tokenizer_decode (AtClipTokenizer *tokenizer, const gint32 *ids, gsize n_ids);

/* The prompt as A1111 feeds it to the text encoder: emphasis parsed, each span encoded on
 * its own, tokens cut into chunks of 75 (at the last comma when one is among the last 20
 * tokens of a full chunk, and at every BREAK), each chunk wrapped as BOS + tokens + EOS and
 * filled to 77 with pad_id (EOS for SD 1.x, 0 for SD 2.x's OpenCLIP). */
AtClipPromptTokens *at_clip_tokenizer_encode_prompt (AtClipTokenizer *tokenizer,
                                                     const char *prompt, gint32 pad_id,
                                                     GError **error);
void at_clip_prompt_tokens_free (AtClipPromptTokens *tokens);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtClipTokenizer, at_clip_tokenizer_free)
G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtClipPromptTokens, at_clip_prompt_tokens_free)

G_END_DECLS
