/* atelier-catalog.c: reading data/catalog.json. */
#include <json-glib/json-glib.h>
#include <string.h>

#include "atelier-catalog.h"

#define CATALOG_RESOURCE "/org/atelier/Atelier/catalog.json"

static void
entry_free (gpointer data)
{
  AtelierCatalogEntry *entry = data;

  g_free (entry->name);
  g_free (entry->family);
  g_free (entry->description);
  g_free (entry->url);
  g_free (entry->filename);
  g_free (entry->sha256);
  g_free (entry->licence);
  g_free (entry);
}

static const char *
member_string (JsonObject *object, const char *name)
{
  JsonNode *node = json_object_get_member (object, name);

  return node != NULL && JSON_NODE_HOLDS_VALUE (node)
             && json_node_get_value_type (node) == G_TYPE_STRING
           ? json_node_get_string (node)
           : NULL;
}

static gboolean
is_sha256 (const char *hex)
{
  gsize i;

  for (i = 0; hex[i] != '\0'; i++)
    if (!g_ascii_isxdigit (hex[i]) || g_ascii_isupper (hex[i]))
      return FALSE;
  return i == 64;
}

static AtelierModelKind
kind_from_string (const char *kind)
{
  if (g_strcmp0 (kind, "text") == 0)
    return ATELIER_MODEL_KIND_TEXT;
  if (g_strcmp0 (kind, "image") == 0)
    return ATELIER_MODEL_KIND_IMAGE;
  if (g_strcmp0 (kind, "preview") == 0)
    return ATELIER_MODEL_KIND_PREVIEW;
  return ATELIER_MODEL_KIND_UNKNOWN;
}

static AtelierCatalogEntry *
parse_entry (JsonNode *node, guint index, GError **error)
{
  JsonObject *object = JSON_NODE_HOLDS_OBJECT (node) ? json_node_get_object (node) : NULL;
  g_autoptr (GUri) uri = NULL;
  AtelierCatalogEntry *entry;
  const char *name, *url, *filename, *sha256;
  JsonNode *sha256_node, *size_node;

  name = object != NULL ? member_string (object, "name") : NULL;
  url = object != NULL ? member_string (object, "url") : NULL;
  filename = object != NULL ? member_string (object, "filename") : NULL;
  sha256 = object != NULL ? member_string (object, "sha256") : NULL;
  sha256_node = object != NULL ? json_object_get_member (object, "sha256") : NULL;
  size_node = object != NULL ? json_object_get_member (object, "size") : NULL;
  if (url != NULL)
    uri = g_uri_parse (url, G_URI_FLAGS_NONE, NULL);
  if (name == NULL || uri == NULL || g_strcmp0 (g_uri_get_scheme (uri), "https") != 0
      || filename == NULL || strchr (filename, '/') != NULL || filename[0] == '.'
      || !(g_str_has_suffix (filename, ".gguf") || g_str_has_suffix (filename, ".safetensors"))
      || size_node == NULL || json_node_get_value_type (size_node) != G_TYPE_INT64
      || json_node_get_int (size_node) <= 0 || sha256_node == NULL
      || !(JSON_NODE_HOLDS_NULL (sha256_node) || (sha256 != NULL && is_sha256 (sha256))))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "catalog.json: model %u needs a name, an https url, a .gguf or "
                   ".safetensors filename, a size and a sha256 (64 hex digits or null)",
                   index);
      return NULL;
    }
  entry = g_new0 (AtelierCatalogEntry, 1);
  entry->name = g_strdup (name);
  entry->family = g_strdup (member_string (object, "family"));
  entry->kind = kind_from_string (member_string (object, "kind"));
  entry->description = g_strdup (member_string (object, "description"));
  entry->url = g_strdup (url);
  entry->filename = g_strdup (filename);
  entry->size = json_node_get_int (size_node);
  entry->sha256 = g_strdup (sha256);
  entry->licence = g_strdup (member_string (object, "licence"));
  return entry;
}

GPtrArray *
atelier_catalog_parse (GBytes *json, GError **error)
{
  g_autoptr (JsonParser) parser = json_parser_new ();
  g_autoptr (GPtrArray) entries = g_ptr_array_new_with_free_func (entry_free);
  JsonNode *root, *models = NULL;
  JsonArray *array;
  gsize length;
  const char *data = g_bytes_get_data (json, &length);

  if (!json_parser_load_from_data (parser, data, length, error))
    return NULL;
  root = json_parser_get_root (parser);
  if (JSON_NODE_HOLDS_OBJECT (root))
    models = json_object_get_member (json_node_get_object (root), "models");
  if (models == NULL || !JSON_NODE_HOLDS_ARRAY (models))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
                   "catalog.json: no \"models\" array");
      return NULL;
    }
  array = json_node_get_array (models);
  for (guint i = 0; i < json_array_get_length (array); i++)
    {
      AtelierCatalogEntry *entry = parse_entry (json_array_get_element (array, i), i, error);

      if (entry == NULL)
        return NULL;
      g_ptr_array_add (entries, entry);
    }
  return g_steal_pointer (&entries);
}

GPtrArray *
atelier_catalog_load (GError **error)
{
  g_autoptr (GBytes) json = g_resources_lookup_data (CATALOG_RESOURCE,
                                                     G_RESOURCE_LOOKUP_FLAGS_NONE, error);

  return json != NULL ? atelier_catalog_parse (json, error) : NULL;
}
