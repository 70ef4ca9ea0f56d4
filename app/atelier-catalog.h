/* atelier-catalog.h: the recommended models (data/catalog.json, in the app's GResource). */
#pragma once

#include <gio/gio.h>

#include "atelier-model-files.h"

G_BEGIN_DECLS

typedef struct
{
  char *name;        /* "Qwen2.5 0.5B Instruct" */
  char *family;      /* "Qwen 2", "SD 1.x" */
  AtelierModelKind kind;
  char *description;
  char *url;
  char *filename;    /* the name it gets in the models folder */
  /* About how many bytes it is, for showing and for the free-space check; the download
   * itself is checked against the server's Content-Length. */
  guint64 size;
  char *sha256;      /* lowercase hex, or NULL where none was verified */
  char *licence;
} AtelierCatalogEntry;

/* Parses a catalog; every entry must have a name, an https URL, a plain file name ending
 * in .gguf or .safetensors, a size, and a 64-digit sha256 or null. */
GPtrArray *atelier_catalog_parse (GBytes *json, GError **error);
/* The catalog shipped with the app. */
GPtrArray *atelier_catalog_load (GError **error);

G_END_DECLS
