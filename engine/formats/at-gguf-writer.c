/* at-gguf-writer.c: GGUF v3 files, laid out as at-gguf.c reads them. The metadata is
 * serialized as it is added; the tensor infos and data when the file is written. */
#include "formats/at-gguf-writer.h"

#include <errno.h>
#include <fcntl.h>
#include <glib/gstdio.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Host-order elements are written as they are: GGUF is little-endian. */
G_STATIC_ASSERT (G_BYTE_ORDER == G_LITTLE_ENDIAN);

typedef struct {
  char *name;
  AtType type;
  guint n_dims;
  gint64 ne[4];
  GBytes *data;
} Tensor;

struct _AtGgufWriter {
  GByteArray *kvs; /* the metadata section so far */
  guint64 n_kv;
  GHashTable *keys;
  GArray *tensors; /* Tensor */
  GHashTable *tensor_names;
  guint32 alignment;
};

static void
tensor_clear (gpointer data)
{
  Tensor *t = data;

  g_free (t->name);
  g_bytes_unref (t->data);
}

AtGgufWriter *
at_gguf_writer_new (void)
{
  AtGgufWriter *writer = g_new0 (AtGgufWriter, 1);

  writer->kvs = g_byte_array_new ();
  writer->keys = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, NULL);
  writer->tensors = g_array_new (FALSE, TRUE, sizeof (Tensor));
  g_array_set_clear_func (writer->tensors, tensor_clear);
  writer->tensor_names = g_hash_table_new (g_str_hash, g_str_equal);
  writer->alignment = AT_GGUF_DEFAULT_ALIGNMENT;
  return writer;
}

void
at_gguf_writer_free (AtGgufWriter *writer)
{
  if (!writer)
    return;
  g_byte_array_unref (writer->kvs);
  g_hash_table_unref (writer->keys);
  g_hash_table_unref (writer->tensor_names);
  g_array_unref (writer->tensors);
  g_free (writer);
}

static void
put_u32 (GByteArray *out, guint32 v)
{
  g_byte_array_append (out, (const guint8 *) &v, sizeof v);
}

static void
put_u64 (GByteArray *out, guint64 v)
{
  g_byte_array_append (out, (const guint8 *) &v, sizeof v);
}

static void
put_string (GByteArray *out, const char *str, gsize len)
{
  put_u64 (out, len);
  g_byte_array_append (out, (const guint8 *) str, len);
}

static void
put_scalar (GByteArray *out, const AtGgufValue *value)
{
  union {
    guint8 u8;
    gint8 i8;
    guint16 u16;
    gint16 i16;
    guint32 u32;
    gint32 i32;
    float f32;
    guint64 u64;
    gint64 i64;
    double f64;
  } v;

  switch (value->type)
    {
    case AT_GGUF_TYPE_UINT8: v.u8 = value->u64; break;
    case AT_GGUF_TYPE_BOOL: v.u8 = value->u64 != 0; break;
    case AT_GGUF_TYPE_INT8: v.i8 = value->i64; break;
    case AT_GGUF_TYPE_UINT16: v.u16 = value->u64; break;
    case AT_GGUF_TYPE_INT16: v.i16 = value->i64; break;
    case AT_GGUF_TYPE_UINT32: v.u32 = value->u64; break;
    case AT_GGUF_TYPE_INT32: v.i32 = value->i64; break;
    case AT_GGUF_TYPE_FLOAT32: v.f32 = value->f64; break;
    case AT_GGUF_TYPE_UINT64: v.u64 = value->u64; break;
    case AT_GGUF_TYPE_INT64: v.i64 = value->i64; break;
    case AT_GGUF_TYPE_FLOAT64: v.f64 = value->f64; break;
    case AT_GGUF_TYPE_STRING:
    case AT_GGUF_TYPE_ARRAY:
    case AT_GGUF_N_TYPES:
      g_assert_not_reached ();
    }
  g_byte_array_append (out, (const guint8 *) &v, at_gguf_type_size (value->type));
}

static void
put_array (GByteArray *out, const AtGgufArray *array)
{
  put_u32 (out, array->type);
  put_u64 (out, array->n);
  if (array->type != AT_GGUF_TYPE_STRING)
    {
      g_byte_array_append (out, array->data, array->n * at_gguf_type_size (array->type));
      return;
    }
  for (gsize i = 0; i < array->n; i++)
    put_string (out, array->strings[i],
                array->lengths ? array->lengths[i] : strlen (array->strings[i]));
}

void
at_gguf_writer_add_value (AtGgufWriter *writer, const char *key, const AtGgufValue *value)
{
  g_return_if_fail (key != NULL && !g_hash_table_contains (writer->keys, key));
  g_return_if_fail ((guint) value->type < AT_GGUF_N_TYPES);
  g_return_if_fail (value->type != AT_GGUF_TYPE_ARRAY
                    || ((guint) value->array.type < AT_GGUF_N_TYPES
                        && value->array.type != AT_GGUF_TYPE_ARRAY));

  g_hash_table_add (writer->keys, g_strdup (key));
  put_string (writer->kvs, key, strlen (key));
  put_u32 (writer->kvs, value->type);
  if (value->type == AT_GGUF_TYPE_STRING)
    put_string (writer->kvs, value->string.str, value->string.len);
  else if (value->type == AT_GGUF_TYPE_ARRAY)
    put_array (writer->kvs, &value->array);
  else
    put_scalar (writer->kvs, value);
  writer->n_kv++;
}

void
at_gguf_writer_add_u32 (AtGgufWriter *writer, const char *key, guint32 value)
{
  at_gguf_writer_add_value (writer, key, &(AtGgufValue){ .type = AT_GGUF_TYPE_UINT32, .u64 = value });
}

void
at_gguf_writer_add_i32 (AtGgufWriter *writer, const char *key, gint32 value)
{
  at_gguf_writer_add_value (writer, key, &(AtGgufValue){ .type = AT_GGUF_TYPE_INT32, .i64 = value });
}

void
at_gguf_writer_add_f32 (AtGgufWriter *writer, const char *key, float value)
{
  at_gguf_writer_add_value (writer, key,
                            &(AtGgufValue){ .type = AT_GGUF_TYPE_FLOAT32, .f64 = value });
}

void
at_gguf_writer_add_bool (AtGgufWriter *writer, const char *key, gboolean value)
{
  at_gguf_writer_add_value (writer, key,
                            &(AtGgufValue){ .type = AT_GGUF_TYPE_BOOL, .u64 = value != FALSE });
}

void
at_gguf_writer_add_string (AtGgufWriter *writer, const char *key, const char *value)
{
  at_gguf_writer_add_value (writer, key,
                            &(AtGgufValue){ .type = AT_GGUF_TYPE_STRING,
                                            .string = { value, strlen (value) } });
}

void
at_gguf_writer_add_array (AtGgufWriter *writer, const char *key, AtGgufType type,
                          const void *elements, gsize n)
{
  g_return_if_fail (at_gguf_type_size (type) > 0);
  at_gguf_writer_add_value (writer, key,
                            &(AtGgufValue){ .type = AT_GGUF_TYPE_ARRAY,
                                            .array = { .type = type, .n = n, .data = elements } });
}

void
at_gguf_writer_add_string_array (AtGgufWriter *writer, const char *key,
                                 const char *const *strings, gsize n)
{
  at_gguf_writer_add_value (writer, key,
                            &(AtGgufValue){ .type = AT_GGUF_TYPE_ARRAY,
                                            .array = { .type = AT_GGUF_TYPE_STRING, .n = n,
                                                       .strings = strings } });
}

void
at_gguf_writer_set_alignment (AtGgufWriter *writer, guint32 alignment)
{
  g_return_if_fail (alignment > 0 && (alignment & (alignment - 1)) == 0);
  writer->alignment = alignment;
  at_gguf_writer_add_u32 (writer, "general.alignment", alignment);
}

void
at_gguf_writer_add_tensor (AtGgufWriter *writer, const char *name, AtType type, guint n_dims,
                           const gint64 *ne, GBytes *data)
{
  const AtTypeInfo *info = at_type_info (type);
  Tensor t = { .type = type, .n_dims = n_dims, .ne = { 1, 1, 1, 1 } };
  gsize rows = 1;

  g_return_if_fail (name != NULL && !g_hash_table_contains (writer->tensor_names, name));
  g_return_if_fail (info != NULL && n_dims >= 1 && n_dims <= 4);
  for (guint d = 0; d < n_dims; d++)
    {
      g_return_if_fail (ne[d] > 0);
      t.ne[d] = ne[d];
      rows *= d > 0 ? ne[d] : 1;
    }
  g_return_if_fail (g_bytes_get_size (data) == rows * at_type_row_size (type, ne[0]));

  t.name = g_strdup (name);
  t.data = g_bytes_ref (data);
  g_array_append_val (writer->tensors, t);
  g_hash_table_add (writer->tensor_names, t.name);
}

static gsize
padding (gsize size, guint32 alignment)
{
  return (alignment - size % alignment) % alignment;
}

/* The file as a sequence of pieces: header, metadata and tensor infos, then each
 * tensor's data, with zero padding to the alignment before each tensor. */
static GPtrArray *
layout (AtGgufWriter *writer)
{
  GPtrArray *pieces = g_ptr_array_new_with_free_func ((GDestroyNotify) g_bytes_unref);
  GByteArray *head = g_byte_array_new ();
  guint64 offset = 0;
  gsize pos;

  g_byte_array_append (head, (const guint8 *) "GGUF", 4);
  put_u32 (head, 3);
  put_u64 (head, writer->tensors->len);
  put_u64 (head, writer->n_kv);
  g_byte_array_append (head, writer->kvs->data, writer->kvs->len);
  for (guint i = 0; i < writer->tensors->len; i++)
    {
      Tensor *t = &g_array_index (writer->tensors, Tensor, i);

      put_string (head, t->name, strlen (t->name));
      put_u32 (head, t->n_dims);
      for (guint d = 0; d < t->n_dims; d++)
        put_u64 (head, t->ne[d]);
      put_u32 (head, t->type);
      offset += padding (offset, writer->alignment);
      put_u64 (head, offset);
      offset += g_bytes_get_size (t->data);
    }
  g_ptr_array_add (pieces, g_byte_array_free_to_bytes (head));

  /* The data section starts aligned, so aligning absolute positions aligns offsets. */
  pos = g_bytes_get_size (pieces->pdata[0]);
  for (guint i = 0; i < writer->tensors->len; i++)
    {
      Tensor *t = &g_array_index (writer->tensors, Tensor, i);
      gsize pad = padding (pos, writer->alignment);

      g_ptr_array_add (pieces, g_bytes_new_take (g_malloc0 (pad), pad));
      g_ptr_array_add (pieces, g_bytes_ref (t->data));
      pos += pad + g_bytes_get_size (t->data);
    }
  return pieces;
}

GBytes *
at_gguf_writer_to_bytes (AtGgufWriter *writer)
{
  g_autoptr (GPtrArray) pieces = layout (writer);
  GByteArray *out = g_byte_array_new ();

  for (guint i = 0; i < pieces->len; i++)
    {
      gsize size;
      const guint8 *data = g_bytes_get_data (pieces->pdata[i], &size);
      g_byte_array_append (out, data, size);
    }
  return g_byte_array_free_to_bytes (out);
}

static gboolean
io_error (GError **error, const char *path, int saved_errno)
{
  g_autofree char *name = g_filename_display_name (path);

  g_set_error (error, G_FILE_ERROR, g_file_error_from_errno (saved_errno), "%s: %s", name,
               g_strerror (saved_errno));
  return FALSE;
}

gboolean
at_gguf_writer_write (AtGgufWriter *writer, const char *path, GError **error)
{
  g_autoptr (GPtrArray) pieces = layout (writer);
  g_autofree char *tmp = g_strdup_printf ("%s.XXXXXX", path);
  int fd = g_mkstemp_full (tmp, O_RDWR, 0644);
  FILE *file;
  int saved_errno;

  if (fd < 0)
    return io_error (error, tmp, errno);
  if (!(file = fdopen (fd, "wb")))
    {
      saved_errno = errno;
      close (fd);
      goto fail;
    }
  for (guint i = 0; i < pieces->len; i++)
    {
      gsize size;
      const void *data = g_bytes_get_data (pieces->pdata[i], &size);

      if (size > 0 && fwrite (data, 1, size, file) != size)
        {
          saved_errno = errno;
          fclose (file);
          goto fail;
        }
    }
  /* The data must be on disk before the rename makes it visible under path. */
  if (fflush (file) != 0 || fsync (fileno (file)) != 0)
    {
      saved_errno = errno;
      fclose (file);
      goto fail;
    }
  if (fclose (file) != 0 || g_rename (tmp, path) != 0)
    {
      saved_errno = errno;
      goto fail;
    }
  return TRUE;

fail:
  g_unlink (tmp);
  return io_error (error, path, saved_errno);
}
