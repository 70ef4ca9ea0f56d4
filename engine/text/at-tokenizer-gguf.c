/* at-tokenizer-gguf.c: a tokenizer from a GGUF file's tokenizer.ggml.* metadata. */
#include "text/at-tokenizer.h"

#include "at-error.h"

/* An id key when present: any integer type whose value fits; -1 means "none", as
 * some converters write it. */
static gboolean
read_optional_id (AtGguf *gguf, const char *key, gint32 *id, GError **error)
{
  if (at_gguf_find (gguf, key) == NULL)
    return TRUE;
  return at_gguf_get_i32 (gguf, key, id, error);
}

static gboolean
read_optional_bool (AtGguf *gguf, const char *key, gboolean *value, GError **error)
{
  if (at_gguf_find (gguf, key) == NULL)
    return TRUE;
  return at_gguf_get_bool (gguf, key, value, error);
}

/* An optional array that, when present, has one element per token. */
static const AtGgufArray *
read_per_token_array (AtGguf *gguf, const char *key, AtGgufType type, gsize n_tokens,
                      GError **error)
{
  const AtGgufArray *array;

  if (at_gguf_find (gguf, key) == NULL)
    return NULL;
  array = at_gguf_get_array (gguf, key, type, error);
  if (array != NULL && array->n != n_tokens)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE,
                   "%s: '%s' has %" G_GUINT64_FORMAT " elements for %" G_GSIZE_FORMAT " tokens",
                   at_gguf_get_name (gguf), key, array->n, n_tokens);
      return NULL;
    }
  return array;
}

gboolean
at_tokenizer_spec_init_from_gguf (AtTokenizerSpec *spec, AtGguf *gguf, GError **error)
{
  const char *model, *pre = NULL;
  const AtGgufArray *tokens, *scores, *types, *merges;
  GError *local_error = NULL;

  model = at_gguf_get_string (gguf, "tokenizer.ggml.model", error);
  if (model == NULL)
    return FALSE;
  if (at_gguf_find (gguf, "tokenizer.ggml.pre") != NULL
      && (pre = at_gguf_get_string (gguf, "tokenizer.ggml.pre", error)) == NULL)
    return FALSE;
  tokens = at_gguf_get_array (gguf, "tokenizer.ggml.tokens", AT_GGUF_TYPE_STRING, error);
  if (tokens == NULL)
    return FALSE;

  at_tokenizer_spec_init (spec, model, pre);
  spec->tokens = tokens->strings;
  spec->n_tokens = tokens->n;

  scores = read_per_token_array (gguf, "tokenizer.ggml.scores", AT_GGUF_TYPE_FLOAT32, tokens->n,
                                 &local_error);
  if (local_error == NULL)
    types = read_per_token_array (gguf, "tokenizer.ggml.token_type", AT_GGUF_TYPE_INT32, tokens->n,
                                  &local_error);
  if (local_error != NULL)
    {
      g_propagate_error (error, local_error);
      return FALSE;
    }
  if (at_gguf_find (gguf, "tokenizer.ggml.merges") != NULL)
    {
      merges = at_gguf_get_array (gguf, "tokenizer.ggml.merges", AT_GGUF_TYPE_STRING, error);
      if (merges == NULL)
        return FALSE;
      spec->merges = merges->strings;
      spec->n_merges = merges->n;
    }

  if (!read_optional_id (gguf, "tokenizer.ggml.bos_token_id", &spec->bos_id, error)
      || !read_optional_id (gguf, "tokenizer.ggml.eos_token_id", &spec->eos_id, error)
      || !read_optional_id (gguf, "tokenizer.ggml.eot_token_id", &spec->eot_id, error)
      || !read_optional_id (gguf, "tokenizer.ggml.unknown_token_id", &spec->unk_id, error)
      || !read_optional_id (gguf, "tokenizer.ggml.padding_token_id", &spec->pad_id, error)
      || !read_optional_bool (gguf, "tokenizer.ggml.add_bos_token", &spec->add_bos, error)
      || !read_optional_bool (gguf, "tokenizer.ggml.add_eos_token", &spec->add_eos, error)
      || !read_optional_bool (gguf, "tokenizer.ggml.add_space_prefix", &spec->add_space_prefix,
                              error))
    return FALSE;

  /* The file's arrays are packed and unaligned: the tokenizer wants plain ones. */
  if (scores != NULL)
    {
      float *s = g_new (float, tokens->n);
      for (guint64 i = 0; i < tokens->n; i++)
        s[i] = at_gguf_array_get_f32 (scores, i);
      spec->scores = s;
    }
  if (types != NULL)
    {
      gint32 *t = g_new (gint32, tokens->n);
      for (guint64 i = 0; i < tokens->n; i++)
        t[i] = at_gguf_array_get_i32 (types, i);
      spec->token_types = t;
    }
  return TRUE;
}

void
at_tokenizer_spec_clear (AtTokenizerSpec *spec)
{
  g_free ((float *)spec->scores);
  g_free ((gint32 *)spec->token_types);
  spec->scores = NULL;
  spec->token_types = NULL;
}

AtTokenizer *
at_tokenizer_new_from_gguf (AtGguf *gguf, GError **error)
{
  AtTokenizerSpec spec;
  AtTokenizer *tok;
  g_autoptr (GError) local_error = NULL;

  if (!at_tokenizer_spec_init_from_gguf (&spec, gguf, error))
    return NULL;
  tok = at_tokenizer_new (&spec, &local_error);
  at_tokenizer_spec_clear (&spec);
  if (tok == NULL)
    g_set_error (error, local_error->domain, local_error->code, "%s: %s", at_gguf_get_name (gguf),
                 local_error->message);
  return tok;
}
