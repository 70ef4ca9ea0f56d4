/* at-gguf.c: the GGUF reader.
 *
 * Layout (ggml's docs/gguf.md): magic "GGUF", u32 version, u64 tensor count, u64
 * metadata count; the metadata (string key, u32 value type, value); the tensor infos
 * (string name, u32 n_dims, u64 ne[n_dims], u32 type, u64 offset relative to the data
 * section); padding to general.alignment; the tensor data. Strings are a u64 length and
 * that many bytes; arrays a u32 element type, a u64 count and the elements. Every read
 * goes through take(), which refuses to step past the end of the file, and every count
 * is checked against the bytes left before anything is allocated for it.
 */
#include "formats/at-gguf.h"

#include <string.h>

/* Values are copied straight out of the little-endian file. */
G_STATIC_ASSERT (G_BYTE_ORDER == G_LITTLE_ENDIAN);

/* The smallest encodings: empty key + type + one byte; empty name + n_dims + one ne
 * + type + offset. They bound the counts a file of a given size can claim. */
#define MIN_KV_BYTES (8 + 4 + 1)
#define MIN_TENSOR_INFO_BYTES (8 + 4 + 8 + 4 + 8)

typedef struct {
  const char *key;
  AtGgufValue value;
} Kv;

struct _AtGguf {
  char *name; /* for messages */
  GBytes *bytes;
  guint32 version;
  guint32 alignment;
  guint64 data_offset;
  GStringChunk *strings;    /* keys, names and string values */
  GArray *kvs;              /* Kv, in file order */
  GHashTable *kv_index;     /* key -> index + 1 */
  GArray *tensors;          /* AtGgufTensor, in file order */
  GHashTable *tensor_index; /* name -> index + 1 */
};

typedef struct {
  AtGguf *gguf;
  const guint8 *base;
  gsize size;
  gsize pos;
  /* What is being read, for "file ends inside ..." messages. */
  const char *section;
  const char *item;
  GError **error;
} Reader;

static const struct {
  const char *name;
  gsize size;
} value_types[AT_GGUF_N_TYPES] = {
  [AT_GGUF_TYPE_UINT8] = { "uint8", 1 },     [AT_GGUF_TYPE_INT8] = { "int8", 1 },
  [AT_GGUF_TYPE_UINT16] = { "uint16", 2 },   [AT_GGUF_TYPE_INT16] = { "int16", 2 },
  [AT_GGUF_TYPE_UINT32] = { "uint32", 4 },   [AT_GGUF_TYPE_INT32] = { "int32", 4 },
  [AT_GGUF_TYPE_FLOAT32] = { "float32", 4 }, [AT_GGUF_TYPE_BOOL] = { "bool", 1 },
  [AT_GGUF_TYPE_STRING] = { "string", 0 },   [AT_GGUF_TYPE_ARRAY] = { "array", 0 },
  [AT_GGUF_TYPE_UINT64] = { "uint64", 8 },   [AT_GGUF_TYPE_INT64] = { "int64", 8 },
  [AT_GGUF_TYPE_FLOAT64] = { "float64", 8 },
};

const char *
at_gguf_type_name (AtGgufType type)
{
  return (guint) type < AT_GGUF_N_TYPES ? value_types[type].name : "unknown";
}

gsize
at_gguf_type_size (AtGgufType type)
{
  return (guint) type < AT_GGUF_N_TYPES ? value_types[type].size : 0;
}

static gboolean G_GNUC_PRINTF (3, 4)
invalid (AtGguf *gguf, GError **error, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: %s", gguf->name, message);
  return FALSE;
}

static gboolean
take (Reader *r, gsize n, const guint8 **out)
{
  if (n > r->size - r->pos)
    {
      if (r->item)
        return invalid (r->gguf, r->error, "file ends inside %s '%s' (offset %" G_GSIZE_FORMAT ")",
                        r->section, r->item, r->pos);
      return invalid (r->gguf, r->error, "file ends inside the %s (offset %" G_GSIZE_FORMAT ")",
                      r->section, r->pos);
    }
  *out = r->base + r->pos;
  r->pos += n;
  return TRUE;
}

static gboolean
read_u32 (Reader *r, guint32 *out)
{
  const guint8 *p = NULL;

  if (!take (r, sizeof *out, &p))
    return FALSE;
  memcpy (out, p, sizeof *out);
  return TRUE;
}

static gboolean
read_u64 (Reader *r, guint64 *out)
{
  const guint8 *p = NULL;

  if (!take (r, sizeof *out, &p))
    return FALSE;
  memcpy (out, p, sizeof *out);
  return TRUE;
}

/* A string left in the map: not NUL-terminated. */
static gboolean
read_string (Reader *r, const char **str, gsize *len)
{
  gsize at = r->pos;
  guint64 n;
  const guint8 *p = NULL;

  if (!read_u64 (r, &n))
    return FALSE;
  if (n > r->size - r->pos)
    return invalid (r->gguf, r->error,
                    "string of %" G_GUINT64_FORMAT " bytes at offset %" G_GSIZE_FORMAT
                    " runs past the end of the file", n, at);
  if (!take (r, n, &p))
    return FALSE;
  *str = (const char *) p;
  *len = n;
  return TRUE;
}

/* Keys and tensor names become C strings and appear in messages: they must be
 * UTF-8 without NULs. */
static const char *
read_name (Reader *r, const char *what)
{
  gsize at = r->pos, len;
  const char *str;

  if (!read_string (r, &str, &len))
    return NULL;
  if (memchr (str, 0, len) || !g_utf8_validate_len (str, len, NULL))
    {
      invalid (r->gguf, r->error, "%s at offset %" G_GSIZE_FORMAT " is not a valid UTF-8 string",
               what, at);
      return NULL;
    }
  return g_string_chunk_insert_len (r->gguf->strings, str, len);
}

static void
decode_scalar (const guint8 *p, AtGgufType type, AtGgufValue *value)
{
  value->type = type;
  switch (type)
    {
    case AT_GGUF_TYPE_UINT8:
    case AT_GGUF_TYPE_BOOL:
      value->u64 = p[0];
      break;
    case AT_GGUF_TYPE_INT8:
      value->i64 = (gint8) p[0];
      break;
    case AT_GGUF_TYPE_UINT16:
      {
        guint16 v;
        memcpy (&v, p, sizeof v);
        value->u64 = v;
        break;
      }
    case AT_GGUF_TYPE_INT16:
      {
        gint16 v;
        memcpy (&v, p, sizeof v);
        value->i64 = v;
        break;
      }
    case AT_GGUF_TYPE_UINT32:
      {
        guint32 v;
        memcpy (&v, p, sizeof v);
        value->u64 = v;
        break;
      }
    case AT_GGUF_TYPE_INT32:
      {
        gint32 v;
        memcpy (&v, p, sizeof v);
        value->i64 = v;
        break;
      }
    case AT_GGUF_TYPE_FLOAT32:
      {
        float v;
        memcpy (&v, p, sizeof v);
        value->f64 = v;
        break;
      }
    case AT_GGUF_TYPE_UINT64:
      memcpy (&value->u64, p, sizeof value->u64);
      break;
    case AT_GGUF_TYPE_INT64:
      memcpy (&value->i64, p, sizeof value->i64);
      break;
    case AT_GGUF_TYPE_FLOAT64:
      memcpy (&value->f64, p, sizeof value->f64);
      break;
    case AT_GGUF_TYPE_STRING:
    case AT_GGUF_TYPE_ARRAY:
    case AT_GGUF_N_TYPES:
      g_assert_not_reached ();
    }
}

static gboolean
read_array (Reader *r, const char *key, AtGgufArray *array)
{
  guint32 type;
  guint64 n;
  gsize element_size;

  if (!read_u32 (r, &type) || !read_u64 (r, &n))
    return FALSE;
  if (type == AT_GGUF_TYPE_ARRAY)
    return invalid (r->gguf, r->error, "key '%s' is an array of arrays, which is not supported",
                    key);
  if (type >= AT_GGUF_N_TYPES)
    return invalid (r->gguf, r->error, "key '%s' is an array of unknown type %u", key, type);
  array->type = type;
  array->n = n;
  /* A string takes at least its 8-byte length. */
  element_size = type == AT_GGUF_TYPE_STRING ? 8 : value_types[type].size;
  if (n > (r->size - r->pos) / element_size)
    return invalid (r->gguf, r->error,
                    "key '%s': array of %" G_GUINT64_FORMAT " %s values runs past the end of the file",
                    key, n, value_types[type].name);

  if (type == AT_GGUF_TYPE_STRING)
    {
      g_autofree const char **strings = g_new (const char *, n);
      g_autofree gsize *lengths = g_new (gsize, n);

      for (guint64 i = 0; i < n; i++)
        {
          const char *str;

          if (!read_string (r, &str, &lengths[i]))
            return FALSE;
          strings[i] = g_string_chunk_insert_len (r->gguf->strings, str, lengths[i]);
        }
      array->strings = g_steal_pointer (&strings);
      array->lengths = g_steal_pointer (&lengths);
      return TRUE;
    }

  if (!take (r, n * element_size, &array->data))
    return FALSE;
  if (type == AT_GGUF_TYPE_BOOL)
    for (guint64 i = 0; i < n; i++)
      if (array->data[i] > 1)
        return invalid (r->gguf, r->error, "key '%s': element %" G_GUINT64_FORMAT
                        " is not a boolean (%u)", key, i, array->data[i]);
  return TRUE;
}

static gboolean
read_value (Reader *r, const char *key, AtGgufValue *value)
{
  guint32 type;
  const guint8 *p = NULL;

  if (!read_u32 (r, &type))
    return FALSE;
  if (type >= AT_GGUF_N_TYPES)
    return invalid (r->gguf, r->error, "key '%s' has unknown value type %u", key, type);
  value->type = type;
  if (type == AT_GGUF_TYPE_ARRAY)
    return read_array (r, key, &value->array);
  if (type == AT_GGUF_TYPE_STRING)
    {
      const char *str;

      if (!read_string (r, &str, &value->string.len))
        return FALSE;
      value->string.str = g_string_chunk_insert_len (r->gguf->strings, str, value->string.len);
      return TRUE;
    }
  if (!take (r, value_types[type].size, &p))
    return FALSE;
  if (type == AT_GGUF_TYPE_BOOL && p[0] > 1)
    return invalid (r->gguf, r->error, "key '%s' is not a boolean (%u)", key, p[0]);
  decode_scalar (p, type, value);
  return TRUE;
}

static void
kv_clear (gpointer data)
{
  Kv *kv = data;

  if (kv->value.type == AT_GGUF_TYPE_ARRAY)
    {
      g_free ((gpointer) kv->value.array.strings);
      g_free ((gpointer) kv->value.array.lengths);
    }
}

static gboolean
read_header (Reader *r, guint64 *n_tensors, guint64 *n_kv)
{
  AtGguf *gguf = r->gguf;
  guint32 version;
  const guint8 *magic;

  r->section = "header";
  if (r->size < 4 || memcmp (r->base, "GGUF", 4) != 0)
    {
      if (r->size >= 4 && memcmp (r->base, "FUGG", 4) == 0)
        return invalid (gguf, r->error, "big-endian GGUF files are not supported");
      return invalid (gguf, r->error, "not a GGUF file (it does not start with \"GGUF\")");
    }
  if (!take (r, 4, &magic) || !read_u32 (r, &version))
    return FALSE;
  if (version != 2 && version != 3)
    {
      if (GUINT32_SWAP_LE_BE (version) >= 1 && GUINT32_SWAP_LE_BE (version) <= 3)
        return invalid (gguf, r->error, "big-endian GGUF files are not supported");
      if (version == 1)
        return invalid (gguf, r->error, "GGUF version 1 is not supported (it predates the "
                        "current format; convert the model again)");
      return invalid (gguf, r->error, "unsupported GGUF version %u (2 and 3 are supported)",
                      version);
    }
  gguf->version = version;
  if (!read_u64 (r, n_tensors) || !read_u64 (r, n_kv))
    return FALSE;
  if (*n_kv > (r->size - r->pos) / MIN_KV_BYTES || *n_kv > G_MAXUINT)
    return invalid (gguf, r->error, "claims %" G_GUINT64_FORMAT " metadata entries, "
                    "more than the file can hold", *n_kv);
  if (*n_tensors > (r->size - r->pos) / MIN_TENSOR_INFO_BYTES || *n_tensors > G_MAXUINT)
    return invalid (gguf, r->error, "claims %" G_GUINT64_FORMAT " tensors, "
                    "more than the file can hold", *n_tensors);
  return TRUE;
}

static gboolean
read_metadata (Reader *r, guint64 n_kv)
{
  AtGguf *gguf = r->gguf;

  for (guint64 i = 0; i < n_kv; i++)
    {
      Kv kv = { 0 };

      r->section = "metadata";
      r->item = NULL;
      if (!(kv.key = read_name (r, "metadata key")))
        return FALSE;
      r->section = "key";
      r->item = kv.key;
      if (g_hash_table_contains (gguf->kv_index, kv.key))
        return invalid (gguf, r->error, "duplicate key '%s'", kv.key);
      if (!read_value (r, kv.key, &kv.value))
        return FALSE;
      g_array_append_val (gguf->kvs, kv);
      g_hash_table_insert (gguf->kv_index, (gpointer) kv.key, GUINT_TO_POINTER (gguf->kvs->len));
    }
  r->item = NULL;

  gguf->alignment = AT_GGUF_DEFAULT_ALIGNMENT;
  if (at_gguf_find (gguf, "general.alignment"))
    {
      if (!at_gguf_get_u32 (gguf, "general.alignment", &gguf->alignment, r->error))
        return FALSE;
      if (gguf->alignment == 0 || (gguf->alignment & (gguf->alignment - 1)) != 0)
        return invalid (gguf, r->error, "general.alignment %u is not a power of two",
                        gguf->alignment);
    }
  return TRUE;
}

static gboolean
read_tensor_info (Reader *r, AtGgufTensor *t)
{
  AtGguf *gguf = r->gguf;
  const AtTypeInfo *info;
  guint32 n_dims, type;
  guint64 n_elements = 1, n_blocks;

  r->section = "tensor infos";
  r->item = NULL;
  if (!(t->name = read_name (r, "tensor name")))
    return FALSE;
  r->section = "tensor info";
  r->item = t->name;
  if (g_hash_table_contains (gguf->tensor_index, t->name))
    return invalid (gguf, r->error, "duplicate tensor '%s'", t->name);

  if (!read_u32 (r, &n_dims))
    return FALSE;
  if (n_dims < 1 || n_dims > 4)
    return invalid (gguf, r->error, "tensor '%s' has %u dimensions (1 to 4 are supported)",
                    t->name, n_dims);
  t->n_dims = n_dims;
  for (guint d = 0; d < 4; d++)
    {
      guint64 ne = 1;

      if (d < n_dims && !read_u64 (r, &ne))
        return FALSE;
      if (ne == 0)
        return invalid (gguf, r->error, "tensor '%s' has an empty dimension %u", t->name, d);
      if (ne > G_MAXINT64 / n_elements)
        return invalid (gguf, r->error, "tensor '%s' has too many elements (dimension %u is %"
                        G_GUINT64_FORMAT ")", t->name, d, ne);
      n_elements *= ne;
      t->ne[d] = (gint64) ne;
    }

  if (!read_u32 (r, &type))
    return FALSE;
  if (!(info = at_type_info (type)))
    return invalid (gguf, r->error, "tensor '%s' has unknown or unsupported type %u", t->name,
                    type);
  t->type = type;
  if (t->ne[0] % info->block_size != 0)
    return invalid (gguf, r->error, "tensor '%s': rows of %" G_GINT64_FORMAT " elements are not "
                    "a multiple of the %s block size %u", t->name, t->ne[0], info->name,
                    info->block_size);
  n_blocks = n_elements / info->block_size;
  if (n_blocks > G_MAXSIZE / info->type_size)
    return invalid (gguf, r->error, "tensor '%s' is too large", t->name);
  t->size = n_blocks * info->type_size;

  if (!read_u64 (r, &t->offset))
    return FALSE;
  if (t->offset % gguf->alignment != 0)
    return invalid (gguf, r->error, "tensor '%s' offset %" G_GUINT64_FORMAT " is not a multiple "
                    "of the alignment %u", t->name, t->offset, gguf->alignment);
  return TRUE;
}

static int
compare_offsets (gconstpointer a, gconstpointer b)
{
  const AtGgufTensor *ta = *(AtGgufTensor *const *) a, *tb = *(AtGgufTensor *const *) b;

  return ta->offset < tb->offset ? -1 : ta->offset > tb->offset;
}

/* Places the tensors in the data section, which starts at the first aligned offset
 * after the infos, and checks that each lies inside the file and none overlap. */
static gboolean
place_tensors (Reader *r)
{
  AtGguf *gguf = r->gguf;
  guint n = gguf->tensors->len;
  g_autofree AtGgufTensor **sorted = g_new (AtGgufTensor *, n);

  gguf->data_offset = r->pos + (gguf->alignment - r->pos % gguf->alignment) % gguf->alignment;
  for (guint i = 0; i < n; i++)
    {
      AtGgufTensor *t = &g_array_index (gguf->tensors, AtGgufTensor, i);

      if (gguf->data_offset > r->size || t->offset > r->size - gguf->data_offset
          || t->size > r->size - gguf->data_offset - t->offset)
        return invalid (gguf, r->error, "tensor '%s' ends past the end of the file", t->name);
      t->offset += gguf->data_offset;
      t->data = r->base + t->offset;
      sorted[i] = t;
    }
  if (n > 1)
    qsort (sorted, n, sizeof *sorted, compare_offsets);
  for (guint i = 1; i < n; i++)
    if (sorted[i - 1]->offset + sorted[i - 1]->size > sorted[i]->offset)
      return invalid (gguf, r->error, "tensors '%s' and '%s' overlap", sorted[i - 1]->name,
                      sorted[i]->name);
  return TRUE;
}

static gboolean
parse (AtGguf *gguf, GError **error)
{
  Reader r = { .gguf = gguf, .error = error };
  guint64 n_tensors, n_kv;

  r.base = g_bytes_get_data (gguf->bytes, &r.size);
  if (!read_header (&r, &n_tensors, &n_kv) || !read_metadata (&r, n_kv))
    return FALSE;
  for (guint64 i = 0; i < n_tensors; i++)
    {
      AtGgufTensor t = { 0 };

      if (!read_tensor_info (&r, &t))
        return FALSE;
      g_array_append_val (gguf->tensors, t);
      g_hash_table_insert (gguf->tensor_index, (gpointer) t.name,
                           GUINT_TO_POINTER (gguf->tensors->len));
    }
  return place_tensors (&r);
}

AtGguf *
at_gguf_new_from_bytes (GBytes *bytes, const char *name, GError **error)
{
  g_autoptr (AtGguf) gguf = g_new0 (AtGguf, 1);

  g_return_val_if_fail (bytes != NULL && name != NULL, NULL);
  g_return_val_if_fail (error == NULL || *error == NULL, NULL);

  gguf->name = g_strdup (name);
  gguf->bytes = g_bytes_ref (bytes);
  gguf->strings = g_string_chunk_new (64 * 1024);
  gguf->kvs = g_array_new (FALSE, TRUE, sizeof (Kv));
  g_array_set_clear_func (gguf->kvs, kv_clear);
  gguf->kv_index = g_hash_table_new (g_str_hash, g_str_equal);
  gguf->tensors = g_array_new (FALSE, TRUE, sizeof (AtGgufTensor));
  gguf->tensor_index = g_hash_table_new (g_str_hash, g_str_equal);
  if (!parse (gguf, error))
    return NULL;
  return g_steal_pointer (&gguf);
}

AtGguf *
at_gguf_open (const char *path, GError **error)
{
  g_autoptr (GMappedFile) file = NULL;
  g_autoptr (GBytes) bytes = NULL;
  g_autofree char *name = NULL;

  g_return_val_if_fail (path != NULL, NULL);

  if (!(file = g_mapped_file_new (path, FALSE, error)))
    return NULL;
  bytes = g_mapped_file_get_bytes (file);
  name = g_filename_display_name (path);
  return at_gguf_new_from_bytes (bytes, name, error);
}

void
at_gguf_free (AtGguf *gguf)
{
  if (!gguf)
    return;
  g_clear_pointer (&gguf->tensor_index, g_hash_table_unref);
  g_clear_pointer (&gguf->tensors, g_array_unref);
  g_clear_pointer (&gguf->kv_index, g_hash_table_unref);
  g_clear_pointer (&gguf->kvs, g_array_unref);
  g_clear_pointer (&gguf->strings, g_string_chunk_free);
  g_clear_pointer (&gguf->bytes, g_bytes_unref);
  g_free (gguf->name);
  g_free (gguf);
}

const char *
at_gguf_get_name (AtGguf *gguf)
{
  return gguf->name;
}

guint32
at_gguf_get_version (AtGguf *gguf)
{
  return gguf->version;
}

guint32
at_gguf_get_alignment (AtGguf *gguf)
{
  return gguf->alignment;
}

guint64
at_gguf_get_data_offset (AtGguf *gguf)
{
  return gguf->data_offset;
}

guint
at_gguf_get_n_kv (AtGguf *gguf)
{
  return gguf->kvs->len;
}

const AtGgufValue *
at_gguf_get_kv (AtGguf *gguf, guint index, const char **key)
{
  Kv *kv;

  g_return_val_if_fail (index < gguf->kvs->len, NULL);
  kv = &g_array_index (gguf->kvs, Kv, index);
  if (key)
    *key = kv->key;
  return &kv->value;
}

const AtGgufValue *
at_gguf_find (AtGguf *gguf, const char *key)
{
  guint index = GPOINTER_TO_UINT (g_hash_table_lookup (gguf->kv_index, key));

  return index ? &g_array_index (gguf->kvs, Kv, index - 1).value : NULL;
}

static const AtGgufValue *
lookup (AtGguf *gguf, const char *key, GError **error)
{
  const AtGgufValue *value = at_gguf_find (gguf, key);

  if (!value)
    invalid (gguf, error, "key '%s' is missing", key);
  return value;
}

static gboolean
mismatch (AtGguf *gguf, const char *key, const AtGgufValue *value, const char *expected,
          GError **error)
{
  if (value->type == AT_GGUF_TYPE_ARRAY)
    return invalid (gguf, error, "key '%s' is an array of %s, expected %s", key,
                    at_gguf_type_name (value->array.type), expected);
  return invalid (gguf, error, "key '%s' is %s, expected %s", key, at_gguf_type_name (value->type),
                  expected);
}

static gboolean
is_unsigned (AtGgufType type)
{
  return type == AT_GGUF_TYPE_UINT8 || type == AT_GGUF_TYPE_UINT16 || type == AT_GGUF_TYPE_UINT32
         || type == AT_GGUF_TYPE_UINT64;
}

static gboolean
is_signed (AtGgufType type)
{
  return type == AT_GGUF_TYPE_INT8 || type == AT_GGUF_TYPE_INT16 || type == AT_GGUF_TYPE_INT32
         || type == AT_GGUF_TYPE_INT64;
}

/* An integer key whose value lies in [min, max], as its two's complement bits. */
static gboolean
get_integer (AtGguf *gguf, const char *key, gint64 min, guint64 max, const char *expected,
             guint64 *bits, GError **error)
{
  const AtGgufValue *value = lookup (gguf, key, error);

  if (!value)
    return FALSE;
  if (is_unsigned (value->type) && value->u64 <= max)
    {
      *bits = value->u64;
      return TRUE;
    }
  if (is_signed (value->type) && value->i64 >= min && (value->i64 < 0 || (guint64) value->i64 <= max))
    {
      *bits = (guint64) value->i64;
      return TRUE;
    }
  if (is_unsigned (value->type) || is_signed (value->type))
    {
      g_autofree char *text = at_gguf_value_to_string (value, 0);
      return invalid (gguf, error, "key '%s' is %s, which does not fit %s", key, text, expected);
    }
  return mismatch (gguf, key, value, expected, error);
}

gboolean
at_gguf_get_u32 (AtGguf *gguf, const char *key, guint32 *out, GError **error)
{
  guint64 bits;

  if (!get_integer (gguf, key, 0, G_MAXUINT32, "uint32", &bits, error))
    return FALSE;
  *out = (guint32) bits;
  return TRUE;
}

gboolean
at_gguf_get_u64 (AtGguf *gguf, const char *key, guint64 *out, GError **error)
{
  return get_integer (gguf, key, 0, G_MAXUINT64, "uint64", out, error);
}

gboolean
at_gguf_get_i32 (AtGguf *gguf, const char *key, gint32 *out, GError **error)
{
  guint64 bits;

  if (!get_integer (gguf, key, G_MININT32, G_MAXINT32, "int32", &bits, error))
    return FALSE;
  *out = (gint32) bits;
  return TRUE;
}

gboolean
at_gguf_get_f32 (AtGguf *gguf, const char *key, float *out, GError **error)
{
  const AtGgufValue *value = lookup (gguf, key, error);

  if (!value)
    return FALSE;
  if (value->type != AT_GGUF_TYPE_FLOAT32 && value->type != AT_GGUF_TYPE_FLOAT64)
    return mismatch (gguf, key, value, "float32", error);
  *out = (float) value->f64;
  return TRUE;
}

gboolean
at_gguf_get_bool (AtGguf *gguf, const char *key, gboolean *out, GError **error)
{
  const AtGgufValue *value = lookup (gguf, key, error);

  if (!value)
    return FALSE;
  if (value->type != AT_GGUF_TYPE_BOOL)
    return mismatch (gguf, key, value, "bool", error);
  *out = value->u64 != 0;
  return TRUE;
}

const char *
at_gguf_get_string (AtGguf *gguf, const char *key, GError **error)
{
  const AtGgufValue *value = lookup (gguf, key, error);

  if (!value)
    return NULL;
  if (value->type != AT_GGUF_TYPE_STRING)
    {
      mismatch (gguf, key, value, "string", error);
      return NULL;
    }
  return value->string.str;
}

const AtGgufArray *
at_gguf_get_array (AtGguf *gguf, const char *key, AtGgufType element_type, GError **error)
{
  const AtGgufValue *value = lookup (gguf, key, error);

  if (!value)
    return NULL;
  if (value->type != AT_GGUF_TYPE_ARRAY || value->array.type != element_type)
    {
      g_autofree char *expected = g_strdup_printf ("an array of %s",
                                                   at_gguf_type_name (element_type));
      mismatch (gguf, key, value, expected, error);
      return NULL;
    }
  return &value->array;
}

AtGgufValue
at_gguf_array_get (const AtGgufArray *array, guint64 i)
{
  AtGgufValue value = { .type = array->type };

  g_return_val_if_fail (i < array->n, value);

  if (array->type == AT_GGUF_TYPE_STRING)
    {
      value.string.str = array->strings[i];
      value.string.len = array->lengths[i];
    }
  else
    decode_scalar (array->data + i * value_types[array->type].size, array->type, &value);
  return value;
}

float
at_gguf_array_get_f32 (const AtGgufArray *array, guint64 i)
{
  float v;

  g_return_val_if_fail (array->type == AT_GGUF_TYPE_FLOAT32 && i < array->n, 0.0f);
  memcpy (&v, array->data + i * sizeof v, sizeof v);
  return v;
}

gint32
at_gguf_array_get_i32 (const AtGgufArray *array, guint64 i)
{
  gint32 v;

  g_return_val_if_fail (array->type == AT_GGUF_TYPE_INT32 && i < array->n, 0);
  memcpy (&v, array->data + i * sizeof v, sizeof v);
  return v;
}

/* Quoted, with control characters, quotes and backslashes escaped; UTF-8 kept. */
static void
append_quoted (GString *out, const char *str, gsize len)
{
  g_string_append_c (out, '"');
  for (gsize i = 0; i < len; i++)
    {
      guchar c = str[i];

      if (c == '"' || c == '\\')
        g_string_append_printf (out, "\\%c", c);
      else if (c == '\n')
        g_string_append (out, "\\n");
      else if (c < 0x20 || c == 0x7f)
        g_string_append_printf (out, "\\x%02x", c);
      else
        g_string_append_c (out, c);
    }
  g_string_append_c (out, '"');
}

static void
append_value (GString *out, const AtGgufValue *value, guint max_elements)
{
  switch (value->type)
    {
    case AT_GGUF_TYPE_UINT8:
    case AT_GGUF_TYPE_UINT16:
    case AT_GGUF_TYPE_UINT32:
    case AT_GGUF_TYPE_UINT64:
      g_string_append_printf (out, "%" G_GUINT64_FORMAT, value->u64);
      break;
    case AT_GGUF_TYPE_INT8:
    case AT_GGUF_TYPE_INT16:
    case AT_GGUF_TYPE_INT32:
    case AT_GGUF_TYPE_INT64:
      g_string_append_printf (out, "%" G_GINT64_FORMAT, value->i64);
      break;
    case AT_GGUF_TYPE_FLOAT32:
    case AT_GGUF_TYPE_FLOAT64:
      g_string_append_printf (out, "%g", value->f64);
      break;
    case AT_GGUF_TYPE_BOOL:
      g_string_append (out, value->u64 ? "true" : "false");
      break;
    case AT_GGUF_TYPE_STRING:
      append_quoted (out, value->string.str, value->string.len);
      break;
    case AT_GGUF_TYPE_ARRAY:
      g_string_append_c (out, '[');
      for (guint64 i = 0; i < value->array.n && i < max_elements; i++)
        {
          AtGgufValue element = at_gguf_array_get (&value->array, i);

          if (i > 0)
            g_string_append (out, ", ");
          append_value (out, &element, 0);
        }
      if (value->array.n > max_elements)
        g_string_append_printf (out, "%s... %" G_GUINT64_FORMAT " %s values",
                                max_elements > 0 ? ", " : "", value->array.n,
                                at_gguf_type_name (value->array.type));
      g_string_append_c (out, ']');
      break;
    case AT_GGUF_N_TYPES:
      g_assert_not_reached ();
    }
}

char *
at_gguf_value_to_string (const AtGgufValue *value, guint max_elements)
{
  GString *out = g_string_new (NULL);

  append_value (out, value, max_elements);
  return g_string_free (out, FALSE);
}

guint
at_gguf_get_n_tensors (AtGguf *gguf)
{
  return gguf->tensors->len;
}

const AtGgufTensor *
at_gguf_get_tensor (AtGguf *gguf, guint index)
{
  g_return_val_if_fail (index < gguf->tensors->len, NULL);
  return &g_array_index (gguf->tensors, AtGgufTensor, index);
}

const AtGgufTensor *
at_gguf_find_tensor (AtGguf *gguf, const char *name)
{
  guint index = GPOINTER_TO_UINT (g_hash_table_lookup (gguf->tensor_index, name));

  return index ? &g_array_index (gguf->tensors, AtGgufTensor, index - 1) : NULL;
}
