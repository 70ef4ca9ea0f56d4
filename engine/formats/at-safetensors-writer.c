#include "formats/at-safetensors-writer.h"

#include <gio/gio.h>
#include <json-glib/json-glib.h>
#include <string.h>

#include "at-error.h"

typedef struct {
  char *name;
  const char *dtype;
  GArray *shape; /* gint64, safetensors order */
  GBytes *data;
} Entry;

struct _AtSafetensorsWriter {
  GPtrArray *entries; /* Entry*, in the order added */
  GHashTable *names;  /* the entries' names, for refusing duplicates */
  GHashTable *metadata;
};

static void
entry_free (Entry *e)
{
  g_free (e->name);
  g_array_unref (e->shape);
  g_bytes_unref (e->data);
  g_free (e);
}

AtSafetensorsWriter *
at_safetensors_writer_new (void)
{
  AtSafetensorsWriter *writer = g_new0 (AtSafetensorsWriter, 1);
  writer->entries = g_ptr_array_new_with_free_func ((GDestroyNotify) entry_free);
  writer->names = g_hash_table_new (g_str_hash, g_str_equal);
  writer->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  return writer;
}

void
at_safetensors_writer_free (AtSafetensorsWriter *writer)
{
  if (writer == NULL)
    return;
  g_hash_table_unref (writer->names);
  g_ptr_array_unref (writer->entries);
  g_hash_table_unref (writer->metadata);
  g_free (writer);
}

void
at_safetensors_writer_set_metadata (AtSafetensorsWriter *writer, const char *key,
                                    const char *value)
{
  g_hash_table_insert (writer->metadata, g_strdup (key), g_strdup (value));
}

gboolean
at_safetensors_writer_add_tensor (AtSafetensorsWriter *writer, const char *name, AtType type,
                                  guint n_dims, const gint64 *ne, GBytes *data, GError **error)
{
  const char *dtype = type == AT_TYPE_F32    ? "F32"
                      : type == AT_TYPE_F16  ? "F16"
                      : type == AT_TYPE_BF16 ? "BF16"
                                             : NULL;
  if (dtype == NULL)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "tensor '%s': type %s cannot be written to safetensors", name,
                   at_type_name (type));
      return FALSE;
    }
  if (g_hash_table_contains (writer->names, name) || strcmp (name, "__metadata__") == 0)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "tensor '%s' is added twice or has a reserved name", name);
      return FALSE;
    }

  g_autoptr (GArray) shape = g_array_sized_new (FALSE, FALSE, sizeof (gint64), n_dims);
  guint64 n_elements = 1;
  for (guint i = 0; i < n_dims; i++)
    {
      gint64 d = ne[n_dims - 1 - i];
      if (d < 0 || !g_uint64_checked_mul (&n_elements, n_elements, (guint64) d))
        {
          g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                       "tensor '%s' has an impossible shape", name);
          return FALSE;
        }
      g_array_append_val (shape, d);
    }
  guint64 size;
  if (!g_uint64_checked_mul (&size, n_elements, at_type_row_size (type, 1))
      || size != g_bytes_get_size (data))
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   "tensor '%s' has %" G_GSIZE_FORMAT " bytes of data for its shape and type",
                   name, g_bytes_get_size (data));
      return FALSE;
    }

  Entry *e = g_new0 (Entry, 1);
  e->name = g_strdup (name);
  e->dtype = dtype;
  e->shape = g_steal_pointer (&shape);
  e->data = g_bytes_ref (data);
  g_ptr_array_add (writer->entries, e);
  g_hash_table_add (writer->names, e->name);
  return TRUE;
}

/* The JSON header, padded with spaces so that the data section starts 8-byte aligned. */
static char *
build_header (AtSafetensorsWriter *writer, gsize *length)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  json_builder_begin_object (builder);

  if (g_hash_table_size (writer->metadata) > 0)
    {
      g_autofree const char **keys = (const char **) g_hash_table_get_keys_as_array (
        writer->metadata, NULL);
      json_builder_set_member_name (builder, "__metadata__");
      json_builder_begin_object (builder);
      for (guint i = 0; keys[i] != NULL; i++)
        {
          json_builder_set_member_name (builder, keys[i]);
          json_builder_add_string_value (builder,
                                         g_hash_table_lookup (writer->metadata, keys[i]));
        }
      json_builder_end_object (builder);
    }

  gint64 offset = 0;
  for (guint i = 0; i < writer->entries->len; i++)
    {
      Entry *e = g_ptr_array_index (writer->entries, i);
      json_builder_set_member_name (builder, e->name);
      json_builder_begin_object (builder);
      json_builder_set_member_name (builder, "dtype");
      json_builder_add_string_value (builder, e->dtype);
      json_builder_set_member_name (builder, "shape");
      json_builder_begin_array (builder);
      for (guint d = 0; d < e->shape->len; d++)
        json_builder_add_int_value (builder, g_array_index (e->shape, gint64, d));
      json_builder_end_array (builder);
      json_builder_set_member_name (builder, "data_offsets");
      json_builder_begin_array (builder);
      json_builder_add_int_value (builder, offset);
      offset += g_bytes_get_size (e->data);
      json_builder_add_int_value (builder, offset);
      json_builder_end_array (builder);
      json_builder_end_object (builder);
    }
  json_builder_end_object (builder);

  g_autoptr (JsonGenerator) generator = json_generator_new ();
  g_autoptr (JsonNode) root = json_builder_get_root (builder);
  json_generator_set_root (generator, root);
  g_autofree char *json = json_generator_to_data (generator, NULL);
  GString *header = g_string_new (json);
  while (header->len % 8 != 0)
    g_string_append_c (header, ' ');
  *length = header->len;
  return g_string_free (header, FALSE);
}

static gboolean
write_contents (AtSafetensorsWriter *writer, GOutputStream *out, GError **error)
{
  gsize length;
  g_autofree char *header = build_header (writer, &length);
  guint8 prefix[8];
  for (int i = 0; i < 8; i++)
    prefix[i] = (guint8) ((guint64) length >> (8 * i));

  if (!g_output_stream_write_all (out, prefix, sizeof prefix, NULL, NULL, error)
      || !g_output_stream_write_all (out, header, length, NULL, NULL, error))
    return FALSE;
  for (guint i = 0; i < writer->entries->len; i++)
    {
      Entry *e = g_ptr_array_index (writer->entries, i);
      gsize size;
      const void *data = g_bytes_get_data (e->data, &size);
      if (!g_output_stream_write_all (out, data, size, NULL, NULL, error))
        return FALSE;
    }
  return TRUE;
}

gboolean
at_safetensors_writer_write (AtSafetensorsWriter *writer, const char *path, GError **error)
{
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autoptr (GFileOutputStream) out = g_file_replace (file, NULL, FALSE, G_FILE_CREATE_NONE,
                                                      NULL, error);
  if (out == NULL)
    return FALSE;

  if (!write_contents (writer, G_OUTPUT_STREAM (out), error))
    {
      /* Closing with a cancelled cancellable drops the temporary file and leaves whatever
       * was at path untouched. */
      g_autoptr (GCancellable) cancel = g_cancellable_new ();
      g_cancellable_cancel (cancel);
      g_output_stream_close (G_OUTPUT_STREAM (out), cancel, NULL);
      return FALSE;
    }
  return g_output_stream_close (G_OUTPUT_STREAM (out), NULL, error);
}
