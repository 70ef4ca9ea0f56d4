#include "formats/at-safetensors.h"

#include <json-glib/json-glib.h>
#include <stdlib.h>
#include <string.h>

#include "at-error.h"

/* A header is a few hundred bytes per tensor; 100 MB is far past any real checkpoint and
 * keeps a corrupt length from making us parse gigabytes. */
#define MAX_HEADER_SIZE (100u * 1000 * 1000)
/* Real headers nest three deep ({ tensor: { data_offsets: [ ] } }); json-glib recurses
 * without a limit, so deeper input is refused before it reaches the parser. */
#define MAX_NESTING 8

struct _AtSafetensors {
  char *name;
  GBytes *bytes;
  AtSafetensorsTensor *tensors; /* sorted by name */
  guint n_tensors;
  GStringChunk *strings;
  GHashTable *by_name;  /* name -> AtSafetensorsTensor* */
  GHashTable *metadata; /* key -> value, both owned */
  char **metadata_keys;
  GHashTable *replaced; /* name -> GBytes the tensor reads instead of the file's */
};

typedef struct {
  const char *name;
  guint size; /* bytes per element */
  gboolean supported;
  AtType type;
} Dtype;

/* The dtypes the safetensors format defines with whole-byte elements. */
static const Dtype dtypes[] = {
  { "F32", 4, TRUE, AT_TYPE_F32 },  { "F16", 2, TRUE, AT_TYPE_F16 },
  { "BF16", 2, TRUE, AT_TYPE_BF16 }, { "F64", 8, FALSE, 0 },
  { "I64", 8, FALSE, 0 },           { "U64", 8, FALSE, 0 },
  { "I32", 4, FALSE, 0 },           { "U32", 4, FALSE, 0 },
  { "I16", 2, FALSE, 0 },           { "U16", 2, FALSE, 0 },
  { "I8", 1, FALSE, 0 },            { "U8", 1, FALSE, 0 },
  { "BOOL", 1, FALSE, 0 },          { "F8_E4M3", 1, FALSE, 0 },
  { "F8_E5M2", 1, FALSE, 0 },       { "F8_E8M0", 1, FALSE, 0 },
};

static gboolean G_GNUC_PRINTF (3, 4)
fail (GError **error, const char *file, const char *format, ...)
{
  va_list args;
  va_start (args, format);
  g_autofree char *message = g_strdup_vprintf (format, args);
  va_end (args);
  g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: %s", file, message);
  return FALSE;
}

void
at_safetensors_free (AtSafetensors *st)
{
  if (st == NULL)
    return;
  for (guint i = 0; i < st->n_tensors; i++)
    g_free ((gint64 *) st->tensors[i].ne);
  g_free (st->tensors);
  g_clear_pointer (&st->strings, g_string_chunk_free);
  g_clear_pointer (&st->by_name, g_hash_table_unref);
  g_clear_pointer (&st->metadata, g_hash_table_unref);
  g_clear_pointer (&st->replaced, g_hash_table_unref);
  g_free (st->metadata_keys);
  g_clear_pointer (&st->bytes, g_bytes_unref);
  g_free (st->name);
  g_free (st);
}

static gboolean
check_nesting (const char *json, gsize length, const char *file, GError **error)
{
  guint depth = 0;
  gboolean in_string = FALSE;

  for (gsize i = 0; i < length; i++)
    {
      char c = json[i];
      if (in_string)
        {
          if (c == '\\')
            i++;
          else if (c == '"')
            in_string = FALSE;
        }
      else if (c == '"')
        in_string = TRUE;
      else if (c == '{' || c == '[')
        {
          if (++depth > MAX_NESTING)
            return fail (error, file, "header nests deeper than %d levels", MAX_NESTING);
        }
      else if ((c == '}' || c == ']') && depth > 0)
        depth--;
    }
  return TRUE;
}

typedef struct {
  GHashTable *counts; /* JsonObject* -> members seen so far */
  char *duplicate;    /* the first member name seen twice in one object */
} DuplicateCheck;

/* json-glib keeps the last of two members with the same name without a word; a checkpoint
 * with two definitions of one tensor is corrupt, so count what the parser reports. */
static void
on_object_member (JsonParser *parser, JsonObject *object, const char *member, gpointer data)
{
  DuplicateCheck *check = data;
  guint seen = GPOINTER_TO_UINT (g_hash_table_lookup (check->counts, object)) + 1;

  g_hash_table_insert (check->counts, object, GUINT_TO_POINTER (seen));
  if (seen != json_object_get_size (object) && check->duplicate == NULL)
    check->duplicate = g_strdup (member);
}

static gboolean
node_get_count (JsonNode *node, guint64 *value)
{
  if (!JSON_NODE_HOLDS_VALUE (node) || json_node_get_value_type (node) != G_TYPE_INT64
      || json_node_get_int (node) < 0)
    return FALSE;
  *value = (guint64) json_node_get_int (node);
  return TRUE;
}

static char *
describe_shape (JsonArray *shape)
{
  GString *s = g_string_new ("[");
  for (guint i = 0; i < json_array_get_length (shape); i++)
    g_string_append_printf (s, "%s%" G_GINT64_FORMAT, i ? ", " : "",
                            json_array_get_int_element (shape, i));
  g_string_append_c (s, ']');
  return g_string_free (s, FALSE);
}

static int
compare_strings (gconstpointer a, gconstpointer b)
{
  return strcmp (*(char *const *) a, *(char *const *) b);
}

static gboolean
parse_metadata (AtSafetensors *st, JsonNode *node, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return fail (error, st->name, "'__metadata__' is not an object");

  JsonObject *object = json_node_get_object (node);
  g_autoptr (GList) keys = json_object_get_members (object);
  for (GList *l = keys; l != NULL; l = l->next)
    {
      JsonNode *value = json_object_get_member (object, l->data);
      if (!JSON_NODE_HOLDS_VALUE (value) || json_node_get_value_type (value) != G_TYPE_STRING)
        return fail (error, st->name, "metadata '%s' is not a string", (char *) l->data);
      g_hash_table_insert (st->metadata, g_strdup (l->data),
                           g_strdup (json_node_get_string (value)));
    }
  st->metadata_keys = (char **) g_hash_table_get_keys_as_array (st->metadata, NULL);
  qsort (st->metadata_keys, g_hash_table_size (st->metadata), sizeof (char *), compare_strings);
  return TRUE;
}

/* Fills t from its header entry; data_size is the length of the data section. */
static gboolean
parse_tensor (AtSafetensors *st, const char *name, JsonNode *node, gsize data_start,
              gsize data_size, AtSafetensorsTensor *t, GError **error)
{
  if (!JSON_NODE_HOLDS_OBJECT (node))
    return fail (error, st->name, "tensor '%s' is not an object", name);
  JsonObject *object = json_node_get_object (node);
  JsonNode *dtype = json_object_get_member (object, "dtype");
  JsonNode *shape = json_object_get_member (object, "shape");
  JsonNode *offsets = json_object_get_member (object, "data_offsets");

  if (dtype == NULL || !JSON_NODE_HOLDS_VALUE (dtype)
      || json_node_get_value_type (dtype) != G_TYPE_STRING)
    return fail (error, st->name, "tensor '%s' has no dtype string", name);
  if (shape == NULL || !JSON_NODE_HOLDS_ARRAY (shape))
    return fail (error, st->name, "tensor '%s' has no shape array", name);
  if (offsets == NULL || !JSON_NODE_HOLDS_ARRAY (offsets))
    return fail (error, st->name, "tensor '%s' has no data_offsets array", name);

  JsonArray *dims = json_node_get_array (shape);
  guint n_dims = json_array_get_length (dims);
  guint64 n_elements = 1;
  gboolean too_large = FALSE;
  for (guint i = 0; i < n_dims; i++)
    {
      guint64 d;
      if (!node_get_count (json_array_get_element (dims, i), &d))
        return fail (error, st->name, "tensor '%s' has a shape that is not a list of sizes", name);
      too_large |= !g_uint64_checked_mul (&n_elements, n_elements, d);
    }

  JsonArray *range = json_node_get_array (offsets);
  guint64 begin, end;
  if (json_array_get_length (range) != 2
      || !node_get_count (json_array_get_element (range, 0), &begin)
      || !node_get_count (json_array_get_element (range, 1), &end))
    return fail (error, st->name, "tensor '%s' has data_offsets that are not two offsets", name);
  if (begin > end)
    return fail (error, st->name, "tensor '%s' ends before it begins", name);
  if (end > data_size)
    return fail (error, st->name, "tensor '%s' ends past the end of the file", name);

  const char *dtype_name = json_node_get_string (dtype);
  const Dtype *known = NULL;
  for (guint i = 0; i < G_N_ELEMENTS (dtypes); i++)
    if (strcmp (dtypes[i].name, dtype_name) == 0)
      known = &dtypes[i];

  /* Sizes of unknown dtypes (sub-byte floats, future ones) cannot be checked; such tensors
   * are kept as unsupported with only their range validated. */
  guint64 needed = 0;
  if (too_large || n_elements > G_MAXINT64
      || (known != NULL && !g_uint64_checked_mul (&needed, n_elements, known->size)))
    {
      g_autofree char *s = describe_shape (dims);
      return fail (error, st->name, "tensor '%s' has a shape %s too large for its dtype %s",
                   name, s, dtype_name);
    }
  if (known != NULL && needed != end - begin)
    {
      g_autofree char *s = describe_shape (dims);
      return fail (error, st->name,
                   "tensor '%s' has %" G_GUINT64_FORMAT " bytes of data, but shape %s of "
                   "%s needs %" G_GUINT64_FORMAT,
                   name, end - begin, s, dtype_name, needed);
    }

  gint64 *ne = g_new (gint64, MAX (n_dims, 1));
  for (guint i = 0; i < n_dims; i++)
    ne[i] = json_array_get_int_element (dims, n_dims - 1 - i);

  *t = (AtSafetensorsTensor) {
    .name = g_string_chunk_insert (st->strings, name),
    .dtype = g_string_chunk_insert_const (st->strings, dtype_name),
    .supported = known != NULL && known->supported,
    .type = known != NULL ? known->type : AT_TYPE_F32,
    .n_dims = n_dims,
    .ne = ne,
    .n_elements = (gint64) n_elements,
    .offset = data_start + begin,
    .size = end - begin,
    .data = (const guint8 *) g_bytes_get_data (st->bytes, NULL) + data_start + begin,
  };
  return TRUE;
}

static int
compare_names (gconstpointer a, gconstpointer b)
{
  return strcmp (((const AtSafetensorsTensor *) a)->name, ((const AtSafetensorsTensor *) b)->name);
}

static int
compare_offsets (gconstpointer a, gconstpointer b)
{
  const AtSafetensorsTensor *ta = *(const AtSafetensorsTensor **) a;
  const AtSafetensorsTensor *tb = *(const AtSafetensorsTensor **) b;
  return ta->offset < tb->offset ? -1 : ta->offset > tb->offset;
}

static gboolean
check_overlaps (AtSafetensors *st, GError **error)
{
  g_autofree const AtSafetensorsTensor **order = g_new (const AtSafetensorsTensor *,
                                                        MAX (st->n_tensors, 1));
  for (guint i = 0; i < st->n_tensors; i++)
    order[i] = &st->tensors[i];
  qsort (order, st->n_tensors, sizeof *order, compare_offsets);

  const AtSafetensorsTensor *furthest = NULL; /* the tensor ending last so far */
  for (guint i = 0; i < st->n_tensors; i++)
    {
      const AtSafetensorsTensor *t = order[i];
      if (t->size == 0)
        continue;
      if (furthest != NULL && t->offset < furthest->offset + furthest->size)
        return fail (error, st->name, "tensors '%s' and '%s' overlap", furthest->name, t->name);
      if (furthest == NULL || t->offset + t->size > furthest->offset + furthest->size)
        furthest = t;
    }
  return TRUE;
}

static gboolean
parse_header (AtSafetensors *st, const char *json, gsize length, gsize data_start,
              gsize data_size, GError **error)
{
  if (!check_nesting (json, length, st->name, error))
    return FALSE;

  g_autoptr (JsonParser) parser = json_parser_new ();
  DuplicateCheck check = { g_hash_table_new (NULL, NULL), NULL };
  g_signal_connect (parser, "object-member", G_CALLBACK (on_object_member), &check);
  g_autoptr (GError) json_error = NULL;
  gboolean parsed = json_parser_load_from_data (parser, json, length, &json_error);
  g_hash_table_unref (check.counts);
  g_autofree char *duplicate = check.duplicate;
  if (!parsed)
    return fail (error, st->name, "header is not valid JSON: %s", json_error->message);
  if (duplicate != NULL)
    return fail (error, st->name, "header names '%s' twice", duplicate);

  JsonNode *root = json_parser_get_root (parser);
  if (root == NULL || !JSON_NODE_HOLDS_OBJECT (root))
    return fail (error, st->name, "header is not a JSON object");
  JsonObject *object = json_node_get_object (root);

  guint n_members = json_object_get_size (object);
  st->tensors = g_new0 (AtSafetensorsTensor, MAX (n_members, 1));
  g_autoptr (GList) names = json_object_get_members (object);
  for (GList *l = names; l != NULL; l = l->next)
    {
      const char *name = l->data;
      JsonNode *node = json_object_get_member (object, name);
      if (strcmp (name, "__metadata__") == 0)
        {
          if (!parse_metadata (st, node, error))
            return FALSE;
        }
      else if (!parse_tensor (st, name, node, data_start, data_size,
                              &st->tensors[st->n_tensors], error))
        return FALSE;
      else
        st->n_tensors++;
    }
  if (st->metadata_keys == NULL)
    st->metadata_keys = g_new0 (char *, 1);

  qsort (st->tensors, st->n_tensors, sizeof *st->tensors, compare_names);
  for (guint i = 0; i < st->n_tensors; i++)
    g_hash_table_insert (st->by_name, (gpointer) st->tensors[i].name, &st->tensors[i]);
  return check_overlaps (st, error);
}

AtSafetensors *
at_safetensors_new_from_bytes (GBytes *bytes, const char *display_name, GError **error)
{
  g_autoptr (AtSafetensors) st = g_new0 (AtSafetensors, 1);
  st->name = g_strdup (display_name);
  st->bytes = g_bytes_ref (bytes);
  st->strings = g_string_chunk_new (4096);
  st->by_name = g_hash_table_new (g_str_hash, g_str_equal);
  st->metadata = g_hash_table_new_full (g_str_hash, g_str_equal, g_free, g_free);
  st->replaced = g_hash_table_new_full (g_str_hash, g_str_equal, NULL,
                                        (GDestroyNotify) g_bytes_unref);

  gsize size;
  const guint8 *data = g_bytes_get_data (bytes, &size);
  if (size < 8)
    {
      fail (error, st->name, "file is too short for a safetensors header (%" G_GSIZE_FORMAT
            " bytes)", size);
      return NULL;
    }
  guint64 header_size = 0;
  for (int i = 7; i >= 0; i--)
    header_size = header_size << 8 | data[i];
  if (header_size > MAX_HEADER_SIZE)
    {
      fail (error, st->name, "header length %" G_GUINT64_FORMAT " is over the limit of %u bytes",
            header_size, MAX_HEADER_SIZE);
      return NULL;
    }
  if (header_size > size - 8)
    {
      fail (error, st->name, "header length %" G_GUINT64_FORMAT " is past the end of the file "
            "(%" G_GSIZE_FORMAT " bytes)", header_size, size);
      return NULL;
    }

  gsize data_start = 8 + header_size;
  if (!parse_header (st, (const char *) data + 8, header_size, data_start, size - data_start,
                     error))
    return NULL;
  return g_steal_pointer (&st);
}

AtSafetensors *
at_safetensors_open (const char *path, GError **error)
{
  g_autofree char *display_name = g_filename_display_basename (path);
  g_autoptr (GError) local_error = NULL;
  g_autoptr (GMappedFile) file = g_mapped_file_new (path, FALSE, &local_error);
  if (file == NULL)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_FILE, "%s: %s", display_name,
                   local_error->message);
      return NULL;
    }
  g_autoptr (GBytes) bytes = g_mapped_file_get_bytes (file);
  return at_safetensors_new_from_bytes (bytes, display_name, error);
}

const char *
at_safetensors_get_name (AtSafetensors *st)
{
  return st->name;
}

const AtSafetensorsTensor *
at_safetensors_lookup (AtSafetensors *st, const char *name)
{
  return g_hash_table_lookup (st->by_name, name);
}

guint
at_safetensors_get_n_tensors (AtSafetensors *st)
{
  return st->n_tensors;
}

const AtSafetensorsTensor *
at_safetensors_get_tensor (AtSafetensors *st, guint index)
{
  g_return_val_if_fail (index < st->n_tensors, NULL);
  return &st->tensors[index];
}

const char *
at_safetensors_get_metadata (AtSafetensors *st, const char *key)
{
  return g_hash_table_lookup (st->metadata, key);
}

const char *const *
at_safetensors_get_metadata_keys (AtSafetensors *st)
{
  return (const char *const *) st->metadata_keys;
}

gboolean
at_safetensors_tensor_check_supported (AtSafetensors *st, const AtSafetensorsTensor *t,
                                       GError **error)
{
  if (t->supported)
    return TRUE;
  return fail (error, st->name, "tensor '%s' has dtype %s, not supported", t->name, t->dtype);
}

gboolean
at_safetensors_set_tensor_data (AtSafetensors *st, const char *name, GBytes *data,
                                GError **error)
{
  AtSafetensorsTensor *t = g_hash_table_lookup (st->by_name, name);

  if (t == NULL || g_bytes_get_size (data) != t->size)
    {
      g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT,
                   t == NULL ? "%s: no tensor '%s' to replace"
                             : "%s: the replacement for tensor '%s' is not its size",
                   st->name, name);
      return FALSE;
    }
  t->data = g_bytes_get_data (data, NULL);
  g_hash_table_replace (st->replaced, (gpointer) t->name, g_bytes_ref (data));
  return TRUE;
}

void
at_safetensors_reset_tensor_data (AtSafetensors *st)
{
  const guint8 *file = g_bytes_get_data (st->bytes, NULL);
  GHashTableIter iter;
  gpointer name;

  g_hash_table_iter_init (&iter, st->replaced);
  while (g_hash_table_iter_next (&iter, &name, NULL))
    {
      AtSafetensorsTensor *t = g_hash_table_lookup (st->by_name, name);

      t->data = file + t->offset;
    }
  g_hash_table_remove_all (st->replaced);
}
