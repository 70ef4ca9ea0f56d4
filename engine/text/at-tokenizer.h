/* at-tokenizer.h: text <-> token ids for llama-family vocabularies.
 *
 * Two models, named as GGUF's tokenizer.ggml.model names them:
 *   "llama"  SentencePiece: score-ordered merges of adjacent pieces, spaces written as
 *            U+2581, byte fallback through the <0xXX> tokens;
 *   "gpt2"   byte-level BPE: the text is split by the pre-tokenizer of
 *            tokenizer.ggml.pre (llama3, qwen2, gpt2, ...), each byte mapped to a
 *            printable character, then merged by the rank of tokenizer.ggml.merges.
 * Encoding reproduces llama.cpp's tokenizations exactly (checked against real
 * vocabularies in tests/test-tokenizer.c).
 *
 * The tokenizer is built from plain arrays (AtTokenizerSpec), so it does not care where
 * the vocabulary came from; at_tokenizer_new_from_gguf fills them from a GGUF file.
 */
#pragma once

#include <glib.h>

#include "formats/at-gguf.h"

G_BEGIN_DECLS

/* GGUF's tokenizer.ggml.token_type values. */
typedef enum
{
  AT_TOKEN_TYPE_UNDEFINED = 0,
  AT_TOKEN_TYPE_NORMAL = 1,
  AT_TOKEN_TYPE_UNKNOWN = 2,
  AT_TOKEN_TYPE_CONTROL = 3,
  AT_TOKEN_TYPE_USER_DEFINED = 4,
  AT_TOKEN_TYPE_UNUSED = 5,
  AT_TOKEN_TYPE_BYTE = 6,
} AtTokenType;

/* The tokenizer.ggml.* metadata. The arrays are only read by at_tokenizer_new (the
 * tokenizer keeps its own copies). Ids are -1 when absent. */
typedef struct
{
  const char *model; /* "llama" or "gpt2" */
  const char *pre;   /* pre-tokenizer; NULL means "default" */
  const char *const *tokens;
  gsize n_tokens;
  const float *scores;       /* n_tokens, or NULL (all 0) */
  const gint32 *token_types; /* n_tokens AtTokenType values, or NULL (all normal) */
  const char *const *merges; /* "left right" */
  gsize n_merges;
  gint32 bos_id, eos_id, eot_id, unk_id, pad_id;
  gboolean add_bos, add_eos;
  gboolean add_space_prefix; /* SentencePiece: encode as if the text began with a space */
} AtTokenizerSpec;

/* Fills spec with llama.cpp's defaults for a model/pre pair, as a loader needs them when
 * the file leaves a key out: no arrays; SentencePiece has bos 1, eos 2, unk 0, add_bos
 * and add_space_prefix; byte-level BPE has no ids, and add_bos only for llama3. */
void at_tokenizer_spec_init (AtTokenizerSpec *spec, const char *model, const char *pre);

/* Fills spec from gguf's tokenizer.ggml.* keys (model, pre, tokens, scores, token_type,
 * merges, the special ids and the add_* flags), at_tokenizer_spec_init's defaults
 * standing in for the keys left out. The strings point into gguf; the scores and token
 * types are copied into memory that at_tokenizer_spec_clear frees. Fails with
 * AT_ERROR_INVALID_FILE when a key is missing or of the wrong type or length. */
gboolean at_tokenizer_spec_init_from_gguf (AtTokenizerSpec *spec, AtGguf *gguf,
                                           GError **error);
/* Frees what at_tokenizer_spec_init_from_gguf allocated in spec. */
void at_tokenizer_spec_clear (AtTokenizerSpec *spec);

typedef struct _AtTokenizer AtTokenizer;

/* A tokenizer for spec. Fails with AT_ERROR_UNSUPPORTED for an unknown model or
 * pre-tokenizer, AT_ERROR_INVALID_FILE for inconsistent arrays or ids. */
AtTokenizer *at_tokenizer_new (const AtTokenizerSpec *spec, GError **error);
/* A tokenizer for the vocabulary of a GGUF file (a model or a vocab-only file). */
AtTokenizer *at_tokenizer_new_from_gguf (AtGguf *gguf, GError **error);
AtTokenizer *at_tokenizer_ref (AtTokenizer *tok);
void at_tokenizer_unref (AtTokenizer *tok);

typedef enum
{
  AT_TOKENIZE_NONE = 0,
  /* Add BOS/EOS as the vocabulary's add_bos/add_eos flags ask. */
  AT_TOKENIZE_ADD_SPECIAL = 1 << 0,
  /* Control tokens written in the text ("<|im_start|>") become their ids, as chat
   * templates need; without it they are tokenized as plain text. User-defined tokens
   * are always matched, as llama.cpp and Hugging Face tokenizers do. */
  AT_TOKENIZE_PARSE_SPECIAL = 1 << 1,
} AtTokenizeFlags;

/* The token ids (gint32) of length bytes of text (-1: NUL-terminated). Text need not be
 * valid UTF-8: stray bytes go through byte fallback, so nothing is lost. */
GArray *at_tokenizer_encode (AtTokenizer *tok, const char *text, gssize length,
                             AtTokenizeFlags flags);

/* The bytes token id stands for: U+2581 as space and <0xXX> as that byte (SentencePiece),
 * byte-level characters mapped back to bytes (BPE). Control and unknown tokens give
 * nothing unless special is set, then their text. Returns the bytes (not
 * NUL-terminated, possibly a part of a UTF-8 sequence), owned by tok; *length receives
 * their count. An id out of range gives nothing. */
const char *at_tokenizer_token_to_piece (AtTokenizer *tok, gint32 id, gboolean special,
                                         gsize *length);

/* The text of n_ids tokens: the pieces in order, less the one space that SentencePiece's
 * add_space_prefix put in front. NUL-terminated; *length (may be NULL) receives the
 * length. Not necessarily valid UTF-8 when ids is an arbitrary sequence. */
char *at_tokenizer_decode (AtTokenizer *tok, const gint32 *ids, gsize n_ids, gboolean special,
                           gsize *length);

gsize at_tokenizer_get_n_tokens (AtTokenizer *tok);
/* The token's text as the vocabulary spells it ("▁Hello", "Ġworld"); NULL if out of range. */
const char *at_tokenizer_get_token_text (AtTokenizer *tok, gint32 id);
AtTokenType at_tokenizer_get_token_type (AtTokenizer *tok, gint32 id);
/* The id of a token spelled exactly text, or -1. */
gint32 at_tokenizer_find_token (AtTokenizer *tok, const char *text);
gint32 at_tokenizer_get_bos (AtTokenizer *tok);
gint32 at_tokenizer_get_eos (AtTokenizer *tok);
gint32 at_tokenizer_get_eot (AtTokenizer *tok);
/* Whether generation should stop at id: EOS, EOT, or a control token that ends a turn
 * in the common chat formats (<|eot_id|>, <|im_end|>, <|endoftext|>, <end_of_turn>...). */
gboolean at_tokenizer_is_end_of_generation (AtTokenizer *tok, gint32 id);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtTokenizer, at_tokenizer_unref)

/* Turns a stream of ids into text one token at a time, holding back a UTF-8 sequence
 * until its last byte has come, so that every chunk it gives is valid UTF-8 (a byte
 * that can never start or continue a valid sequence comes out as U+FFFD). */
typedef struct _AtDetokenizer AtDetokenizer;

AtDetokenizer *at_detokenizer_new (AtTokenizer *tok, gboolean special);
void at_detokenizer_free (AtDetokenizer *detok);
/* The text that token id completes (often "", never NULL); free with g_free. */
char *at_detokenizer_push (AtDetokenizer *detok, gint32 id);
/* What is still held back at the end of the stream, as U+FFFD per incomplete
 * sequence ("" when nothing); free with g_free. The detokenizer starts over. */
char *at_detokenizer_flush (AtDetokenizer *detok);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtDetokenizer, at_detokenizer_free)

G_END_DECLS
