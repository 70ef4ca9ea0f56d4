/* atelier-library.c: the asset library (see atelier-library.h). */
#include "config.h"

#include <errno.h>
#include <glib/gi18n.h>
#include <glib/gstdio.h>
#include <sqlite3.h>

#include "atelier-library.h"

/* --- AtelierAsset -------------------------------------------------------------------- */

struct _AtelierAsset
{
  GObject parent_instance;

  gint64 id;
  AtelierAssetKind kind;
  char *path, *prompt, *parameters, *model;
  gint64 seed, created;
  gboolean favourite, trashed;
};

G_DEFINE_FINAL_TYPE (AtelierAsset, atelier_asset, G_TYPE_OBJECT)

enum { ASSET_PROP_0, ASSET_PROP_FAVOURITE, ASSET_N_PROPS };
static GParamSpec *asset_props[ASSET_N_PROPS];

static void
atelier_asset_finalize (GObject *object)
{
  AtelierAsset *self = ATELIER_ASSET (object);

  g_free (self->path);
  g_free (self->prompt);
  g_free (self->parameters);
  g_free (self->model);
  G_OBJECT_CLASS (atelier_asset_parent_class)->finalize (object);
}

static void
atelier_asset_get_property (GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
  AtelierAsset *self = ATELIER_ASSET (object);

  switch (prop_id)
    {
    case ASSET_PROP_FAVOURITE:
      g_value_set_boolean (value, self->favourite);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
atelier_asset_class_init (AtelierAssetClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);

  object_class->finalize = atelier_asset_finalize;
  object_class->get_property = atelier_asset_get_property;
  asset_props[ASSET_PROP_FAVOURITE] =
    g_param_spec_boolean ("favourite", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, ASSET_N_PROPS, asset_props);
}

static void
atelier_asset_init (AtelierAsset *self)
{
}

gint64
atelier_asset_get_id (AtelierAsset *self)
{
  g_return_val_if_fail (ATELIER_IS_ASSET (self), 0);
  return self->id;
}

AtelierAssetKind
atelier_asset_get_kind (AtelierAsset *self)
{
  g_return_val_if_fail (ATELIER_IS_ASSET (self), ATELIER_ASSET_IMAGE);
  return self->kind;
}

const char *
atelier_asset_get_path (AtelierAsset *self)
{
  g_return_val_if_fail (ATELIER_IS_ASSET (self), NULL);
  return self->path;
}

const char *
atelier_asset_get_prompt (AtelierAsset *self)
{
  g_return_val_if_fail (ATELIER_IS_ASSET (self), NULL);
  return self->prompt;
}

const char *
atelier_asset_get_parameters (AtelierAsset *self)
{
  g_return_val_if_fail (ATELIER_IS_ASSET (self), NULL);
  return self->parameters;
}

const char *
atelier_asset_get_model (AtelierAsset *self)
{
  g_return_val_if_fail (ATELIER_IS_ASSET (self), NULL);
  return self->model;
}

gint64
atelier_asset_get_seed (AtelierAsset *self)
{
  g_return_val_if_fail (ATELIER_IS_ASSET (self), 0);
  return self->seed;
}

gint64
atelier_asset_get_created (AtelierAsset *self)
{
  g_return_val_if_fail (ATELIER_IS_ASSET (self), 0);
  return self->created;
}

gboolean
atelier_asset_get_favourite (AtelierAsset *self)
{
  g_return_val_if_fail (ATELIER_IS_ASSET (self), FALSE);
  return self->favourite;
}

static const char *const kind_names[] = { "image", "text", "audio" };
/* The folder of each kind inside the library. */
static const char *const kind_folders[] = { "images", "texts", "audio" };

const char *
atelier_asset_kind_to_string (AtelierAssetKind kind)
{
  g_return_val_if_fail (kind <= ATELIER_ASSET_AUDIO, NULL);
  return kind_names[kind];
}

static int
kind_from_string (const char *name)
{
  for (guint i = 0; i < G_N_ELEMENTS (kind_names); i++)
    if (g_strcmp0 (name, kind_names[i]) == 0)
      return (int)i;
  return -1;
}

/* --- AtelierLibrary ------------------------------------------------------------------ */

struct _AtelierLibrary
{
  GObject parent_instance;

  char *folder;
  sqlite3 *db;
  GPtrArray *assets;  /* AtelierAsset not trashed, newest first: the list */
  GHashTable *by_id;  /* id -> AtelierAsset, trashed ones too */
  guint name_counter; /* tells apart files made in the same second */
};

static void atelier_library_list_model_init (GListModelInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE (AtelierLibrary, atelier_library, G_TYPE_OBJECT,
                               G_IMPLEMENT_INTERFACE (G_TYPE_LIST_MODEL,
                                                      atelier_library_list_model_init))

static GType
atelier_library_get_item_type (GListModel *list)
{
  return ATELIER_TYPE_ASSET;
}

static guint
atelier_library_get_n_items (GListModel *list)
{
  return ATELIER_LIBRARY (list)->assets->len;
}

static gpointer
atelier_library_get_item (GListModel *list, guint position)
{
  AtelierLibrary *self = ATELIER_LIBRARY (list);

  if (position >= self->assets->len)
    return NULL;
  return g_object_ref (g_ptr_array_index (self->assets, position));
}

static void
atelier_library_list_model_init (GListModelInterface *iface)
{
  iface->get_item_type = atelier_library_get_item_type;
  iface->get_n_items = atelier_library_get_n_items;
  iface->get_item = atelier_library_get_item;
}

static void
atelier_library_finalize (GObject *object)
{
  AtelierLibrary *self = ATELIER_LIBRARY (object);

  g_clear_pointer (&self->assets, g_ptr_array_unref);
  g_clear_pointer (&self->by_id, g_hash_table_unref);
  sqlite3_close (self->db);
  g_free (self->folder);
  G_OBJECT_CLASS (atelier_library_parent_class)->finalize (object);
}

static void
atelier_library_class_init (AtelierLibraryClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = atelier_library_finalize;
}

static void
atelier_library_init (AtelierLibrary *self)
{
  self->assets = g_ptr_array_new_with_free_func (g_object_unref);
  self->by_id = g_hash_table_new_full (g_int64_hash, g_int64_equal, NULL, g_object_unref);
}

static gboolean
db_failed (AtelierLibrary *self, const char *what, GError **error)
{
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED, _("The library index in %s could not %s: %s"),
               self->folder, what, sqlite3_errmsg (self->db));
  return FALSE;
}

static gboolean
db_exec (AtelierLibrary *self, const char *sql, const char *what, GError **error)
{
  return sqlite3_exec (self->db, sql, NULL, NULL, NULL) == SQLITE_OK
         || db_failed (self, what, error);
}

static const char *
column_text (sqlite3_stmt *stmt, int column)
{
  const char *text = (const char *)sqlite3_column_text (stmt, column);

  return text != NULL ? text : "";
}

static gboolean
load_assets (AtelierLibrary *self, GError **error)
{
  sqlite3_stmt *stmt = NULL;
  int rc;

  if (sqlite3_prepare_v2 (self->db,
                          "SELECT id, kind, file, prompt, parameters, model, seed, created, "
                          "favourite, trashed FROM assets ORDER BY created DESC, id DESC",
                          -1, &stmt, NULL)
      != SQLITE_OK)
    return db_failed (self, _("be read"), error);
  while ((rc = sqlite3_step (stmt)) == SQLITE_ROW)
    {
      int kind = kind_from_string (column_text (stmt, 1));
      AtelierAsset *asset;

      /* A row written by a newer Atelier with a kind this one does not know. */
      if (kind < 0)
        continue;
      asset = g_object_new (ATELIER_TYPE_ASSET, NULL);
      asset->id = sqlite3_column_int64 (stmt, 0);
      asset->kind = kind;
      asset->path = g_build_filename (self->folder, column_text (stmt, 2), NULL);
      asset->prompt = g_strdup (column_text (stmt, 3));
      asset->parameters = g_strdup (column_text (stmt, 4));
      asset->model = g_strdup (column_text (stmt, 5));
      asset->seed = sqlite3_column_int64 (stmt, 6);
      asset->created = sqlite3_column_int64 (stmt, 7);
      asset->favourite = sqlite3_column_int (stmt, 8) != 0;
      asset->trashed = sqlite3_column_int (stmt, 9) != 0;
      g_hash_table_insert (self->by_id, &asset->id, asset);
      if (!asset->trashed)
        g_ptr_array_add (self->assets, g_object_ref (asset));
    }
  sqlite3_finalize (stmt);
  return rc == SQLITE_DONE || db_failed (self, _("be read"), error);
}

char *
atelier_library_default_folder (void)
{
  return g_build_filename (g_get_user_data_dir (), "atelier", "library", NULL);
}

AtelierLibrary *
atelier_library_new (const char *folder, GError **error)
{
  g_autoptr (AtelierLibrary) self = g_object_new (ATELIER_TYPE_LIBRARY, NULL);
  g_autofree char *db_path = g_build_filename (folder, "library.sqlite", NULL);

  self->folder = g_strdup (folder);
  for (guint i = 0; i < G_N_ELEMENTS (kind_folders); i++)
    {
      g_autofree char *dir = g_build_filename (folder, kind_folders[i], NULL);

      if (g_mkdir_with_parents (dir, 0700) != 0)
        {
          int saved = errno;

          g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved),
                       _("The library folder %s could not be created: %s"), dir,
                       g_strerror (saved));
          return NULL;
        }
    }
  if (sqlite3_open_v2 (db_path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL)
      != SQLITE_OK)
    {
      db_failed (self, _("be opened"), error);
      return NULL;
    }
  /* WAL: a write is one append to the log, and a process killed half-way leaves the last
   * committed state. NORMAL sync is durable against crashes of the process (not of the
   * machine's power, where the last transactions may roll back, still consistent). */
  sqlite3_busy_timeout (self->db, 2000);
  if (!db_exec (self, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;", _("be opened"),
                error)
      || !db_exec (self,
                   "CREATE TABLE IF NOT EXISTS assets ("
                   " id INTEGER PRIMARY KEY,"
                   " kind TEXT NOT NULL,"
                   " file TEXT NOT NULL,"
                   " prompt TEXT NOT NULL DEFAULT '',"
                   " parameters TEXT NOT NULL DEFAULT '{}',"
                   " model TEXT NOT NULL DEFAULT '',"
                   " seed INTEGER NOT NULL DEFAULT 0,"
                   " created INTEGER NOT NULL,"
                   " favourite INTEGER NOT NULL DEFAULT 0,"
                   " trashed INTEGER NOT NULL DEFAULT 0)",
                   _("be created"), error)
      || !load_assets (self, error))
    return NULL;
  return g_steal_pointer (&self);
}

char *
atelier_library_new_path (AtelierLibrary *self, AtelierAssetKind kind, const char *extension)
{
  g_autoptr (GDateTime) now = g_date_time_new_now_local ();
  g_autofree char *stamp = g_date_time_format (now, "%Y-%m-%d_%H-%M-%S");

  g_return_val_if_fail (ATELIER_IS_LIBRARY (self), NULL);
  g_return_val_if_fail (kind <= ATELIER_ASSET_AUDIO, NULL);
  for (;;)
    {
      g_autofree char *name = g_strdup_printf ("%s_%04u.%s", stamp, ++self->name_counter % 10000,
                                               extension);
      char *path = g_build_filename (self->folder, kind_folders[kind], name, NULL);

      if (!g_file_test (path, G_FILE_TEST_EXISTS))
        return path;
      g_free (path);
    }
}

/* The path as the index stores it: relative to the library folder when inside it, so
 * that a library moved as a whole still finds its files. */
static char *
stored_path (AtelierLibrary *self, const char *path)
{
  g_autofree char *prefix = g_strconcat (self->folder, G_DIR_SEPARATOR_S, NULL);

  if (g_str_has_prefix (path, prefix))
    return g_strdup (path + strlen (prefix));
  return g_strdup (path);
}

AtelierAsset *
atelier_library_add (AtelierLibrary *self, AtelierAssetKind kind, const char *path,
                     const AtelierAssetInfo *info, GError **error)
{
  static const AtelierAssetInfo no_info = { 0 };
  g_autoptr (AtelierAsset) asset = NULL;
  g_autofree char *file = NULL;
  sqlite3_stmt *stmt = NULL;
  gboolean ok;

  g_return_val_if_fail (ATELIER_IS_LIBRARY (self), NULL);
  g_return_val_if_fail (kind <= ATELIER_ASSET_AUDIO && path != NULL, NULL);
  if (info == NULL)
    info = &no_info;
  if (!g_file_test (path, G_FILE_TEST_IS_REGULAR))
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND,
                   _("%s cannot be added to the library: there is no such file"), path);
      return NULL;
    }

  asset = g_object_new (ATELIER_TYPE_ASSET, NULL);
  asset->kind = kind;
  asset->path = g_canonicalize_filename (path, NULL);
  asset->prompt = g_strdup (info->prompt != NULL ? info->prompt : "");
  asset->parameters = g_strdup (info->parameters != NULL ? info->parameters : "{}");
  asset->model = g_strdup (info->model != NULL ? info->model : "");
  asset->seed = info->seed;
  asset->created = g_get_real_time ();
  file = stored_path (self, asset->path);

  if (sqlite3_prepare_v2 (self->db,
                          "INSERT INTO assets (kind, file, prompt, parameters, model, seed, "
                          "created) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          -1, &stmt, NULL)
      != SQLITE_OK)
    {
      db_failed (self, _("be written"), error);
      return NULL;
    }
  sqlite3_bind_text (stmt, 1, kind_names[kind], -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 2, file, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 3, asset->prompt, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 4, asset->parameters, -1, SQLITE_STATIC);
  sqlite3_bind_text (stmt, 5, asset->model, -1, SQLITE_STATIC);
  sqlite3_bind_int64 (stmt, 6, asset->seed);
  sqlite3_bind_int64 (stmt, 7, asset->created);
  ok = sqlite3_step (stmt) == SQLITE_DONE;
  sqlite3_finalize (stmt);
  if (!ok)
    {
      db_failed (self, _("be written"), error);
      return NULL;
    }
  asset->id = sqlite3_last_insert_rowid (self->db);

  g_hash_table_insert (self->by_id, &asset->id, g_object_ref (asset));
  g_ptr_array_insert (self->assets, 0, g_object_ref (asset));
  g_list_model_items_changed (G_LIST_MODEL (self), 0, 0, 1);
  return g_steal_pointer (&asset);
}

AtelierAsset *
atelier_library_add_bytes (AtelierLibrary *self, AtelierAssetKind kind, GBytes *contents,
                           const char *extension, const AtelierAssetInfo *info, GError **error)
{
  g_autofree char *path = NULL;
  gsize size;
  const char *data;

  g_return_val_if_fail (ATELIER_IS_LIBRARY (self), NULL);
  path = atelier_library_new_path (self, kind, extension);
  data = g_bytes_get_data (contents, &size);
  /* g_file_set_contents writes a temporary file and renames it over path. */
  if (!g_file_set_contents_full (path, data, size, G_FILE_SET_CONTENTS_CONSISTENT, 0600, error))
    return NULL;
  return atelier_library_add (self, kind, path, info, error);
}

static gboolean
update_flag (AtelierLibrary *self, AtelierAsset *asset, const char *column, gboolean value,
             GError **error)
{
  g_autofree char *sql = g_strdup_printf ("UPDATE assets SET %s = ? WHERE id = ?", column);
  sqlite3_stmt *stmt = NULL;
  gboolean ok;

  if (sqlite3_prepare_v2 (self->db, sql, -1, &stmt, NULL) != SQLITE_OK)
    return db_failed (self, _("be written"), error);
  sqlite3_bind_int (stmt, 1, value ? 1 : 0);
  sqlite3_bind_int64 (stmt, 2, asset->id);
  ok = sqlite3_step (stmt) == SQLITE_DONE;
  sqlite3_finalize (stmt);
  return ok || db_failed (self, _("be written"), error);
}

gboolean
atelier_library_set_favourite (AtelierLibrary *self, AtelierAsset *asset, gboolean favourite,
                               GError **error)
{
  g_return_val_if_fail (ATELIER_IS_LIBRARY (self), FALSE);
  g_return_val_if_fail (ATELIER_IS_ASSET (asset), FALSE);
  favourite = !!favourite;
  if (asset->favourite == favourite)
    return TRUE;
  if (!update_flag (self, asset, "favourite", favourite, error))
    return FALSE;
  asset->favourite = favourite;
  g_object_notify_by_pspec (G_OBJECT (asset), asset_props[ASSET_PROP_FAVOURITE]);
  return TRUE;
}

gboolean
atelier_library_trash (AtelierLibrary *self, AtelierAsset *asset, GError **error)
{
  guint position;

  g_return_val_if_fail (ATELIER_IS_LIBRARY (self), FALSE);
  g_return_val_if_fail (ATELIER_IS_ASSET (asset), FALSE);
  if (asset->trashed)
    return TRUE;
  if (!update_flag (self, asset, "trashed", TRUE, error))
    return FALSE;
  asset->trashed = TRUE;
  if (g_ptr_array_find (self->assets, asset, &position))
    {
      g_ptr_array_remove_index (self->assets, position);
      g_list_model_items_changed (G_LIST_MODEL (self), position, 1, 0);
    }
  return TRUE;
}

/* Newest first, as the list is sorted. */
static gboolean
is_newer (AtelierAsset *a, AtelierAsset *b)
{
  return a->created > b->created || (a->created == b->created && a->id > b->id);
}

gboolean
atelier_library_restore (AtelierLibrary *self, AtelierAsset *asset, GError **error)
{
  guint position = 0;

  g_return_val_if_fail (ATELIER_IS_LIBRARY (self), FALSE);
  g_return_val_if_fail (ATELIER_IS_ASSET (asset), FALSE);
  if (!asset->trashed)
    return TRUE;
  if (!update_flag (self, asset, "trashed", FALSE, error))
    return FALSE;
  asset->trashed = FALSE;
  while (position < self->assets->len
         && is_newer (g_ptr_array_index (self->assets, position), asset))
    position++;
  g_ptr_array_insert (self->assets, position, g_object_ref (asset));
  g_list_model_items_changed (G_LIST_MODEL (self), position, 0, 1);
  return TRUE;
}

gboolean
atelier_library_empty_trash (AtelierLibrary *self, GError **error)
{
  GHashTableIter iter;
  AtelierAsset *asset;

  g_return_val_if_fail (ATELIER_IS_LIBRARY (self), FALSE);
  /* Rows first: a crash in between leaves stray files, never rows without files. */
  if (!db_exec (self, "DELETE FROM assets WHERE trashed = 1", _("be written"), error))
    return FALSE;
  g_hash_table_iter_init (&iter, self->by_id);
  while (g_hash_table_iter_next (&iter, NULL, (gpointer *)&asset))
    if (asset->trashed)
      {
        if (g_unlink (asset->path) != 0 && errno != ENOENT)
          g_warning ("%s could not be deleted: %s", asset->path, g_strerror (errno));
        g_hash_table_iter_remove (&iter);
      }
  return TRUE;
}

AtelierAsset *
atelier_library_lookup (AtelierLibrary *self, gint64 id)
{
  g_return_val_if_fail (ATELIER_IS_LIBRARY (self), NULL);
  return g_hash_table_lookup (self->by_id, &id);
}
