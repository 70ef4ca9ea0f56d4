/* at-tokenizer-private.h: what the tokenizer's model files share. */
#pragma once

#include "at-tokenizer.h"

G_BEGIN_DECLS

typedef enum
{
  AT_PRE_LLAMA3, /* digits in threes */
  AT_PRE_QWEN2,  /* llama3's expression with single digits */
  AT_PRE_GPT2,
  AT_PRE_SMOLLM, /* every digit alone, then gpt2 */
} AtPreTokenizer;

/* One BPE merge: the pair (left << 32 | right) of token ids, its rank and the id of the
 * merged token. Sorted by pair for binary search. */
typedef struct
{
  guint64 pair;
  gint32 rank;
  gint32 result;
} AtMerge;

struct _AtTokenizer
{
  gint ref_count;
  gboolean is_spm;
  AtPreTokenizer pre;
  gboolean ignore_merges; /* llama3: a word that is a token is taken whole */

  gsize n_tokens;
  char *text_data;      /* every token's text, NUL-terminated, one after the other */
  guint32 *text_offset; /* n_tokens + 1 */
  float *scores;
  guint8 *types;
  char *piece_data; /* the decoded bytes of every token, as token_to_piece gives them */
  guint32 *piece_offset;

  gint32 *hash; /* open addressing over token ids, -1 = empty */
  guint32 hash_mask;

  AtMerge *merges;
  gsize n_merges;

  /* SentencePiece: the <0xXX> tokens; BPE: the token of each byte's character. */
  gint32 byte_ids[256];

  /* Control, user-defined and unknown tokens, longest text first: the ones found in
   * text before it reaches the model's own tokenization. */
  gint32 *specials;
  gsize n_specials;

  gint32 bos_id, eos_id, eot_id, unk_id, pad_id;
  gboolean add_bos, add_eos, add_space_prefix;
};

/* The id of the token spelled by length bytes at text, or -1. */
gint32 at_tokenizer_lookup (AtTokenizer *tok, const char *text, gsize length);

/* The byte-level BPE alphabet: byte b is written as code point at_bpe_byte_to_cpt (b). */
gunichar at_bpe_byte_to_cpt (guint8 b);

/* Candidate merges of two adjacent symbols, best first: higher priority, then the
 * leftmost. size is the byte length of the merged symbol, which tells a stale entry
 * (one of the two has changed since) from a live one. */
typedef struct
{
  gint left, right;
  double priority;
  gsize size;
  gint32 result;
} AtBigram;

void at_bigram_queue_push (GArray *queue, const AtBigram *bigram);

/* A piece of the text being merged, linked to its neighbours. */
typedef struct
{
  const char *text; /* SentencePiece: its bytes */
  gint32 id;        /* BPE: its token */
  gsize n;          /* bytes; 0 once merged into the symbol on its left */
  gint prev, next;
  gboolean literal; /* SentencePiece: a U+2581 of the text's own, bytes only */
} AtSymbol;

/* Queues the merge of symbols left and right if the model has one. */
typedef void (*AtTryBigram) (AtTokenizer *tok, const AtSymbol *symbols, gint left, gint right,
                             GArray *queue);

/* Merges the n_symbols linked symbols, best bigram first, until none is left. */
void at_symbols_merge (AtTokenizer *tok, AtSymbol *symbols, gsize n_symbols, AtTryBigram try_add);

/* Append the ids of one fragment of plain text (no special tokens in it). */
void at_tokenizer_spm_encode (AtTokenizer *tok, const char *text, gsize length,
                              gboolean space_prefix, GArray *ids);
void at_tokenizer_bpe_encode (AtTokenizer *tok, const char *text, gsize length, GArray *ids);

G_END_DECLS
