/* at-png.c: PNG reading and writing with libpng, and A1111's infotext.
 *
 * libpng reports errors by longjmp. Everything the error path frees lives in a heap
 * struct (PngJob) that is set up before setjmp and not reassigned after it, so no
 * local variable has to survive the jump; the error callback keeps libpng's message
 * for the GError.
 */
#include "formats/at-png.h"

#include "at-error.h"

#include <gio/gio.h>
#include <math.h>
#include <png.h>
#include <setjmp.h>
#include <string.h>

/* ---- generation parameters ---------------------------------------------------- */

static void
param_clear (gpointer data)
{
  AtGenerationParam *pair = data;

  g_free (pair->key);
  g_free (pair->value);
}

AtGenerationParams *
at_generation_params_new (void)
{
  AtGenerationParams *p = g_new0 (AtGenerationParams, 1);

  p->prompt = g_strdup ("");
  p->negative_prompt = g_strdup ("");
  p->cfg_scale = -1;
  p->seed = -1;
  p->denoising_strength = -1;
  p->extra = g_array_new (FALSE, FALSE, sizeof (AtGenerationParam));
  g_array_set_clear_func (p->extra, param_clear);
  return p;
}

void
at_generation_params_free (AtGenerationParams *p)
{
  if (p == NULL)
    return;
  g_free (p->prompt);
  g_free (p->negative_prompt);
  g_free (p->sampler);
  g_free (p->schedule_type);
  g_free (p->model_hash);
  g_free (p->model);
  g_array_unref (p->extra);
  g_free (p);
}

/* Python's \w on UTF-8: ASCII letters, digits and '_', and any non-ASCII character
 * (most of which are letters). */
static gboolean
is_word (char ch)
{
  return g_ascii_isalnum (ch) || ch == '_' || (guchar)ch >= 0x80;
}

static gboolean
is_key_char (char ch)
{
  return is_word (ch) || ch == ' ' || ch == '-' || ch == '/';
}

void
at_generation_params_add_extra (AtGenerationParams *p, const char *key, const char *value)
{
  AtGenerationParam pair;

  g_return_if_fail (key != NULL && is_word (key[0]) && key[1] != '\0');
  for (const char *k = key; *k; k++)
    g_return_if_fail (is_key_char (*k));
  pair.key = g_strdup (key);
  pair.value = g_strdup (value);
  g_array_append_val (p->extra, pair);
}

const char *
at_generation_params_get_extra (const AtGenerationParams *p, const char *key)
{
  for (guint i = 0; i < p->extra->len; i++)
    {
      const AtGenerationParam *pair = &g_array_index (p->extra, AtGenerationParam, i);

      if (strcmp (pair->key, key) == 0)
        return pair->value;
    }
  return NULL;
}

/* infotext_utils.quote: json.dumps (ensure_ascii=False) when the value would break
 * the "key: value, ..." line. */
static void
append_quoted (GString *out, const char *value)
{
  if (strpbrk (value, ",:\n") == NULL)
    {
      g_string_append (out, value);
      return;
    }
  g_string_append_c (out, '"');
  for (const char *c = value; *c; c++)
    switch (*c)
      {
      case '"':
        g_string_append (out, "\\\"");
        break;
      case '\\':
        g_string_append (out, "\\\\");
        break;
      case '\n':
        g_string_append (out, "\\n");
        break;
      case '\r':
        g_string_append (out, "\\r");
        break;
      case '\t':
        g_string_append (out, "\\t");
        break;
      case '\b':
        g_string_append (out, "\\b");
        break;
      case '\f':
        g_string_append (out, "\\f");
        break;
      default:
        if ((guchar)*c < 0x20)
          g_string_append_printf (out, "\\u%04x", (guchar)*c);
        else
          g_string_append_c (out, *c);
      }
  g_string_append_c (out, '"');
}

static void append_pair (GString *out, const char *key, const char *format, ...)
    G_GNUC_PRINTF (3, 4);

static void
append_pair (GString *out, const char *key, const char *format, ...)
{
  g_autofree char *value = NULL;
  va_list args;

  va_start (args, format);
  value = g_strdup_vprintf (format, args);
  va_end (args);
  if (out->len > 0)
    g_string_append (out, ", ");
  g_string_append_printf (out, "%s: ", key);
  append_quoted (out, value);
}

/* "%.15g" prints 7.0 as 7 and 0.75 as 0.75, as A1111's infotexts show them. */
#define FORMAT_NUMBER(buf, v) g_ascii_formatd (buf, sizeof buf, "%.15g", v)

char *
at_generation_params_to_text (const AtGenerationParams *p)
{
  g_autoptr (GString) pairs = g_string_new (NULL);
  char buf[G_ASCII_DTOSTR_BUF_SIZE];
  GString *out;

  if (p->steps > 0)
    append_pair (pairs, "Steps", "%d", p->steps);
  if (p->sampler)
    append_pair (pairs, "Sampler", "%s", p->sampler);
  if (p->schedule_type)
    append_pair (pairs, "Schedule type", "%s", p->schedule_type);
  if (p->cfg_scale >= 0)
    append_pair (pairs, "CFG scale", "%s", FORMAT_NUMBER (buf, p->cfg_scale));
  if (p->seed >= 0)
    append_pair (pairs, "Seed", "%" G_GINT64_FORMAT, p->seed);
  if (p->width > 0 && p->height > 0)
    append_pair (pairs, "Size", "%ux%u", p->width, p->height);
  if (p->model_hash)
    append_pair (pairs, "Model hash", "%s", p->model_hash);
  if (p->model)
    append_pair (pairs, "Model", "%s", p->model);
  if (p->denoising_strength >= 0)
    append_pair (pairs, "Denoising strength", "%s", FORMAT_NUMBER (buf, p->denoising_strength));
  for (guint i = 0; i < p->extra->len; i++)
    {
      const AtGenerationParam *pair = &g_array_index (p->extra, AtGenerationParam, i);
      append_pair (pairs, pair->key, "%s", pair->value);
    }

  out = g_string_new (p->prompt);
  if (p->negative_prompt[0] != '\0')
    g_string_append_printf (out, "\nNegative prompt: %s", p->negative_prompt);
  g_string_append_printf (out, "\n%s", pairs->str);
  return g_strstrip (g_string_free (out, FALSE));
}

/* One match of A1111's re_param, \s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$),
 * at s: the key and raw value, and where the match ends; FALSE when it does not match
 * there. */
static gboolean
match_param (const char *s, char **key, char **value, const char **end)
{
  const char *k, *v, *q;

  while (g_ascii_isspace (*s))
    s++;
  if (!is_word (*s))
    return FALSE;
  k = s++;
  while (is_key_char (*s))
    s++;
  if (s - k < 2 || *s != ':')
    return FALSE;
  *key = g_strndup (k, s - k);
  s++;
  while (g_ascii_isspace (*s))
    s++;
  v = s;
  if (*v == '"')
    {
      /* The quoted form, if its closing quote is followed by ',' or the end. */
      for (q = v + 1; *q && *q != '"'; q++)
        if (*q == '\\' && q[1] != '\0' && q[1] != '\n')
          q++;
        else if (*q == '\\')
          break;
      if (*q == '"' && q > v + 1 && (q[1] == ',' || q[1] == '\0'))
        {
          *value = g_strndup (v, q + 1 - v);
          *end = q[1] == ',' ? q + 2 : q + 1;
          return TRUE;
        }
    }
  q = strchr (v, ',');
  if (q == NULL)
    q = v + strlen (v);
  *value = g_strndup (v, q - v);
  *end = *q == ',' ? q + 1 : q;
  return TRUE;
}

/* re_param.findall: pairs of key, raw value. */
static GPtrArray *
find_params (const char *line)
{
  GPtrArray *found = g_ptr_array_new_with_free_func (g_free);
  const char *s = line;

  while (*s)
    {
      char *key, *value;
      const char *end;

      if (!match_param (s, &key, &value, &end))
        {
          s++;
          continue;
        }
      g_ptr_array_add (found, key);
      g_ptr_array_add (found, value);
      s = end;
    }
  return found;
}

/* json.loads of a JSON string literal; NULL when it is not one (A1111 then keeps the
 * text as it is). */
static char *
json_unquote (const char *text)
{
  g_autoptr (GString) out = g_string_new (NULL);
  const char *c = text + 1;
  gsize len = strlen (text);

  if (len < 2 || text[0] != '"' || text[len - 1] != '"')
    return NULL;
  for (; c < text + len - 1; c++)
    {
      if ((guchar)*c < 0x20 || *c == '"')
        return NULL;
      if (*c != '\\')
        {
          g_string_append_c (out, *c);
          continue;
        }
      c++;
      switch (*c)
        {
        case '"':
        case '\\':
        case '/':
          g_string_append_c (out, *c);
          break;
        case 'b':
          g_string_append_c (out, '\b');
          break;
        case 'f':
          g_string_append_c (out, '\f');
          break;
        case 'n':
          g_string_append_c (out, '\n');
          break;
        case 'r':
          g_string_append_c (out, '\r');
          break;
        case 't':
          g_string_append_c (out, '\t');
          break;
        case 'u':
          {
            gunichar ch = 0;

            for (int i = 1; i <= 4; i++)
              {
                if (!g_ascii_isxdigit (c[i]))
                  return NULL;
                ch = ch * 16 + g_ascii_xdigit_value (c[i]);
              }
            c += 4;
            if (ch >= 0xd800 && ch < 0xdc00 && c[1] == '\\' && c[2] == 'u')
              {
                gunichar lo = 0;

                for (int i = 3; i <= 6; i++)
                  {
                    if (!g_ascii_isxdigit (c[i]))
                      return NULL;
                    lo = lo * 16 + g_ascii_xdigit_value (c[i]);
                  }
                if (lo >= 0xdc00 && lo < 0xe000)
                  {
                    ch = 0x10000 + ((ch - 0xd800) << 10) + (lo - 0xdc00);
                    c += 6;
                  }
              }
            /* A lone surrogate cannot be UTF-8; Python would keep it, we mark it. */
            g_string_append_unichar (out, ch >= 0xd800 && ch < 0xe000 ? 0xfffd : ch);
          }
          break;
        default:
          return NULL;
        }
    }
  if (!g_utf8_validate (out->str, out->len, NULL))
    return NULL;
  return g_string_free (g_steal_pointer (&out), FALSE);
}

static gboolean
parse_int64 (const char *v, gint64 min, gint64 max, gint64 *out)
{
  return g_ascii_string_to_signed (v, 10, min, max, out, NULL);
}

static gboolean
parse_double (const char *v, double *out)
{
  char *end;

  if (*v == '\0')
    return FALSE;
  *out = g_ascii_strtod (v, &end);
  return *end == '\0' && *out >= 0 && isfinite (*out);
}

static gboolean
parse_size (const char *v, guint *w, guint *h)
{
  g_auto (GStrv) parts = g_strsplit (v, "x", 3);
  guint64 a, b;

  if (g_strv_length (parts) != 2
      || !g_ascii_string_to_unsigned (parts[0], 10, 1, G_MAXUINT, &a, NULL)
      || !g_ascii_string_to_unsigned (parts[1], 10, 1, G_MAXUINT, &b, NULL))
    return FALSE;
  *w = (guint)a;
  *h = (guint)b;
  return TRUE;
}

/* Stores a known key's value in its field; FALSE for other keys and for values that do
 * not parse, which then stay extra pairs. */
static gboolean
set_known (AtGenerationParams *p, const char *key, const char *v)
{
  static const struct
  {
    const char *key;
    gsize offset;
  } strings[] = {
    { "Sampler", G_STRUCT_OFFSET (AtGenerationParams, sampler) },
    { "Schedule type", G_STRUCT_OFFSET (AtGenerationParams, schedule_type) },
    { "Model hash", G_STRUCT_OFFSET (AtGenerationParams, model_hash) },
    { "Model", G_STRUCT_OFFSET (AtGenerationParams, model) },
  };
  gint64 i;
  double d;

  for (guint k = 0; k < G_N_ELEMENTS (strings); k++)
    if (strcmp (key, strings[k].key) == 0)
      {
        char **field = G_STRUCT_MEMBER_P (p, strings[k].offset);

        g_free (*field);
        *field = g_strdup (v);
        return TRUE;
      }
  if (strcmp (key, "Size") == 0)
    return parse_size (v, &p->width, &p->height);
  if (strcmp (key, "Steps") == 0 && parse_int64 (v, 1, G_MAXINT, &i))
    p->steps = (int)i;
  else if (strcmp (key, "CFG scale") == 0 && parse_double (v, &d))
    p->cfg_scale = d;
  else if (strcmp (key, "Seed") == 0 && parse_int64 (v, 0, G_MAXINT64, &i))
    p->seed = i;
  else if (strcmp (key, "Denoising strength") == 0 && parse_double (v, &d))
    p->denoising_strength = d;
  else
    return FALSE;
  return TRUE;
}

AtGenerationParams *
at_generation_params_parse (const char *text)
{
  AtGenerationParams *p = at_generation_params_new ();
  g_autofree char *copy = g_strstrip (g_strdup (text));
  g_auto (GStrv) lines = g_strsplit (copy, "\n", -1);
  guint n_lines = g_strv_length (lines);
  g_autoptr (GString) prompt = g_string_new (NULL);
  g_autoptr (GString) negative = g_string_new (NULL);
  g_autoptr (GPtrArray) pairs = find_params (lines[n_lines - 1]);
  gboolean done_with_prompt = FALSE;

  /* A last line with fewer than three pairs is still prompt. */
  if (pairs->len / 2 < 3)
    g_ptr_array_set_size (pairs, 0);
  else
    n_lines--;

  for (guint i = 0; i < n_lines; i++)
    {
      char *line = g_strstrip (lines[i]);

      if (g_str_has_prefix (line, "Negative prompt:"))
        {
          done_with_prompt = TRUE;
          line = g_strstrip (line + strlen ("Negative prompt:"));
        }
      if (done_with_prompt)
        g_string_append_printf (negative, "%s%s", negative->len ? "\n" : "", line);
      else
        g_string_append_printf (prompt, "%s%s", prompt->len ? "\n" : "", line);
    }
  g_free (p->prompt);
  p->prompt = g_strdup (prompt->str);
  g_free (p->negative_prompt);
  p->negative_prompt = g_strdup (negative->str);

  for (guint i = 0; i < pairs->len; i += 2)
    {
      const char *key = pairs->pdata[i];
      const char *raw = pairs->pdata[i + 1];
      g_autofree char *unquoted = NULL;
      const char *v = raw;

      /* A1111 skips an empty value (its v[0] raises). */
      if (raw[0] == '\0')
        continue;
      if (raw[0] == '"' && raw[strlen (raw) - 1] == '"' && (unquoted = json_unquote (raw)))
        v = unquoted;
      if (!set_known (p, key, v))
        at_generation_params_add_extra (p, key, v);
    }
  return p;
}

/* ---- libpng plumbing ---------------------------------------------------------- */

typedef struct
{
  const char *path;
  char message[256];
  png_structp png;
  png_infop info;
  /* reading */
  const guint8 *data;
  gsize size, pos;
  guint8 *pixels;
  png_bytep *rows;
  /* writing */
  GByteArray *out;
  char *text; /* the chunk's bytes, Latin-1 or UTF-8 */
} PngJob;

static void
on_png_error (png_structp png, png_const_charp message)
{
  PngJob *job = png_get_error_ptr (png);

  g_strlcpy (job->message, message, sizeof job->message);
  png_longjmp (png, 1);
}

/* libpng warns about things it recovers from (a bad CRC in an ancillary chunk, an
 * unknown sRGB profile); the image is still good. */
static void
on_png_warning (png_structp png, png_const_charp message)
{
}

static void
on_png_read (png_structp png, png_bytep out, size_t len)
{
  PngJob *job = png_get_io_ptr (png);

  if (len > job->size - job->pos)
    png_error (png, "the file ends early (truncated)");
  memcpy (out, job->data + job->pos, len);
  job->pos += len;
}

static void
on_png_write (png_structp png, png_bytep data, size_t len)
{
  PngJob *job = png_get_io_ptr (png);

  g_byte_array_append (job->out, data, (guint)len);
}

static void
on_png_flush (png_structp png)
{
}

/* ---- writing ------------------------------------------------------------------ */

/* PIL, as A1111 calls it, writes tEXt when the text encodes in Latin-1. */
static char *
latin1_or_null (const char *utf8)
{
  return g_convert (utf8, -1, "ISO-8859-1", "UTF-8", NULL, NULL, NULL);
}

/* The PNG in job->out; FALSE with job->message set on a libpng error. */
static gboolean
encode_png (PngJob *job, const guint8 *pixels, guint width, guint height, guint channels,
            gsize stride, const char *parameters)
{
  job->png = png_create_write_struct (PNG_LIBPNG_VER_STRING, job, on_png_error, on_png_warning);
  if (job->png == NULL)
    return FALSE;
  job->info = png_create_info_struct (job->png);
  if (job->info == NULL)
    return FALSE;
  job->rows = g_new (png_bytep, height);
  for (guint y = 0; y < height; y++)
    job->rows[y] = (png_bytep)(pixels + y * stride);
  if (parameters)
    job->text = latin1_or_null (parameters);

  if (setjmp (png_jmpbuf (job->png)))
    return FALSE;
  png_set_write_fn (job->png, job, on_png_write, on_png_flush);
  png_set_IHDR (job->png, job->info, width, height, 8,
                channels == 4 ? PNG_COLOR_TYPE_RGB_ALPHA : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (parameters)
    {
      png_text text = { .key = (png_charp) "parameters" };

      if (job->text)
        {
          text.compression = PNG_TEXT_COMPRESSION_NONE;
          text.text = job->text;
          text.text_length = strlen (job->text);
        }
      else
        {
          text.compression = PNG_ITXT_COMPRESSION_NONE;
          text.text = (png_charp)parameters;
          text.itxt_length = strlen (parameters);
          text.lang = (png_charp) "";
          text.lang_key = (png_charp) "";
        }
      png_set_text (job->png, job->info, &text, 1);
    }
  png_write_info (job->png, job->info);
  png_write_image (job->png, job->rows);
  png_write_end (job->png, NULL);
  return TRUE;
}

gboolean
at_png_write (const char *path, const guint8 *pixels, guint width, guint height, guint channels,
              gsize stride, const char *parameters, GError **error)
{
  PngJob *job;
  gboolean ok;

  if ((channels != 3 && channels != 4) || width == 0 || height == 0 || width > AT_PNG_MAX_SIDE
      || height > AT_PNG_MAX_SIDE || stride < (gsize)width * channels)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "%s: cannot write a %ux%u image with %u channels and %" G_GSIZE_FORMAT
                   "-byte rows",
                   path, width, height, channels, stride);
      return FALSE;
    }
  if (parameters && !g_utf8_validate (parameters, -1, NULL))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "%s: the generation parameters are not valid UTF-8", path);
      return FALSE;
    }

  job = g_new0 (PngJob, 1);
  job->path = path;
  job->out = g_byte_array_new ();
  ok = encode_png (job, pixels, width, height, channels, stride, parameters);
  if (!ok)
    g_set_error (error, AT_ERROR, AT_ERROR_FAILED, "%s: PNG encoding failed: %s", path,
                 job->message[0] ? job->message : "out of memory");
  else
    ok = g_file_set_contents_full (path, (const char *)job->out->data, job->out->len,
                                   G_FILE_SET_CONTENTS_CONSISTENT, 0644, error);
  png_destroy_write_struct (&job->png, &job->info);
  g_byte_array_unref (job->out);
  g_free (job->rows);
  g_free (job->text);
  g_free (job);
  return ok;
}

/* ---- reading ------------------------------------------------------------------ */

/* The "parameters" chunk as UTF-8, or NULL. tEXt and zTXt are Latin-1; iTXt is UTF-8. */
static char *
find_parameters (PngJob *job)
{
  png_textp texts;
  int n = png_get_text (job->png, job->info, &texts, NULL);

  for (int i = 0; i < n; i++)
    {
      if (strcmp (texts[i].key, "parameters") != 0)
        continue;
      if (texts[i].compression == PNG_ITXT_COMPRESSION_NONE
          || texts[i].compression == PNG_ITXT_COMPRESSION_zTXt)
        return g_utf8_make_valid (texts[i].text, texts[i].itxt_length);
      return g_convert (texts[i].text, texts[i].text_length, "UTF-8", "ISO-8859-1", NULL, NULL,
                        NULL);
    }
  return NULL;
}

/* Decodes job->data into job->pixels (RGBA8); FALSE with job->message set. */
static gboolean
decode_png (PngJob *job, guint *width, guint *height)
{
  png_uint_32 w, h;

  job->png = png_create_read_struct (PNG_LIBPNG_VER_STRING, job, on_png_error, on_png_warning);
  if (job->png == NULL)
    return FALSE;
  job->info = png_create_info_struct (job->png);
  if (job->info == NULL)
    return FALSE;
  if (setjmp (png_jmpbuf (job->png)))
    return FALSE;

  png_set_read_fn (job->png, job, on_png_read);
  /* Our own limits below give the better message. */
  png_set_user_limits (job->png, PNG_UINT_31_MAX, PNG_UINT_31_MAX);
  png_set_chunk_malloc_max (job->png, 16 << 20);
  png_read_info (job->png, job->info);
  w = png_get_image_width (job->png, job->info);
  h = png_get_image_height (job->png, job->info);
  if (w > AT_PNG_MAX_SIDE || h > AT_PNG_MAX_SIDE || (guint64)w * h > AT_PNG_MAX_PIXELS)
    {
      g_snprintf (job->message, sizeof job->message,
                  "the image is %ux%u pixels, more than the %ux%u this reader accepts", (guint)w,
                  (guint)h, AT_PNG_MAX_SIDE, AT_PNG_MAX_SIDE);
      return FALSE;
    }

  png_set_expand (job->png);
  png_set_strip_16 (job->png);
  png_set_gray_to_rgb (job->png);
  png_set_add_alpha (job->png, 0xff, PNG_FILLER_AFTER);
  png_set_interlace_handling (job->png);
  png_read_update_info (job->png, job->info);
  if (png_get_rowbytes (job->png, job->info) != (gsize)w * 4)
    png_error (job->png, "unexpected row size after conversion to RGBA8");

  job->pixels = g_malloc ((gsize)w * h * 4);
  job->rows = g_new (png_bytep, h);
  for (guint y = 0; y < h; y++)
    job->rows[y] = job->pixels + (gsize)y * w * 4;
  png_read_image (job->png, job->rows);
  /* Reads to IEND: text chunks may follow the image, and a cut file shows here. */
  png_read_end (job->png, job->info);
  *width = w;
  *height = h;
  return TRUE;
}

guint8 *
at_png_read (const char *path, guint *width, guint *height, char **parameters,
             AtGenerationParams **params, GError **error)
{
  g_autoptr (GMappedFile) file = g_mapped_file_new (path, FALSE, error);
  PngJob *job;
  guint8 *pixels = NULL;

  if (parameters)
    *parameters = NULL;
  if (params)
    *params = NULL;
  if (file == NULL)
    return NULL;

  job = g_new0 (PngJob, 1);
  job->path = path;
  job->data = (const guint8 *)g_mapped_file_get_contents (file);
  job->size = g_mapped_file_get_length (file);
  if (job->size < 8 || png_sig_cmp (job->data, 0, 8) != 0)
    g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: not a PNG file", path);
  else if (!decode_png (job, width, height))
    g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: corrupt PNG: %s", path,
                 job->message[0] ? job->message : "out of memory");
  else
    {
      g_autofree char *text = find_parameters (job);

      if (text && params)
        *params = at_generation_params_parse (text);
      if (parameters)
        *parameters = g_steal_pointer (&text);
      pixels = g_steal_pointer (&job->pixels);
    }
  png_destroy_read_struct (&job->png, &job->info, NULL);
  g_free (job->pixels);
  g_free (job->rows);
  g_free (job);
  return pixels;
}
