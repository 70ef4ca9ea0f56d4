/* at-tokenizer-spm.c: SentencePiece encoding as llama.cpp does it.
 *
 * The text, with spaces written as U+2581, starts as one symbol per UTF-8 character.
 * Repeatedly the adjacent pair whose concatenation is the vocabulary token of highest
 * score is merged (ties: the leftmost), until no adjacent pair forms a token. Symbols
 * left that are not tokens (single characters outside the vocabulary) are written as
 * their bytes' <0xXX> tokens. A priority queue with lazy deletion of stale pairs keeps
 * this O(n log n).
 *
 * One departure from llama.cpp: a U+2581 written in the text itself would decode as a
 * space, so it is kept out of merges and written as its three bytes, which decode to
 * U+2581 again; decode (encode (text)) == text holds for every text.
 */
#include "at-tokenizer-private.h"

#include <string.h>

static const char spm_space[] = "\xe2\x96\x81"; /* U+2581 LOWER ONE EIGHTH BLOCK */

/* The length of the UTF-8 sequence led by byte c; a stray continuation byte is a
 * symbol of its own. */
static gsize
utf8_sequence_length (guint8 c)
{
  static const guint8 lengths[16] = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4 };
  return lengths[c >> 4];
}

static void
try_add_bigram (AtTokenizer *tok, const AtSymbol *symbols, gint left, gint right, GArray *queue)
{
  AtBigram bigram;
  gint32 id;

  if (left < 0 || right < 0 || symbols[left].literal || symbols[right].literal)
    return;
  bigram.size = symbols[left].n + symbols[right].n;
  id = at_tokenizer_lookup (tok, symbols[left].text, bigram.size);
  if (id < 0)
    return;
  bigram.left = left;
  bigram.right = right;
  bigram.priority = tok->scores[id];
  bigram.result = id;
  at_bigram_queue_push (queue, &bigram);
}

static void
append_symbol (AtTokenizer *tok, const AtSymbol *symbol, GArray *ids)
{
  gint32 id = symbol->literal ? -1 : at_tokenizer_lookup (tok, symbol->text, symbol->n);

  if (id >= 0)
    {
      g_array_append_val (ids, id);
      return;
    }
  for (gsize i = 0; i < symbol->n; i++)
    {
      id = tok->byte_ids[(guint8)symbol->text[i]];
      if (id < 0)
        id = tok->unk_id;
      if (id >= 0)
        g_array_append_val (ids, id);
    }
}

void
at_tokenizer_spm_encode (AtTokenizer *tok, const char *text, gsize length, gboolean space_prefix,
                         GArray *ids)
{
  g_autoptr (GString) escaped = g_string_sized_new (length + length / 2 + 3);
  g_autoptr (GArray) literal = g_array_new (FALSE, TRUE, sizeof (gboolean));
  g_autoptr (GArray) symbols = g_array_new (FALSE, FALSE, sizeof (AtSymbol));
  AtSymbol *sym;

  if (space_prefix)
    g_string_append (escaped, spm_space);
  g_array_set_size (literal, 3 * length + 4); /* the longest escaped text, one past */
  for (gsize i = 0; i < length; i++)
    {
      if (text[i] == ' ')
        g_string_append (escaped, spm_space);
      else
        {
          if (length - i >= 3 && memcmp (text + i, spm_space, 3) == 0)
            g_array_index (literal, gboolean, escaped->len) = TRUE;
          g_string_append_c (escaped, text[i]);
        }
    }

  for (gsize offset = 0; offset < escaped->len;)
    {
      AtSymbol s = { 0 };

      s.text = escaped->str + offset;
      s.n = MIN (utf8_sequence_length (escaped->str[offset]), escaped->len - offset);
      s.prev = (gint)symbols->len - 1;
      s.next = offset + s.n < escaped->len ? (gint)symbols->len + 1 : -1;
      s.literal = g_array_index (literal, gboolean, offset);
      offset += s.n;
      g_array_append_val (symbols, s);
    }
  sym = (AtSymbol *)symbols->data;

  at_symbols_merge (tok, sym, symbols->len, try_add_bigram);

  for (gint i = symbols->len > 0 ? 0 : -1; i >= 0; i = sym[i].next)
    append_symbol (tok, &sym[i], ids);
}
