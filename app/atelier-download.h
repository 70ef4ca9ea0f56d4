/* atelier-download.h: downloading a model file over HTTP(S) into the models folder —
 * resumable, checked while it arrives, renamed into place only once complete. */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

typedef struct
{
  guint64 received; /* bytes in the .part file, a resumed beginning included */
  guint64 total;    /* the expected size; 0 when neither the caller nor the server says */
  double rate;      /* bytes per second over this transfer */
  double eta;       /* seconds left; negative when unknown */
} AtelierDownloadProgress;

typedef void (*AtelierDownloadProgressFunc) (const AtelierDownloadProgress *progress,
                                             gpointer user_data);

/* Downloads url to destination. The bytes go to destination + ".part", which a later
 * call resumes with an HTTP Range request (from the start again when the server ignores
 * it); they are checked against size (0: unknown) and sha256 (lowercase hex; NULL:
 * unknown) as they arrive, and the .part is renamed to destination once all is there.
 * Runs in a worker thread; progress is called on the caller's thread-default main
 * context, a few times a second, never after callback. Cancelling (G_IO_ERROR_CANCELLED)
 * or a dropped connection keeps the .part to resume; a wrong checksum or size deletes it
 * (G_IO_ERROR_INVALID_DATA). An HTTP error is G_IO_ERROR_FAILED naming the status; a
 * full disk G_IO_ERROR_NO_SPACE. progress_data must live until callback runs. */
void atelier_download_async (const char *url, const char *destination, guint64 size,
                             const char *sha256, GCancellable *cancellable,
                             AtelierDownloadProgressFunc progress, gpointer progress_data,
                             GAsyncReadyCallback callback, gpointer user_data);
gboolean atelier_download_finish (GAsyncResult *result, GError **error);

/* Where the bytes of a download to destination wait until it is complete. */
char *atelier_download_part_path (const char *destination);

G_END_DECLS
