/* at-tokenizer-bpe.c: byte-level BPE (GPT-2 style) as llama.cpp does it.
 *
 * 1. The pre-tokenizer splits the text into words with the model's regular
 *    expression, written here as a scanner over Unicode categories; the expressions:
 *      llama3  (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
 *              | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 *      qwen2   the same with \p{N} for \p{N}{1,3}
 *      gpt2    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *      smollm  \p{N} first, then gpt2 inside what is left
 *    Alternatives are tried in order, the first that matches wins.
 * 2. Each byte of a word becomes a symbol (the token of its byte-level character);
 *    adjacent symbols are merged lowest merge rank first (ties: the leftmost) until no
 *    adjacent pair has a merge.
 */
#include "at-tokenizer-private.h"

enum
{
  CAT_LETTER = 1 << 0,
  CAT_NUMBER = 1 << 1,
  CAT_SPACE = 1 << 2,
};

typedef struct
{
  gunichar c;
  guint8 cat;
  guint32 offset; /* of its first byte in the text */
} Cpt;

/* \s as Unicode's White_Space property, as Python's and Rust's regex (and llama.cpp)
 * have it; g_unichar_isspace leaves out \v and U+0085. */
static gboolean
is_white_space (gunichar c)
{
  return (c >= 0x09 && c <= 0x0d) || c == 0x20 || c == 0x85 || c == 0xa0 || c == 0x1680
         || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f
         || c == 0x3000;
}

static guint8
category (gunichar c)
{
  guint8 cat = is_white_space (c) ? CAT_SPACE : 0;

  switch (g_unichar_type (c))
    {
    case G_UNICODE_UPPERCASE_LETTER:
    case G_UNICODE_LOWERCASE_LETTER:
    case G_UNICODE_TITLECASE_LETTER:
    case G_UNICODE_MODIFIER_LETTER:
    case G_UNICODE_OTHER_LETTER:
      return cat | CAT_LETTER;
    case G_UNICODE_DECIMAL_NUMBER:
    case G_UNICODE_LETTER_NUMBER:
    case G_UNICODE_OTHER_NUMBER:
      return cat | CAT_NUMBER;
    default:
      return cat;
    }
}

/* The code points of text. A byte that does not begin a valid sequence stands alone as
 * an uncategorized character, so that every byte stays in some word. */
static GArray *
decode_cpts (const char *text, gsize length)
{
  GArray *cpts = g_array_sized_new (FALSE, FALSE, sizeof (Cpt), length + 1);
  gsize i = 0;

  while (i < length)
    {
      Cpt cpt = { .offset = (guint32)i };
      gunichar c = g_utf8_get_char_validated (text + i, (gssize)(length - i));

      if (c == (gunichar)-1 || c == (gunichar)-2)
        {
          cpt.c = 0xfffd;
          i++;
        }
      else
        {
          cpt.c = c;
          cpt.cat = category (c);
          i = g_utf8_next_char (text + i) - text;
        }
      g_array_append_val (cpts, cpt);
    }
  return cpts;
}

/* Code points [begin, end) of one run being split; outside it nothing matches. */
typedef struct
{
  const Cpt *c;
  gsize begin, end;
  GArray *word_ends; /* gsize: code point index where each word ends */
  gsize prev_end;
} Scan;

static gunichar
cpt_at (const Scan *s, gsize pos)
{
  return pos < s->end ? s->c[pos].c : (gunichar)-1;
}

static gboolean
has (const Scan *s, gsize pos, guint8 cat)
{
  return pos < s->end && (s->c[pos].cat & cat);
}

/* In the run and not \s, \p{L} or \p{N}. */
static gboolean
is_other (const Scan *s, gsize pos)
{
  return pos < s->end && !(s->c[pos].cat & (CAT_LETTER | CAT_NUMBER | CAT_SPACE));
}

static gsize
add_word (Scan *s, gsize end)
{
  gsize len = end - s->prev_end;

  if (len > 0)
    g_array_append_val (s->word_ends, end);
  s->prev_end = end;
  return len;
}

/* 's|'t|'re|'ve|'m|'ll|'d at pos: the length matched, or 0. */
static gsize
contraction (const Scan *s, gsize pos, gboolean ignore_case)
{
  gunichar c1, c2;

  if (cpt_at (s, pos) != '\'' || pos + 1 >= s->end)
    return 0;
  c1 = cpt_at (s, pos + 1);
  c2 = pos + 2 < s->end ? cpt_at (s, pos + 2) : 0;
  if (ignore_case)
    {
      c1 = c1 < 0x80 ? (gunichar)g_ascii_tolower ((gchar)c1) : c1;
      c2 = c2 < 0x80 ? (gunichar)g_ascii_tolower ((gchar)c2) : c2;
    }
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd')
    return 2;
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l'))
    return 3;
  return 0;
}

/* \s*[\r\n]+|\s+(?!\S)|\s+ at pos, where the text has whitespace (else 0). */
static gsize
whitespace_end (const Scan *s, gsize pos, gboolean newline_alternative)
{
  gsize n = 0, last_newline_end = 0;

  while (has (s, pos + n, CAT_SPACE))
    {
      gunichar c = cpt_at (s, pos + n);
      if (c == '\r' || c == '\n')
        last_newline_end = pos + n + 1;
      n++;
    }
  if (newline_alternative && last_newline_end > 0)
    return last_newline_end;
  /* Leave the last space to the word that follows. */
  if (n > 1 && pos + n < s->end)
    return pos + n - 1;
  return n > 0 ? pos + n : 0;
}

static void
split_llama3 (Scan *s, guint max_digits)
{
  gsize pos = s->begin;

  while (pos < s->end)
    {
      gunichar c = cpt_at (s, pos);
      gsize len, end;

      if ((len = contraction (s, pos, TRUE)) > 0)
        {
          pos += add_word (s, pos + len);
          continue;
        }
      /* [^\r\n\p{L}\p{N}]?\p{L}+ */
      if (c != '\r' && c != '\n' && !has (s, pos, CAT_NUMBER)
          && (has (s, pos, CAT_LETTER) || has (s, pos + 1, CAT_LETTER)))
        {
          pos++;
          while (has (s, pos, CAT_LETTER))
            pos++;
          add_word (s, pos);
          continue;
        }
      /* \p{N}{1,max_digits} */
      if (has (s, pos, CAT_NUMBER))
        {
          gsize start = pos;
          while (has (s, pos, CAT_NUMBER) && pos - start < max_digits)
            pos++;
          add_word (s, pos);
          continue;
        }
      /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
      if (is_other (s, c == ' ' ? pos + 1 : pos))
        {
          pos += (c == ' ');
          while (is_other (s, pos))
            pos++;
          while (cpt_at (s, pos) == '\r' || cpt_at (s, pos) == '\n')
            pos++;
          add_word (s, pos);
          continue;
        }
      end = whitespace_end (s, pos, TRUE);
      pos = end > 0 ? end : pos + 1;
      add_word (s, pos);
    }
}

static void
split_gpt2 (Scan *s)
{
  gsize pos = s->begin;

  while (pos < s->end)
    {
      gunichar c = cpt_at (s, pos);
      gsize len, end, next = c == ' ' ? pos + 1 : pos;

      if ((len = contraction (s, pos, FALSE)) > 0)
        {
          pos += add_word (s, pos + len);
          continue;
        }
      /*  ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+ */
      if (has (s, next, CAT_LETTER) || has (s, next, CAT_NUMBER) || is_other (s, next))
        {
          guint8 cat = s->c[next].cat & (CAT_LETTER | CAT_NUMBER);
          pos = next;
          while (cat ? has (s, pos, cat) : is_other (s, pos))
            pos++;
          add_word (s, pos);
          continue;
        }
      end = whitespace_end (s, pos, FALSE);
      pos = end > 0 ? end : pos + 1;
      add_word (s, pos);
    }
}

static void
pre_tokenize (AtTokenizer *tok, const Cpt *cpts, gsize n, GArray *word_ends)
{
  Scan s = { .c = cpts, .begin = 0, .end = n, .word_ends = word_ends };

  switch (tok->pre)
    {
    case AT_PRE_LLAMA3:
      split_llama3 (&s, 3);
      break;
    case AT_PRE_QWEN2:
      split_llama3 (&s, 1);
      break;
    case AT_PRE_GPT2:
      split_gpt2 (&s);
      break;
    case AT_PRE_SMOLLM:
      while (s.begin < n)
        {
          if (cpts[s.begin].cat & CAT_NUMBER)
            {
              s.begin++;
              add_word (&s, s.begin);
              continue;
            }
          for (s.end = s.begin; s.end < n && !(cpts[s.end].cat & CAT_NUMBER); s.end++)
            ;
          split_gpt2 (&s);
          s.begin = s.end;
        }
      break;
    }
}

static const AtMerge *
find_merge (AtTokenizer *tok, gint32 left, gint32 right)
{
  guint64 pair = (guint64)(guint32)left << 32 | (guint32)right;
  gsize lo = 0, hi = tok->n_merges;

  while (lo < hi)
    {
      gsize mid = lo + (hi - lo) / 2;
      if (tok->merges[mid].pair < pair)
        lo = mid + 1;
      else
        hi = mid;
    }
  return lo < tok->n_merges && tok->merges[lo].pair == pair ? &tok->merges[lo] : NULL;
}

static void
try_add_bigram (AtTokenizer *tok, const AtSymbol *symbols, gint left, gint right, GArray *queue)
{
  const AtMerge *merge;
  AtBigram bigram;

  if (left < 0 || right < 0 || symbols[left].id < 0 || symbols[right].id < 0)
    return;
  merge = find_merge (tok, symbols[left].id, symbols[right].id);
  if (merge == NULL)
    return;
  bigram.left = left;
  bigram.right = right;
  bigram.priority = -(double)merge->rank;
  bigram.size = symbols[left].n + symbols[right].n;
  bigram.result = merge->result;
  at_bigram_queue_push (queue, &bigram);
}

static void
encode_word (AtTokenizer *tok, const guint8 *word, gsize length, GString *mapped, GArray *symbols,
             GArray *ids)
{
  AtSymbol *sym;

  if (tok->ignore_merges)
    {
      gint32 id;

      g_string_truncate (mapped, 0);
      for (gsize i = 0; i < length; i++)
        g_string_append_unichar (mapped, at_bpe_byte_to_cpt (word[i]));
      id = at_tokenizer_lookup (tok, mapped->str, mapped->len);
      if (id >= 0)
        {
          g_array_append_val (ids, id);
          return;
        }
    }

  g_array_set_size (symbols, length);
  sym = (AtSymbol *)symbols->data;
  for (gsize i = 0; i < length; i++)
    {
      sym[i] = (AtSymbol){ .id = tok->byte_ids[word[i]] };
      sym[i].n = 1;
      sym[i].prev = (gint)i - 1;
      sym[i].next = i + 1 < length ? (gint)i + 1 : -1;
    }
  at_symbols_merge (tok, sym, length, try_add_bigram);

  /* A byte without a token (a vocabulary lacking part of the byte alphabet) is dropped,
   * as llama.cpp drops it. */
  for (gint i = length > 0 ? 0 : -1; i >= 0; i = sym[i].next)
    if (sym[i].id >= 0)
      g_array_append_val (ids, sym[i].id);
}

void
at_tokenizer_bpe_encode (AtTokenizer *tok, const char *text, gsize length, GArray *ids)
{
  g_autoptr (GArray) cpts = decode_cpts (text, length);
  g_autoptr (GArray) word_ends = g_array_new (FALSE, FALSE, sizeof (gsize));
  g_autoptr (GArray) symbols = g_array_new (FALSE, FALSE, sizeof (AtSymbol));
  g_autoptr (GString) mapped = g_string_new (NULL);
  const Cpt *c = (const Cpt *)cpts->data;
  gsize start = 0;

  pre_tokenize (tok, c, cpts->len, word_ends);
  for (guint w = 0; w < word_ends->len; w++)
    {
      gsize end = g_array_index (word_ends, gsize, w);
      gsize byte_start = c[start].offset;
      gsize byte_end = end < cpts->len ? c[end].offset : length;

      encode_word (tok, (const guint8 *)text + byte_start, byte_end - byte_start, mapped, symbols,
                   ids);
      start = end;
    }
}
