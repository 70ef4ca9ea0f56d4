#include "image/at-clip-tokenizer.h"

#include <gio/gio.h>
#include <string.h>

#include "at-error.h"
#include "image/at-prompt.h"

/* The vocabulary: 256 byte symbols, the same with "</w>", one token per merge, BOS, EOS. */
#define N_MERGES (49152 - 256 - 2)
#define N_VOCAB (512 + N_MERGES + 2)
#define END_OF_WORD "</w>"
/* A1111's comma_padding_backtrack: how far back a full chunk looks for a comma to cut at. */
#define COMMA_BACKTRACK 20

struct _AtClipTokenizer {
  char *tokens[N_VOCAB];
  GHashTable *ids;   /* token -> id + 1; a later duplicate wins, as in CLIP's dict */
  GHashTable *ranks; /* "first second" -> merge rank + 1 */
  char *byte_symbol[256];
  gint16 symbol_byte[324]; /* code point -> byte; the symbols lie below U+0144 */
  gint32 bos, eos, comma;
};

static void
init_byte_symbols (AtClipTokenizer *tokenizer)
{
  /* Printable Latin-1 bytes stand for themselves; the rest (controls, space, soft hyphen)
   * move to U+0100 onwards so that no symbol is whitespace or a control. Ids follow this
   * order: the printable ones first. */
  guint id = 0, shifted = 0;
  memset (tokenizer->symbol_byte, -1, sizeof tokenizer->symbol_byte);
  for (int pass = 0; pass < 2; pass++)
    for (guint b = 0; b < 256; b++)
      {
        gboolean printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;
        if (printable != (pass == 0))
          continue;
        gunichar c = printable ? b : 256 + shifted++;
        char utf8[8] = { 0 };
        g_unichar_to_utf8 (c, utf8);
        tokenizer->byte_symbol[b] = g_strdup (utf8);
        tokenizer->symbol_byte[c] = (gint16) b;
        tokenizer->tokens[id] = g_strdup (utf8);
        tokenizer->tokens[id + 256] = g_strconcat (utf8, END_OF_WORD, NULL);
        id++;
      }
}

void
at_clip_tokenizer_free (AtClipTokenizer *tokenizer)
{
  if (tokenizer == NULL)
    return;
  for (guint i = 0; i < N_VOCAB; i++)
    g_free (tokenizer->tokens[i]);
  for (guint i = 0; i < 256; i++)
    g_free (tokenizer->byte_symbol[i]);
  g_clear_pointer (&tokenizer->ids, g_hash_table_unref);
  g_clear_pointer (&tokenizer->ranks, g_hash_table_unref);
  g_free (tokenizer);
}

static GBytes *
read_vocab (const char *path, GError **error)
{
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autoptr (GBytes) contents = g_file_load_bytes (file, NULL, NULL, error);
  if (contents == NULL)
    return NULL;
  gsize size;
  const guint8 *data = g_bytes_get_data (contents, &size);
  if (size < 2 || data[0] != 0x1f || data[1] != 0x8b)
    return g_steal_pointer (&contents);

  g_autoptr (GInputStream) compressed = g_memory_input_stream_new_from_bytes (contents);
  g_autoptr (GZlibDecompressor) gunzip = g_zlib_decompressor_new (G_ZLIB_COMPRESSOR_FORMAT_GZIP);
  g_autoptr (GInputStream) in = g_converter_input_stream_new (compressed, G_CONVERTER (gunzip));
  g_autoptr (GOutputStream) out = g_memory_output_stream_new_resizable ();
  if (g_output_stream_splice (out, in, G_OUTPUT_STREAM_SPLICE_CLOSE_TARGET, NULL, error) < 0)
    return NULL;
  return g_memory_output_stream_steal_as_bytes (G_MEMORY_OUTPUT_STREAM (out));
}

AtClipTokenizer *
at_clip_tokenizer_new_from_file (const char *path, GError **error)
{
  g_autofree char *name = g_filename_display_basename (path);
  g_autoptr (GError) local_error = NULL;
  g_autoptr (GBytes) vocab = read_vocab (path, &local_error);
  if (vocab == NULL)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: %s", name, local_error->message);
      return NULL;
    }

  gsize size;
  const char *text = g_bytes_get_data (vocab, &size);
  const char *end = text + size;
  const char *line = memchr (text, '\n', size); /* the version comment's end */
  if (line == NULL || !g_utf8_validate (text, size, NULL))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: not a CLIP vocabulary", name);
      return NULL;
    }

  g_autoptr (AtClipTokenizer) tokenizer = g_new0 (AtClipTokenizer, 1);
  tokenizer->ids = g_hash_table_new (g_str_hash, g_str_equal);
  tokenizer->ranks = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  init_byte_symbols (tokenizer);

  for (guint rank = 0; rank < N_MERGES; rank++)
    {
      line++;
      if (line >= end)
        {
          g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: has %u merges, not %d", name,
                       rank, N_MERGES);
          return NULL;
        }
      const char *line_end = memchr (line, '\n', end - line);
      if (line_end == NULL)
        line_end = end;
      const char *space = memchr (line, ' ', line_end - line);
      if (space == NULL || space == line || space + 1 == line_end
          || memchr (space + 1, ' ', line_end - space - 1) != NULL)
        {
          g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                       "%s: line %u is not a merge of two symbols", name, rank + 2);
          return NULL;
        }
      g_autofree char *first = g_strndup (line, space - line);
      g_autofree char *second = g_strndup (space + 1, line_end - space - 1);
      tokenizer->tokens[512 + rank] = g_strconcat (first, second, NULL);
      g_hash_table_insert (tokenizer->ranks, g_strndup (line, line_end - line),
                           GUINT_TO_POINTER (rank + 1));
      line = line_end;
    }
  tokenizer->tokens[N_VOCAB - 2] = g_strdup ("<|startoftext|>");
  tokenizer->tokens[N_VOCAB - 1] = g_strdup ("<|endoftext|>");
  for (guint id = 0; id < N_VOCAB; id++)
    g_hash_table_insert (tokenizer->ids, tokenizer->tokens[id], GUINT_TO_POINTER (id + 1));

  tokenizer->bos = N_VOCAB - 2;
  tokenizer->eos = N_VOCAB - 1;
  tokenizer->comma = GPOINTER_TO_INT (g_hash_table_lookup (tokenizer->ids, "," END_OF_WORD)) - 1;
  return g_steal_pointer (&tokenizer);
}

guint
at_clip_tokenizer_get_n_vocab (AtClipTokenizer *tokenizer)
{
  return N_VOCAB;
}

gint32
at_clip_tokenizer_get_bos (AtClipTokenizer *tokenizer)
{
  return tokenizer->bos;
}

gint32
at_clip_tokenizer_get_eos (AtClipTokenizer *tokenizer)
{
  return tokenizer->eos;
}

static guint
pair_rank (AtClipTokenizer *tokenizer, const char *first, const char *second)
{
  g_autofree char *key = g_strconcat (first, " ", second, NULL);
  guint rank = GPOINTER_TO_UINT (g_hash_table_lookup (tokenizer->ranks, key));
  return rank == 0 ? G_MAXUINT : rank - 1;
}

/* Byte-pair encodes one piece of text: its bytes as symbols, "</w>" on the last one, then
 * the lowest-ranked adjacent pair merged everywhere until no pair has a rank. */
static void
bpe (AtClipTokenizer *tokenizer, const char *piece, gsize length, GArray *ids)
{
  g_autoptr (GPtrArray) word = g_ptr_array_new_with_free_func (g_free);
  for (gsize i = 0; i < length; i++)
    {
      const char *symbol = tokenizer->byte_symbol[(guint8) piece[i]];
      g_ptr_array_add (word, i + 1 < length ? g_strdup (symbol)
                                            : g_strconcat (symbol, END_OF_WORD, NULL));
    }

  while (word->len > 1)
    {
      guint best = G_MAXUINT, best_rank = G_MAXUINT;
      for (guint i = 0; i + 1 < word->len; i++)
        {
          guint rank = pair_rank (tokenizer, word->pdata[i], word->pdata[i + 1]);
          if (rank < best_rank)
            best = i, best_rank = rank;
        }
      if (best == G_MAXUINT)
        break;

      g_autofree char *first = g_strdup (word->pdata[best]);
      g_autofree char *second = g_strdup (word->pdata[best + 1]);
      for (guint i = best; i + 1 < word->len; i++)
        if (strcmp (word->pdata[i], first) == 0 && strcmp (word->pdata[i + 1], second) == 0)
          {
            char *merged = g_strconcat (first, second, NULL);
            g_free (word->pdata[i]);
            word->pdata[i] = merged;
            g_ptr_array_remove_index (word, i + 1);
          }
    }

  for (guint i = 0; i < word->len; i++)
    {
      gint32 id = GPOINTER_TO_INT (g_hash_table_lookup (tokenizer->ids, word->pdata[i])) - 1;
      g_array_append_val (ids, id);
    }
}

static gboolean
is_letter (gunichar c)
{
  GUnicodeType type = g_unichar_type (c);
  return type == G_UNICODE_UPPERCASE_LETTER || type == G_UNICODE_LOWERCASE_LETTER
         || type == G_UNICODE_TITLECASE_LETTER || type == G_UNICODE_MODIFIER_LETTER
         || type == G_UNICODE_OTHER_LETTER;
}

static gboolean
is_number (gunichar c)
{
  GUnicodeType type = g_unichar_type (c);
  return type == G_UNICODE_DECIMAL_NUMBER || type == G_UNICODE_LETTER_NUMBER
         || type == G_UNICODE_OTHER_NUMBER;
}

/* Unicode's White_Space property, which the regex module's \s matches. */
static gboolean
is_space (gunichar c)
{
  return g_unichar_isspace (c) || c == '\v' || c == 0x85;
}

/* The C0 controls and DEL that ftfy removes (tab, newline, form feed and return stay). */
static gboolean
is_removed_control (gunichar c)
{
  return (c < 0x20 && c != '\t' && c != '\n' && c != '\f' && c != '\r') || c == 0x7f;
}

/* Python's lower() also lowercases the two ranges of symbols that have lowercase forms (Roman
 * numerals, circled letters), which g_utf8_strdown() leaves alone. */
static gunichar
lower_symbol (gunichar c)
{
  if (c >= 0x2160 && c <= 0x216f)
    return c + 0x10;
  if (c >= 0x24b6 && c <= 0x24cf)
    return c + 26;
  return c;
}

/* ftfy's uncurl_quotes. */
static gunichar
uncurl (gunichar c)
{
  if (c == 0x02bc || (c >= 0x2018 && c <= 0x201b))
    return '\'';
  if (c >= 0x201c && c <= 0x201f)
    return '"';
  return c;
}

/* Letters with case, and the symbols Unicode counts as cased (Roman numerals, circled
 * letters, ordinal indicators). */
static gboolean
is_cased (gunichar c)
{
  GUnicodeType type = g_unichar_type (c);
  return type == G_UNICODE_UPPERCASE_LETTER || type == G_UNICODE_LOWERCASE_LETTER
         || type == G_UNICODE_TITLECASE_LETTER || (c >= 0x2160 && c <= 0x217f)
         || (c >= 0x24b6 && c <= 0x24e9) || c == 0xaa || c == 0xba;
}

static gboolean
is_case_ignorable (gunichar c)
{
  static const gunichar word_punctuation[] = { '\'', '.', ':', 0xb7, 0x2018, 0x2019, 0x2024,
                                               0x2027 };
  GUnicodeType type = g_unichar_type (c);
  if (type == G_UNICODE_NON_SPACING_MARK || type == G_UNICODE_ENCLOSING_MARK
      || type == G_UNICODE_FORMAT || type == G_UNICODE_MODIFIER_LETTER
      || type == G_UNICODE_MODIFIER_SYMBOL)
    return TRUE;
  for (guint i = 0; i < G_N_ELEMENTS (word_punctuation); i++)
    if (c == word_punctuation[i])
      return TRUE;
  return FALSE;
}

/* Python's lower() with Unicode's Final_Sigma rule, which g_utf8_strdown() only
 * approximates: a capital sigma after a cased letter and not before one becomes a final
 * sigma, case-ignorable characters skipped both ways. */
static char *
lower (const char *text)
{
  glong n;
  g_autofree gunichar *u = g_utf8_to_ucs4_fast (text, -1, &n);
  for (glong i = 0; i < n; i++)
    if (u[i] == 0x3a3)
      {
        glong before = i - 1, after = i + 1;
        while (before >= 0 && is_case_ignorable (u[before]))
          before--;
        while (after < n && is_case_ignorable (u[after]))
          after++;
        gboolean final = before >= 0 && is_cased (u[before]) && !(after < n && is_cased (u[after]));
        u[i] = final ? 0x3c2 : 0x3c3;
      }
  g_autofree char *sigmas = g_ucs4_to_utf8 (u, n, NULL, NULL, NULL);
  return g_utf8_strdown (sigmas, -1);
}

/* ftfy's fix_latin_ligatures and fix_character_width: the Latin ligatures and the
 * halfwidth and fullwidth forms become their compatibility equivalents ("ﬁ" -> "fi",
 * fullwidth "，" -> ","). */
static gboolean
is_compatibility_form (gunichar c)
{
  return c == 0x132 || c == 0x133 || c == 0x149 || (c >= 0x1c4 && c <= 0x1cc)
         || (c >= 0xfb00 && c <= 0xfb06) || (c >= 0xff01 && c <= 0xffef);
}

/* The parts of ftfy.fix_text that matter for typed prompts (ligatures and widths, straight
 * quotes, no control characters, NFC), then whitespace_clean() and lower(). */
static char *
clean_text (const char *text)
{
  g_autofree char *valid = g_utf8_make_valid (text, -1);
  g_autoptr (GString) fixed = g_string_new (NULL);
  for (const char *p = valid; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (is_compatibility_form (c))
        {
          g_autofree char *form = g_utf8_normalize (p, g_utf8_next_char (p) - p, G_NORMALIZE_NFKC);
          for (const char *f = form; *f != '\0'; f = g_utf8_next_char (f))
            g_string_append_unichar (fixed, uncurl (g_utf8_get_char (f)));
        }
      else if (!is_removed_control (c))
        g_string_append_unichar (fixed, uncurl (c));
    }
  g_autofree char *nfc = g_utf8_normalize (fixed->str, -1, G_NORMALIZE_NFC);

  GString *clean = g_string_new (NULL);
  gboolean pending_space = FALSE;
  for (const char *p = nfc; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);
      if (is_space (c))
        {
          pending_space = clean->len > 0;
          continue;
        }
      if (pending_space)
        g_string_append_c (clean, ' ');
      pending_space = FALSE;
      g_string_append_unichar (clean, lower_symbol (c));
    }
  g_autofree char *cleaned = g_string_free (clean, FALSE);
  return lower (cleaned);
}

/* The length of literal's match at p, 0 for none. CLIP's pattern is case-insensitive; on
 * lowercased text that leaves only the long s matching 's'. */
static gsize
match_literal (const char *p, const char *literal)
{
  const char *q = p;
  for (; *literal != '\0'; literal++)
    if (*q == *literal)
      q++;
    else if (*literal == 's' && g_str_has_prefix (q, "\u017f"))
      q += strlen ("\u017f");
    else
      return 0;
  return q - p;
}

static gboolean
is_exactly (const char *p, gsize length, const char *literal)
{
  return length == strlen (literal) && memcmp (p, literal, length) == 0;
}

/* The length of CLIP's regex match at p, or 0 at whitespace:
 * <\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+ */
static gsize
match_piece (const char *p)
{
  static const char *const literals[] = {
    "<|startoftext|>", "<|endoftext|>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d",
  };
  for (guint i = 0; i < G_N_ELEMENTS (literals); i++)
    {
      gsize length = match_literal (p, literals[i]);
      if (length > 0)
        return length;
    }

  gunichar c = g_utf8_get_char (p);
  const char *q = g_utf8_next_char (p);
  if (is_number (c))
    return q - p;
  if (is_space (c))
    return 0;
  gboolean letters = is_letter (c);
  for (; *q != '\0'; q = g_utf8_next_char (q))
    {
      gunichar d = g_utf8_get_char (q);
      if (letters ? !is_letter (d) : is_letter (d) || is_number (d) || is_space (d))
        break;
    }
  return q - p;
}

GArray *
at_clip_tokenizer_encode (AtClipTokenizer *tokenizer, const char *text)
{
  g_autofree char *clean = clean_text (text);
  GArray *ids = g_array_new (FALSE, FALSE, sizeof (gint32));

  for (const char *p = clean; *p != '\0';)
    {
      gsize length = match_piece (p);
      if (length == 0)
        {
          p = g_utf8_next_char (p);
          continue;
        }
      /* Only the exact spellings are the special tokens, as in CLIP's bpe cache. */
      if (is_exactly (p, length, "<|startoftext|>"))
        g_array_append_val (ids, tokenizer->bos);
      else if (is_exactly (p, length, "<|endoftext|>"))
        g_array_append_val (ids, tokenizer->eos);
      else
        bpe (tokenizer, p, length, ids);
      p += length;
    }
  return ids;
}

char *
at_clip_tokenizer_decode (AtClipTokenizer *tokenizer, const gint32 *ids, gsize n_ids)
{
  g_autoptr (GString) bytes = g_string_new (NULL);
  for (gsize i = 0; i < n_ids; i++)
    {
      if (ids[i] < 0 || ids[i] >= N_VOCAB)
        continue;
      for (const char *p = tokenizer->tokens[ids[i]]; *p != '\0'; p = g_utf8_next_char (p))
        {
          gunichar c = g_utf8_get_char (p);
          if (c < G_N_ELEMENTS (tokenizer->symbol_byte) && tokenizer->symbol_byte[c] >= 0)
            g_string_append_c (bytes, (char) tokenizer->symbol_byte[c]);
        }
    }
  g_autofree char *text = g_utf8_make_valid (bytes->str, bytes->len);
  g_auto (GStrv) words = g_strsplit (text, END_OF_WORD, -1);
  return g_strjoinv (" ", words);
}

void
at_clip_prompt_tokens_free (AtClipPromptTokens *tokens)
{
  if (tokens == NULL)
    return;
  g_free (tokens->ids);
  g_free (tokens->weights);
  g_free (tokens);
}

/* The chunk being filled and the windows done, as in A1111's tokenize_line(). */
typedef struct {
  AtClipTokenizer *tokenizer;
  gint32 pad_id;
  GArray *chunk_ids, *chunk_weights;
  int last_comma; /* position of the chunk's last comma, or -1 */
  GArray *ids, *weights;
  guint n_chunks;
} Chunker;

/* Wraps the chunk as BOS + tokens + EOS, filled to 77 with EOS and then, past the first
 * EOS, with the pad id, and starts the next. */
static void
next_chunk (Chunker *c)
{
  float one = 1.0f;
  g_array_append_val (c->ids, c->tokenizer->bos);
  g_array_append_val (c->weights, one);
  g_array_append_vals (c->ids, c->chunk_ids->data, c->chunk_ids->len);
  g_array_append_vals (c->weights, c->chunk_weights->data, c->chunk_weights->len);
  for (guint i = c->chunk_ids->len; i <= AT_CLIP_CHUNK_TOKENS; i++)
    {
      g_array_append_val (c->ids, c->tokenizer->eos);
      g_array_append_val (c->weights, one);
    }

  gint32 *window = &g_array_index (c->ids, gint32, c->n_chunks * AT_CLIP_CONTEXT);
  gboolean past_eos = FALSE;
  for (guint i = 1; i < AT_CLIP_CONTEXT; i++)
    {
      if (past_eos)
        window[i] = c->pad_id;
      past_eos |= window[i] == c->tokenizer->eos;
    }

  c->n_chunks++;
  g_array_set_size (c->chunk_ids, 0);
  g_array_set_size (c->chunk_weights, 0);
  c->last_comma = -1;
}

static void
add_token (Chunker *c, gint32 id, float weight)
{
  if (id == c->tokenizer->comma)
    c->last_comma = (int) c->chunk_ids->len;
  else if (c->chunk_ids->len == AT_CLIP_CHUNK_TOKENS && c->last_comma != -1
           && AT_CLIP_CHUNK_TOKENS - c->last_comma <= COMMA_BACKTRACK)
    {
      /* Cut after the comma and carry the words after it into the next chunk. */
      guint cut = (guint) c->last_comma + 1;
      guint n_moved = c->chunk_ids->len - cut;
      g_autofree gint32 *moved_ids = g_memdup2 (&g_array_index (c->chunk_ids, gint32, cut),
                                                n_moved * sizeof (gint32));
      g_autofree float *moved_weights = g_memdup2 (&g_array_index (c->chunk_weights, float, cut),
                                                   n_moved * sizeof (float));
      g_array_set_size (c->chunk_ids, cut);
      g_array_set_size (c->chunk_weights, cut);
      next_chunk (c);
      g_array_append_vals (c->chunk_ids, moved_ids, n_moved);
      g_array_append_vals (c->chunk_weights, moved_weights, n_moved);
    }
  if (c->chunk_ids->len == AT_CLIP_CHUNK_TOKENS)
    next_chunk (c);
  g_array_append_val (c->chunk_ids, id);
  g_array_append_val (c->chunk_weights, weight);
}

AtClipPromptTokens *
at_clip_tokenizer_encode_prompt (AtClipTokenizer *tokenizer, const char *prompt, gint32 pad_id,
                                 GError **error)
{
  g_autoptr (GArray) spans = at_prompt_parse_attention (prompt, error);
  if (spans == NULL)
    return NULL;

  g_autoptr (GArray) chunk_ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_autoptr (GArray) chunk_weights = g_array_new (FALSE, FALSE, sizeof (float));
  g_autoptr (GArray) ids = g_array_new (FALSE, FALSE, sizeof (gint32));
  g_autoptr (GArray) weights = g_array_new (FALSE, FALSE, sizeof (float));
  Chunker c = { tokenizer, pad_id, chunk_ids, chunk_weights, -1, ids, weights, 0 };

  for (guint s = 0; s < spans->len; s++)
    {
      const AtPromptSpan *span = &g_array_index (spans, AtPromptSpan, s);
      if (span->is_break)
        {
          next_chunk (&c);
          continue;
        }
      g_autoptr (GArray) span_ids = at_clip_tokenizer_encode (tokenizer, span->text);
      for (guint i = 0; i < span_ids->len; i++)
        add_token (&c, g_array_index (span_ids, gint32, i), (float) span->weight);
    }
  if (chunk_ids->len > 0 || c.n_chunks == 0)
    next_chunk (&c);

  AtClipPromptTokens *tokens = g_new0 (AtClipPromptTokens, 1);
  tokens->n_chunks = c.n_chunks;
  tokens->ids = (gint32 *) (void *) g_array_free (g_steal_pointer (&ids), FALSE);
  tokens->weights = (float *) (void *) g_array_free (g_steal_pointer (&weights), FALSE);
  return tokens;
}
