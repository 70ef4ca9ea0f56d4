/* atelier-thumbnails.h: small previews of library assets, made in worker threads and
 * kept in a bounded cache (least recently used first out), so that a gallery of
 * thousands of assets scrolls without reading a file on the UI thread. */
#pragma once

#include <gtk/gtk.h>

#include "atelier-library.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_THUMBNAILS (atelier_thumbnails_get_type ())
G_DECLARE_FINAL_TYPE (AtelierThumbnails, atelier_thumbnails, ATELIER, THUMBNAILS, GObject)

/* Images are scaled to fit size x size pixels; at most capacity previews are kept. */
AtelierThumbnails *atelier_thumbnails_new (guint size, guint capacity);

/* The preview of the asset when it is cached (and then the most recently used), else
 * NULL: a GdkTexture for an image, a GtkStringObject for a text (its first lines) or an
 * audio file (its duration, "1:05"). */
GObject *atelier_thumbnails_lookup (AtelierThumbnails *self, AtelierAsset *asset);
/* Makes the preview in a worker thread and caches it. */
void atelier_thumbnails_load_async (AtelierThumbnails *self, AtelierAsset *asset,
                                    GCancellable *cancellable, GAsyncReadyCallback callback,
                                    gpointer user_data);
/* The preview (a new reference), or NULL with the error. */
GObject *atelier_thumbnails_load_finish (AtelierThumbnails *self, GAsyncResult *result,
                                         GError **error);
/* How many previews are cached now. */
guint atelier_thumbnails_get_n_cached (AtelierThumbnails *self);

/* The image at path at full size, read in a worker thread (for viewing and copying). */
void atelier_texture_load_async (const char *path, GCancellable *cancellable,
                                 GAsyncReadyCallback callback, gpointer user_data);
GdkTexture *atelier_texture_load_finish (GAsyncResult *result, GError **error);

G_END_DECLS
