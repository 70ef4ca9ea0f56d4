/* atelier-thumbnails.c: asset previews (see atelier-thumbnails.h). */
#include "config.h"


#include "atelier-thumbnails.h"

/* A text preview is the first lines of its start: a cell shows no more. */
#define TEXT_PREVIEW_BYTES 1024
#define TEXT_PREVIEW_LINES 8
/* A WAV's "fmt " and "data" chunk headers come first in any file a program writes. */
#define WAV_HEADER_BYTES 4096

typedef struct
{
  gint64 id;
  GObject *preview;
} Entry;

struct _AtelierThumbnails
{
  GObject parent_instance;

  guint size, capacity;
  GQueue lru;        /* Entry, most recently used first */
  GHashTable *by_id; /* id -> GList link in lru */
};

G_DEFINE_FINAL_TYPE (AtelierThumbnails, atelier_thumbnails, G_TYPE_OBJECT)

static void
entry_free (Entry *entry)
{
  g_object_unref (entry->preview);
  g_free (entry);
}

static void
atelier_thumbnails_finalize (GObject *object)
{
  AtelierThumbnails *self = ATELIER_THUMBNAILS (object);

  g_hash_table_unref (self->by_id);
  g_queue_clear_full (&self->lru, (GDestroyNotify)entry_free);
  G_OBJECT_CLASS (atelier_thumbnails_parent_class)->finalize (object);
}

static void
atelier_thumbnails_class_init (AtelierThumbnailsClass *klass)
{
  G_OBJECT_CLASS (klass)->finalize = atelier_thumbnails_finalize;
}

static void
atelier_thumbnails_init (AtelierThumbnails *self)
{
  g_queue_init (&self->lru);
  self->by_id = g_hash_table_new (g_int64_hash, g_int64_equal);
}

AtelierThumbnails *
atelier_thumbnails_new (guint size, guint capacity)
{
  AtelierThumbnails *self = g_object_new (ATELIER_TYPE_THUMBNAILS, NULL);

  self->size = size;
  self->capacity = MAX (capacity, 1);
  return self;
}

GObject *
atelier_thumbnails_lookup (AtelierThumbnails *self, AtelierAsset *asset)
{
  gint64 id = atelier_asset_get_id (asset);
  GList *link = g_hash_table_lookup (self->by_id, &id);

  if (link == NULL)
    return NULL;
  g_queue_unlink (&self->lru, link);
  g_queue_push_head_link (&self->lru, link);
  return ((Entry *)link->data)->preview;
}

guint
atelier_thumbnails_get_n_cached (AtelierThumbnails *self)
{
  return self->lru.length;
}

static void
cache (AtelierThumbnails *self, gint64 id, GObject *preview)
{
  Entry *entry;
  GList *link = g_hash_table_lookup (self->by_id, &id);

  if (link != NULL)
    {
      entry = link->data;
      g_set_object (&entry->preview, preview);
      g_queue_unlink (&self->lru, link);
      g_queue_push_head_link (&self->lru, link);
      return;
    }
  entry = g_new (Entry, 1);
  entry->id = id;
  entry->preview = g_object_ref (preview);
  g_queue_push_head (&self->lru, entry);
  g_hash_table_insert (self->by_id, &entry->id, self->lru.head);
  while (self->lru.length > self->capacity)
    {
      Entry *oldest = g_queue_pop_tail (&self->lru);

      g_hash_table_remove (self->by_id, &oldest->id);
      entry_free (oldest);
    }
}

static char *
read_start (const char *path, gsize max, gsize *length, GError **error)
{
  g_autoptr (GFile) file = g_file_new_for_path (path);
  g_autoptr (GFileInputStream) stream = g_file_read (file, NULL, error);
  g_autofree char *buffer = g_malloc (max + 1);

  if (stream == NULL
      || !g_input_stream_read_all (G_INPUT_STREAM (stream), buffer, max, length, NULL, error))
    return NULL;
  buffer[*length] = '\0';
  return g_steal_pointer (&buffer);
}

static GObject *
text_preview (const char *path, GError **error)
{
  gsize length;
  g_autofree char *start = read_start (path, TEXT_PREVIEW_BYTES, &length, error);
  const char *valid_end;
  g_autoptr (GString) preview = NULL;
  guint lines = 0;

  if (start == NULL)
    return NULL;
  /* The read may end inside a character. */
  g_utf8_validate_len (start, length, &valid_end);
  preview = g_string_new_len (start, valid_end - start);
  for (gsize i = 0; i < preview->len; i++)
    if (preview->str[i] == '\n' && ++lines == TEXT_PREVIEW_LINES)
      {
        g_string_truncate (preview, i);
        break;
      }
  return G_OBJECT (gtk_string_object_new (g_strstrip (preview->str)));
}

static guint32
le32 (const guint8 *p)
{
  return p[0] | (guint32)p[1] << 8 | (guint32)p[2] << 16 | (guint32)p[3] << 24;
}

static GObject *
audio_preview (const char *path, GError **error)
{
  gsize length;
  g_autofree guint8 *header = (guint8 *)read_start (path, WAV_HEADER_BYTES, &length, error);
  guint32 byte_rate = 0;
  g_autofree char *duration = NULL;

  if (header == NULL)
    return NULL;
  if (length < 12 || memcmp (header, "RIFF", 4) != 0 || memcmp (header + 8, "WAVE", 4) != 0)
    return G_OBJECT (gtk_string_object_new (""));
  for (gsize at = 12; at + 8 <= length;)
    {
      guint32 size = le32 (header + at + 4);

      if (memcmp (header + at, "fmt ", 4) == 0 && at + 20 <= length)
        byte_rate = le32 (header + at + 16);
      else if (memcmp (header + at, "data", 4) == 0 && byte_rate > 0)
        {
          guint seconds = (size + byte_rate / 2) / byte_rate;

          duration = g_strdup_printf ("%u:%02u", seconds / 60, seconds % 60);
          break;
        }
      /* Chunks are padded to an even size. */
      at += 8 + (gsize)size + (size & 1);
    }
  return G_OBJECT (gtk_string_object_new (duration != NULL ? duration : ""));
}

static void
load_thread (GTask *task, gpointer source_object, gpointer task_data,
             GCancellable *cancellable)
{
  AtelierThumbnails *self = source_object;
  AtelierAsset *asset = task_data;
  const char *path = atelier_asset_get_path (asset);
  g_autoptr (GdkPixbuf) pixbuf = NULL;
  GObject *preview = NULL;
  GError *error = NULL;

  if (g_task_return_error_if_cancelled (task))
    return;
  switch (atelier_asset_get_kind (asset))
    {
    case ATELIER_ASSET_IMAGE:
      pixbuf = gdk_pixbuf_new_from_file_at_scale (path, (int)self->size, (int)self->size,
                                                  TRUE, &error);
      if (pixbuf != NULL)
        preview = G_OBJECT (gdk_texture_new_for_pixbuf (pixbuf));
      break;
    case ATELIER_ASSET_TEXT:
      preview = text_preview (path, &error);
      break;
    case ATELIER_ASSET_AUDIO:
      preview = audio_preview (path, &error);
      break;
    }
  if (preview == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, preview, g_object_unref);
}

void
atelier_thumbnails_load_async (AtelierThumbnails *self, AtelierAsset *asset,
                               GCancellable *cancellable, GAsyncReadyCallback callback,
                               gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (self, cancellable, callback, user_data);

  g_return_if_fail (ATELIER_IS_THUMBNAILS (self));
  g_task_set_source_tag (task, atelier_thumbnails_load_async);
  g_task_set_task_data (task, g_object_ref (asset), g_object_unref);
  g_task_run_in_thread (task, load_thread);
}

GObject *
atelier_thumbnails_load_finish (AtelierThumbnails *self, GAsyncResult *result, GError **error)
{
  GObject *preview;

  g_return_val_if_fail (g_task_is_valid (result, self), NULL);
  preview = g_task_propagate_pointer (G_TASK (result), error);
  if (preview != NULL)
    cache (self, atelier_asset_get_id (g_task_get_task_data (G_TASK (result))), preview);
  return preview;
}

static void
texture_thread (GTask *task, gpointer source_object, gpointer task_data,
                GCancellable *cancellable)
{
  GError *error = NULL;
  GdkTexture *texture;

  if (g_task_return_error_if_cancelled (task))
    return;
  texture = gdk_texture_new_from_filename (task_data, &error);
  if (texture == NULL)
    g_task_return_error (task, error);
  else
    g_task_return_pointer (task, texture, g_object_unref);
}

void
atelier_texture_load_async (const char *path, GCancellable *cancellable,
                            GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);

  g_task_set_source_tag (task, atelier_texture_load_async);
  g_task_set_task_data (task, g_strdup (path), g_free);
  g_task_run_in_thread (task, texture_thread);
}

GdkTexture *
atelier_texture_load_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), NULL);
  return g_task_propagate_pointer (G_TASK (result), error);
}
