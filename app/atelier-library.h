/* atelier-library.h: every generated asset (image, text, voice-over) kept in the user's
 * data folder and indexed in an SQLite database (WAL mode, so that a kill -9 in the middle
 * of a write loses at most that write and never the index). The library is a GListModel
 * of the assets not in the trash, newest first, which the gallery filters and shows. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef enum {
  ATELIER_ASSET_IMAGE,
  ATELIER_ASSET_TEXT,
  ATELIER_ASSET_AUDIO,
} AtelierAssetKind;

/* "image", "text", "audio": the names the index stores. */
const char *atelier_asset_kind_to_string (AtelierAssetKind kind);

#define ATELIER_TYPE_ASSET (atelier_asset_get_type ())
G_DECLARE_FINAL_TYPE (AtelierAsset, atelier_asset, ATELIER, ASSET, GObject)

gint64 atelier_asset_get_id (AtelierAsset *self);
AtelierAssetKind atelier_asset_get_kind (AtelierAsset *self);
/* The asset's file, absolute. */
const char *atelier_asset_get_path (AtelierAsset *self);
/* The prompt (images), the instruction or the document's start (text), the spoken text
 * (audio); "" when there is none. */
const char *atelier_asset_get_prompt (AtelierAsset *self);
/* A JSON object of the generation parameters ("{}" when there are none): for images the
 * same fields as the PNG's parameters chunk. */
const char *atelier_asset_get_parameters (AtelierAsset *self);
const char *atelier_asset_get_model (AtelierAsset *self);
gint64 atelier_asset_get_seed (AtelierAsset *self);
/* Creation time, microseconds since 1970 (UTC). */
gint64 atelier_asset_get_created (AtelierAsset *self);
/* The "favourite" property notifies when atelier_library_set_favourite changes it. */
gboolean atelier_asset_get_favourite (AtelierAsset *self);

/* What a generator knows about the asset it made; strings may be NULL. */
typedef struct
{
  const char *prompt;
  const char *parameters; /* a JSON object */
  const char *model;
  gint64 seed;
} AtelierAssetInfo;

#define ATELIER_TYPE_LIBRARY (atelier_library_get_type ())
G_DECLARE_FINAL_TYPE (AtelierLibrary, atelier_library, ATELIER, LIBRARY, GObject)

/* Opens (creating when missing) the library in folder: folder/library.sqlite and the
 * asset files under folder/images, folder/texts, folder/audio. */
AtelierLibrary *atelier_library_new (const char *folder, GError **error);
/* The default folder: ~/.local/share/atelier/library. */
char *atelier_library_default_folder (void);

/* A fresh path in the library's folder for a new asset of that kind, named from the
 * current time ("2026-11-22_15-30-12_0001.png"); the file does not exist yet. Write the
 * file there (atomically: a temporary name renamed into place), then add it. */
char *atelier_library_new_path (AtelierLibrary *self, AtelierAssetKind kind,
                                const char *extension);
/* Indexes the complete file at path (normally from atelier_library_new_path) and puts
 * the new asset at the front of the list. */
AtelierAsset *atelier_library_add (AtelierLibrary *self, AtelierAssetKind kind,
                                   const char *path, const AtelierAssetInfo *info,
                                   GError **error);
/* The same for bytes: written atomically to a new path, then indexed. */
AtelierAsset *atelier_library_add_bytes (AtelierLibrary *self, AtelierAssetKind kind,
                                         GBytes *contents, const char *extension,
                                         const AtelierAssetInfo *info, GError **error);

gboolean atelier_library_set_favourite (AtelierLibrary *self, AtelierAsset *asset,
                                        gboolean favourite, GError **error);
/* Moves the asset to the trash: it leaves the list but keeps its file until the trash
 * is emptied, so atelier_library_restore undoes it. */
gboolean atelier_library_trash (AtelierLibrary *self, AtelierAsset *asset, GError **error);
gboolean atelier_library_restore (AtelierLibrary *self, AtelierAsset *asset, GError **error);
/* Deletes the files and index rows of every trashed asset. */
gboolean atelier_library_empty_trash (AtelierLibrary *self, GError **error);

/* The asset with that id, in the list or in the trash; NULL when there is none. */
AtelierAsset *atelier_library_lookup (AtelierLibrary *self, gint64 id);

G_END_DECLS
