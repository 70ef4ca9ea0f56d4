/* at-tokenizer.c: the vocabulary, special tokens, decoding and the streaming
 * detokenizer; the two models' encoders are in at-tokenizer-spm.c and -bpe.c. */
#include "at-tokenizer-private.h"

#include "at-error.h"

#include <string.h>

static const struct
{
  const char *name;
  AtPreTokenizer pre;
} pre_tokenizers[] = {
  { "llama3", AT_PRE_LLAMA3 },    { "llama-v3", AT_PRE_LLAMA3 },
  { "llama-bpe", AT_PRE_LLAMA3 }, { "smaug-bpe", AT_PRE_LLAMA3 },
  { "qwen2", AT_PRE_QWEN2 },      { "deepseek-r1-qwen", AT_PRE_QWEN2 },
  { "gpt-2", AT_PRE_GPT2 },       { "gpt2", AT_PRE_GPT2 },
  { "smollm", AT_PRE_SMOLLM },    { "starcoder", AT_PRE_SMOLLM },
};

/* Control tokens that end a turn in the common chat formats, in the order llama.cpp
 * picks an EOT token from them when the file names none. */
static const char *const end_of_turn_texts[] = {
  "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>",
};

void
at_tokenizer_spec_init (AtTokenizerSpec *spec, const char *model, const char *pre)
{
  memset (spec, 0, sizeof *spec);
  spec->model = model;
  spec->pre = pre;
  spec->bos_id = spec->eos_id = spec->eot_id = spec->unk_id = spec->pad_id = -1;
  if (g_strcmp0 (model, "llama") == 0)
    {
      spec->bos_id = 1;
      spec->eos_id = 2;
      spec->unk_id = 0;
      spec->add_bos = TRUE;
      spec->add_space_prefix = TRUE;
    }
  else
    {
      for (gsize i = 0; i < G_N_ELEMENTS (pre_tokenizers); i++)
        if (g_strcmp0 (pre, pre_tokenizers[i].name) == 0)
          spec->add_bos = pre_tokenizers[i].pre == AT_PRE_LLAMA3;
    }
}

/* The byte-level alphabet: printable Latin-1 bytes stand for themselves, the others
 * (controls, space, 0x7f-0xa0, 0xad) for U+0100 onwards in byte order. */
gunichar
at_bpe_byte_to_cpt (guint8 b)
{
  if ((b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || b >= 0xae)
    return b;
  if (b <= 0x20)
    return 0x100 + b;
  if (b <= 0xa0)
    return 0x100 + 0x21 + (b - 0x7f);
  return 0x100 + 0x21 + 0x22; /* 0xad, the soft hyphen */
}

static guint32
hash_bytes (const char *text, gsize length)
{
  guint32 h = 2166136261u; /* FNV-1a */

  for (gsize i = 0; i < length; i++)
    h = (h ^ (guint8)text[i]) * 16777619u;
  return h;
}

static const char *
token_text (AtTokenizer *tok, gint32 id, gsize *length)
{
  *length = tok->text_offset[id + 1] - tok->text_offset[id] - 1;
  return tok->text_data + tok->text_offset[id];
}

gint32
at_tokenizer_lookup (AtTokenizer *tok, const char *text, gsize length)
{
  for (guint32 slot = hash_bytes (text, length) & tok->hash_mask;;
       slot = (slot + 1) & tok->hash_mask)
    {
      gint32 id = tok->hash[slot];
      gsize n;
      const char *t;

      if (id < 0)
        return -1;
      t = token_text (tok, id, &n);
      if (n == length && memcmp (t, text, length) == 0)
        return id;
    }
}

/* Later duplicates win, as in llama.cpp's token-to-id map. */
static void
build_hash (AtTokenizer *tok)
{
  guint32 size = 16;

  while (size < 2 * tok->n_tokens)
    size *= 2;
  tok->hash_mask = size - 1;
  tok->hash = g_new (gint32, size);
  memset (tok->hash, 0xff, size * sizeof (gint32));
  for (gsize id = 0; id < tok->n_tokens; id++)
    {
      gsize length;
      const char *text = token_text (tok, (gint32)id, &length);
      guint32 slot = hash_bytes (text, length) & tok->hash_mask;

      while (tok->hash[slot] >= 0)
        {
          gsize n;
          const char *t = token_text (tok, tok->hash[slot], &n);
          if (n == length && memcmp (t, text, length) == 0)
            break;
          slot = (slot + 1) & tok->hash_mask;
        }
      tok->hash[slot] = (gint32)id;
    }
}

/* What each token decodes to. */
static void
build_pieces (AtTokenizer *tok)
{
  g_autoptr (GString) pieces = g_string_new (NULL);
  gint byte_of_cpt[0x144];

  memset (byte_of_cpt, 0xff, sizeof byte_of_cpt);
  for (guint b = 0; b < 256; b++)
    byte_of_cpt[at_bpe_byte_to_cpt ((guint8)b)] = (gint)b;

  tok->piece_offset = g_new (guint32, tok->n_tokens + 1);
  for (gsize id = 0; id < tok->n_tokens; id++)
    {
      gsize length;
      const char *text = token_text (tok, (gint32)id, &length);
      const char *end = text + length;

      tok->piece_offset[id] = (guint32)pieces->len;
      switch (tok->types[id])
        {
        case AT_TOKEN_TYPE_NORMAL:
          if (tok->is_spm)
            {
              for (const char *p = text; p < end; p++)
                {
                  if (end - p >= 3 && memcmp (p, "\xe2\x96\x81", 3) == 0)
                    {
                      g_string_append_c (pieces, ' ');
                      p += 2;
                    }
                  else
                    g_string_append_c (pieces, *p);
                }
            }
          else
            {
              for (const char *p = text; p < end; p = g_utf8_next_char (p))
                {
                  gunichar c = g_utf8_get_char (p);
                  if (c < G_N_ELEMENTS (byte_of_cpt) && byte_of_cpt[c] >= 0)
                    g_string_append_c (pieces, (char)byte_of_cpt[c]);
                  else
                    g_string_append_len (pieces, p, g_utf8_next_char (p) - p);
                }
            }
          break;
        case AT_TOKEN_TYPE_BYTE:
          if (tok->is_spm && length == 6 && g_str_has_prefix (text, "<0x"))
            g_string_append_c (pieces, (char)g_ascii_strtoull (text + 3, NULL, 16));
          break;
        case AT_TOKEN_TYPE_UNKNOWN:
        case AT_TOKEN_TYPE_CONTROL:
        case AT_TOKEN_TYPE_USER_DEFINED:
          g_string_append_len (pieces, text, (gssize)length);
          break;
        default:
          break;
        }
    }
  tok->piece_offset[tok->n_tokens] = (guint32)pieces->len;
  tok->piece_data = g_string_free (g_steal_pointer (&pieces), FALSE);
}

static int
compare_merges (gconstpointer a, gconstpointer b)
{
  const AtMerge *x = a, *y = b;

  if (x->pair != y->pair)
    return x->pair < y->pair ? -1 : 1;
  return x->rank < y->rank ? -1 : x->rank > y->rank;
}

/* Merges whose parts or result are not tokens could never apply to a symbol that is
 * one, so they are left out; a pair listed twice keeps its first rank. */
static void
build_merges (AtTokenizer *tok, const AtTokenizerSpec *spec)
{
  gsize n = 0;

  tok->merges = g_new (AtMerge, MAX (spec->n_merges, 1));
  for (gsize i = 0; i < spec->n_merges; i++)
    {
      const char *merge = spec->merges[i];
      const char *space = merge[0] != '\0' ? strchr (merge + 1, ' ') : NULL;
      g_autofree char *joined = NULL;
      gint32 left, right, result;

      if (space == NULL)
        continue;
      left = at_tokenizer_lookup (tok, merge, space - merge);
      right = at_tokenizer_lookup (tok, space + 1, strlen (space + 1));
      joined = g_strdup_printf ("%.*s%s", (int)(space - merge), merge, space + 1);
      result = at_tokenizer_lookup (tok, joined, strlen (joined));
      if (left < 0 || right < 0 || result < 0)
        continue;
      tok->merges[n].pair = (guint64)(guint32)left << 32 | (guint32)right;
      tok->merges[n].rank = (gint32)i;
      tok->merges[n].result = result;
      n++;
    }
  qsort (tok->merges, n, sizeof (AtMerge), compare_merges);
  tok->n_merges = 0;
  for (gsize i = 0; i < n; i++)
    if (tok->n_merges == 0 || tok->merges[tok->n_merges - 1].pair != tok->merges[i].pair)
      tok->merges[tok->n_merges++] = tok->merges[i];
}

static int
compare_specials (gconstpointer a, gconstpointer b, gpointer user_data)
{
  AtTokenizer *tok = user_data;
  gint32 x = *(const gint32 *)a, y = *(const gint32 *)b;
  gsize lx, ly;

  token_text (tok, x, &lx);
  token_text (tok, y, &ly);
  if (lx != ly)
    return lx > ly ? -1 : 1;
  return x < y ? -1 : x > y;
}

static void
build_specials (AtTokenizer *tok)
{
  tok->specials = g_new (gint32, tok->n_tokens);
  for (gsize id = 0; id < tok->n_tokens; id++)
    {
      gsize length;

      token_text (tok, (gint32)id, &length);
      if (length > 0
          && (tok->types[id] == AT_TOKEN_TYPE_CONTROL
              || tok->types[id] == AT_TOKEN_TYPE_USER_DEFINED
              || tok->types[id] == AT_TOKEN_TYPE_UNKNOWN))
        tok->specials[tok->n_specials++] = (gint32)id;
    }
  g_qsort_with_data (tok->specials, (gint)tok->n_specials, sizeof (gint32), compare_specials, tok);
}

static gboolean
check_id (const AtTokenizerSpec *spec, gint32 *id, const char *what, GError **error)
{
  if (*id >= -1 && *id < (gint64)spec->n_tokens)
    return TRUE;
  g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
               "tokenizer: %s token id %d is not in the vocabulary of %" G_GSIZE_FORMAT " tokens",
               what, *id, spec->n_tokens);
  return FALSE;
}

AtTokenizer *
at_tokenizer_new (const AtTokenizerSpec *spec, GError **error)
{
  g_autoptr (AtTokenizer) tok = g_new0 (AtTokenizer, 1);
  g_autoptr (GString) texts = g_string_new (NULL);
  gsize i;

  tok->ref_count = 1;
  if (g_strcmp0 (spec->model, "llama") == 0)
    tok->is_spm = TRUE;
  else if (g_strcmp0 (spec->model, "gpt2") == 0)
    {
      const char *pre = spec->pre != NULL ? spec->pre : "default";

      for (i = 0; i < G_N_ELEMENTS (pre_tokenizers); i++)
        if (strcmp (pre, pre_tokenizers[i].name) == 0)
          break;
      if (i == G_N_ELEMENTS (pre_tokenizers))
        {
          g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                       "tokenizer: unsupported pre-tokenizer '%s'", pre);
          return NULL;
        }
      tok->pre = pre_tokenizers[i].pre;
      tok->ignore_merges = tok->pre == AT_PRE_LLAMA3;
    }
  else
    {
      g_set_error (error, AT_ERROR, AT_ERROR_UNSUPPORTED,
                   "tokenizer: unsupported tokenizer model '%s'",
                   spec->model != NULL ? spec->model : "(none)");
      return NULL;
    }
  if (spec->n_tokens == 0 || spec->n_tokens > G_MAXINT32 / 2)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   "tokenizer: a vocabulary of %" G_GSIZE_FORMAT " tokens", spec->n_tokens);
      return NULL;
    }

  tok->n_tokens = spec->n_tokens;
  tok->text_offset = g_new (guint32, tok->n_tokens + 1);
  tok->scores = g_new0 (float, tok->n_tokens);
  tok->types = g_new (guint8, tok->n_tokens);
  for (i = 0; i < tok->n_tokens; i++)
    {
      gint32 type = spec->token_types != NULL ? spec->token_types[i] : AT_TOKEN_TYPE_NORMAL;

      if (spec->tokens[i] == NULL || texts->len > G_MAXUINT32 / 2)
        {
          g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                       "tokenizer: token %" G_GSIZE_FORMAT " has no text", i);
          return NULL;
        }
      tok->text_offset[i] = (guint32)texts->len;
      g_string_append (texts, spec->tokens[i]);
      g_string_append_c (texts, '\0');
      if (spec->scores != NULL)
        tok->scores[i] = spec->scores[i];
      tok->types[i] = type >= AT_TOKEN_TYPE_UNDEFINED && type <= AT_TOKEN_TYPE_BYTE
                          ? (guint8)type
                          : AT_TOKEN_TYPE_UNDEFINED;
    }
  tok->text_offset[tok->n_tokens] = (guint32)texts->len;
  tok->text_data = g_string_free (g_steal_pointer (&texts), FALSE);

  tok->bos_id = spec->bos_id;
  tok->eos_id = spec->eos_id;
  tok->eot_id = spec->eot_id;
  tok->unk_id = spec->unk_id;
  tok->pad_id = spec->pad_id;
  if (!check_id (spec, &tok->bos_id, "BOS", error) || !check_id (spec, &tok->eos_id, "EOS", error)
      || !check_id (spec, &tok->eot_id, "EOT", error)
      || !check_id (spec, &tok->unk_id, "unknown", error)
      || !check_id (spec, &tok->pad_id, "padding", error))
    return NULL;
  tok->add_bos = spec->add_bos;
  tok->add_eos = spec->add_eos;
  tok->add_space_prefix = tok->is_spm && spec->add_space_prefix;

  build_hash (tok);
  build_pieces (tok);
  build_specials (tok);
  for (i = 0; i < 256; i++)
    {
      char text[8];

      if (tok->is_spm)
        g_snprintf (text, sizeof text, "<0x%02X>", (guint)i);
      else
        text[g_unichar_to_utf8 (at_bpe_byte_to_cpt ((guint8)i), text)] = '\0';
      tok->byte_ids[i] = at_tokenizer_lookup (tok, text, strlen (text));
    }
  if (!tok->is_spm)
    build_merges (tok, spec);
  for (i = 0; tok->eot_id < 0 && i < G_N_ELEMENTS (end_of_turn_texts); i++)
    {
      gint32 id = at_tokenizer_find_token (tok, end_of_turn_texts[i]);
      if (id >= 0 && tok->types[id] == AT_TOKEN_TYPE_CONTROL)
        tok->eot_id = id;
    }
  return g_steal_pointer (&tok);
}

AtTokenizer *
at_tokenizer_ref (AtTokenizer *tok)
{
  g_atomic_int_inc (&tok->ref_count);
  return tok;
}

void
at_tokenizer_unref (AtTokenizer *tok)
{
  if (tok == NULL || !g_atomic_int_dec_and_test (&tok->ref_count))
    return;
  g_free (tok->text_data);
  g_free (tok->text_offset);
  g_free (tok->scores);
  g_free (tok->types);
  g_free (tok->piece_data);
  g_free (tok->piece_offset);
  g_free (tok->hash);
  g_free (tok->merges);
  g_free (tok->specials);
  g_free (tok);
}

void
at_bigram_queue_push (GArray *queue, const AtBigram *bigram)
{
  AtBigram *q;
  guint i;

  g_array_append_val (queue, *bigram);
  q = (AtBigram *)queue->data;
  for (i = queue->len - 1; i > 0;)
    {
      guint parent = (i - 1) / 2;
      if (q[parent].priority > q[i].priority
          || (q[parent].priority == q[i].priority && q[parent].left < q[i].left))
        break;
      AtBigram t = q[parent];
      q[parent] = q[i];
      q[i] = t;
      i = parent;
    }
}

static gboolean
bigram_better (const AtBigram *a, const AtBigram *b)
{
  return a->priority > b->priority || (a->priority == b->priority && a->left < b->left);
}

static gboolean
bigram_queue_pop (GArray *queue, AtBigram *best)
{
  AtBigram *q = (AtBigram *)queue->data;
  guint n, i = 0;

  if (queue->len == 0)
    return FALSE;
  *best = q[0];
  n = queue->len - 1;
  q[0] = q[n];
  g_array_set_size (queue, n);
  for (;;)
    {
      guint l = 2 * i + 1, r = l + 1, top = i;
      if (l < n && bigram_better (&q[l], &q[top]))
        top = l;
      if (r < n && bigram_better (&q[r], &q[top]))
        top = r;
      if (top == i)
        break;
      AtBigram t = q[top];
      q[top] = q[i];
      q[i] = t;
      i = top;
    }
  return TRUE;
}

void
at_symbols_merge (AtTokenizer *tok, AtSymbol *symbols, gsize n_symbols, AtTryBigram try_add)
{
  g_autoptr (GArray) queue = g_array_new (FALSE, FALSE, sizeof (AtBigram));
  AtBigram bigram;

  for (gsize i = 1; i < n_symbols; i++)
    try_add (tok, symbols, (gint)i - 1, (gint)i, queue);
  while (bigram_queue_pop (queue, &bigram))
    {
      AtSymbol *left = &symbols[bigram.left], *right = &symbols[bigram.right];

      if (left->n == 0 || right->n == 0 || left->n + right->n != bigram.size)
        continue;
      left->id = bigram.result;
      left->n += right->n;
      right->n = 0;
      left->next = right->next;
      if (right->next >= 0)
        symbols[right->next].prev = bigram.left;
      try_add (tok, symbols, left->prev, bigram.left, queue);
      try_add (tok, symbols, bigram.left, left->next, queue);
    }
}

static const char *
find_bytes (const char *haystack, gsize length, const char *needle, gsize n)
{
  for (const char *p = haystack; n <= length && p <= haystack + (length - n); p++)
    {
      p = memchr (p, needle[0], haystack + (length - n) - p + 1);
      if (p == NULL)
        return NULL;
      if (memcmp (p, needle, n) == 0)
        return p;
    }
  return NULL;
}

/* A stretch of the text: plain text (id -1) or a special token. */
typedef struct
{
  gsize start, length;
  gint32 id;
} Fragment;

/* Splits the text around special tokens the way llama.cpp does: longest tokens first,
 * each cutting every plain stretch at its leftmost non-overlapping occurrences. */
static GArray *
partition_specials (AtTokenizer *tok, const char *text, gsize length, gboolean parse_special)
{
  GArray *fragments = g_array_new (FALSE, FALSE, sizeof (Fragment));
  Fragment whole = { 0, length, -1 };

  g_array_append_val (fragments, whole);
  for (gsize s = 0; s < tok->n_specials; s++)
    {
      gint32 id = tok->specials[s];
      gsize n;
      const char *special = token_text (tok, id, &n);
      g_autoptr (GArray) split = NULL;

      if (!parse_special && tok->types[id] != AT_TOKEN_TYPE_USER_DEFINED)
        continue;
      split = g_array_sized_new (FALSE, FALSE, sizeof (Fragment), fragments->len);
      for (guint f = 0; f < fragments->len; f++)
        {
          Fragment frag = g_array_index (fragments, Fragment, f);
          const char *p = text + frag.start, *end = p + frag.length, *hit;

          while (frag.id < 0 && (hit = find_bytes (p, end - p, special, n)) != NULL)
            {
              Fragment before = { p - text, hit - p, -1 }, token = { hit - text, n, id };
              if (before.length > 0)
                g_array_append_val (split, before);
              g_array_append_val (split, token);
              p = hit + n;
            }
          if (frag.id >= 0)
            g_array_append_val (split, frag);
          else if (p < end)
            {
              Fragment rest = { p - text, end - p, -1 };
              g_array_append_val (split, rest);
            }
        }
      g_array_unref (fragments);
      fragments = g_steal_pointer (&split);
    }
  return fragments;
}

GArray *
at_tokenizer_encode (AtTokenizer *tok, const char *text, gssize length, AtTokenizeFlags flags)
{
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  gboolean add_special = (flags & AT_TOKENIZE_ADD_SPECIAL) != 0;
  gsize n = length < 0 ? strlen (text) : (gsize)length;
  gboolean prev_special = TRUE;
  g_autoptr (GArray) fragments = NULL;

  if (add_special && tok->add_bos && tok->bos_id >= 0)
    g_array_append_val (ids, tok->bos_id);
  if (n > 0)
    fragments = partition_specials (tok, text, n, (flags & AT_TOKENIZE_PARSE_SPECIAL) != 0);
  for (guint f = 0; fragments != NULL && f < fragments->len; f++)
    {
      const Fragment *frag = &g_array_index (fragments, Fragment, f);

      if (frag->id >= 0)
        g_array_append_val (ids, frag->id);
      else if (tok->is_spm)
        /* SentencePiece sees each stretch as a text of its own, so one after a special
         * token gets the space prefix again. */
        at_tokenizer_spm_encode (tok, text + frag->start, frag->length,
                                 tok->add_space_prefix && prev_special, ids);
      else
        at_tokenizer_bpe_encode (tok, text + frag->start, frag->length, ids);
      prev_special = frag->id >= 0;
    }
  if (add_special && tok->add_eos && tok->eos_id >= 0)
    g_array_append_val (ids, tok->eos_id);
  return ids;
}

const char *
at_tokenizer_token_to_piece (AtTokenizer *tok, gint32 id, gboolean special, gsize *length)
{
  *length = 0;
  if (id < 0 || (gsize)id >= tok->n_tokens)
    return "";
  if (!special
      && (tok->types[id] == AT_TOKEN_TYPE_CONTROL || tok->types[id] == AT_TOKEN_TYPE_UNKNOWN))
    return "";
  *length = tok->piece_offset[id + 1] - tok->piece_offset[id];
  return tok->piece_data + tok->piece_offset[id];
}

/* Appends id's piece to out; *at_start tracks whether nothing has been written yet, for
 * the removal of SentencePiece's space prefix from the first piece. */
static void
append_piece (AtTokenizer *tok, gint32 id, gboolean special, gboolean *at_start, GString *out)
{
  gsize length;
  const char *piece = at_tokenizer_token_to_piece (tok, id, special, &length);

  if (length == 0)
    return;
  if (*at_start && tok->add_space_prefix && piece[0] == ' ')
    {
      piece++;
      length--;
    }
  *at_start = FALSE;
  g_string_append_len (out, piece, (gssize)length);
}

char *
at_tokenizer_decode (AtTokenizer *tok, const gint32 *ids, gsize n_ids, gboolean special,
                     gsize *length)
{
  GString *out = g_string_new (NULL);
  gboolean at_start = TRUE;

  for (gsize i = 0; i < n_ids; i++)
    append_piece (tok, ids[i], special, &at_start, out);
  if (length != NULL)
    *length = out->len;
  return g_string_free (out, FALSE);
}

gsize
at_tokenizer_get_n_tokens (AtTokenizer *tok)
{
  return tok->n_tokens;
}

const char *
at_tokenizer_get_token_text (AtTokenizer *tok, gint32 id)
{
  gsize length;

  return id >= 0 && (gsize)id < tok->n_tokens ? token_text (tok, id, &length) : NULL;
}

AtTokenType
at_tokenizer_get_token_type (AtTokenizer *tok, gint32 id)
{
  return id >= 0 && (gsize)id < tok->n_tokens ? tok->types[id] : AT_TOKEN_TYPE_UNDEFINED;
}

gint32
at_tokenizer_find_token (AtTokenizer *tok, const char *text)
{
  return at_tokenizer_lookup (tok, text, strlen (text));
}

gint32
at_tokenizer_get_bos (AtTokenizer *tok)
{
  return tok->bos_id;
}

gint32
at_tokenizer_get_eos (AtTokenizer *tok)
{
  return tok->eos_id;
}

gint32
at_tokenizer_get_eot (AtTokenizer *tok)
{
  return tok->eot_id;
}

gboolean
at_tokenizer_is_end_of_generation (AtTokenizer *tok, gint32 id)
{
  const char *text = at_tokenizer_get_token_text (tok, id);

  if (id < 0 || text == NULL)
    return FALSE;
  if (id == tok->eos_id || id == tok->eot_id)
    return TRUE;
  if (tok->types[id] != AT_TOKEN_TYPE_CONTROL)
    return FALSE;
  for (gsize i = 0; i < G_N_ELEMENTS (end_of_turn_texts); i++)
    if (strcmp (text, end_of_turn_texts[i]) == 0)
      return TRUE;
  return FALSE;
}

struct _AtDetokenizer
{
  AtTokenizer *tok;
  gboolean special;
  gboolean at_start;
  GString *pending; /* bytes not yet given out: the start of an unfinished sequence */
};

AtDetokenizer *
at_detokenizer_new (AtTokenizer *tok, gboolean special)
{
  AtDetokenizer *detok = g_new0 (AtDetokenizer, 1);

  detok->tok = at_tokenizer_ref (tok);
  detok->special = special;
  detok->at_start = TRUE;
  detok->pending = g_string_new (NULL);
  return detok;
}

void
at_detokenizer_free (AtDetokenizer *detok)
{
  if (detok == NULL)
    return;
  at_tokenizer_unref (detok->tok);
  g_string_free (detok->pending, TRUE);
  g_free (detok);
}

/* Moves the valid UTF-8 of pending to a new string; with final, an unfinished sequence
 * at the end is given out as U+FFFD too, else kept for the next token. */
static char *
take_valid (AtDetokenizer *detok, gboolean final)
{
  GString *out = g_string_sized_new (detok->pending->len);
  const char *p = detok->pending->str, *end = p + detok->pending->len;

  while (p < end)
    {
      gunichar c = g_utf8_get_char_validated (p, end - p);

      if (c == (gunichar)-2 && *p != '\0')
        {
          /* The start of a sequence: wait for the rest, or give it up at the end. */
          if (!final)
            break;
          g_string_append (out, "\xef\xbf\xbd");
          p = end;
        }
      else if (c == (gunichar)-1 || c == (gunichar)-2)
        {
          g_string_append (out, "\xef\xbf\xbd");
          p++;
        }
      else
        {
          g_string_append_len (out, p, g_utf8_next_char (p) - p);
          p = g_utf8_next_char (p);
        }
    }
  g_string_erase (detok->pending, 0, p - detok->pending->str);
  return g_string_free (out, FALSE);
}

char *
at_detokenizer_push (AtDetokenizer *detok, gint32 id)
{
  append_piece (detok->tok, id, detok->special, &detok->at_start, detok->pending);
  return take_valid (detok, FALSE);
}

char *
at_detokenizer_flush (AtDetokenizer *detok)
{
  char *rest = take_valid (detok, TRUE);

  detok->at_start = TRUE;
  return rest;
}
