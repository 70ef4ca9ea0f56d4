/* atelier-download.c: one download runs in a GTask thread with its own SoupSession and
 * the synchronous API: a multi-gigabyte transfer, and re-hashing a resumed .part file,
 * must never run on the UI thread, and a session is not shared across threads. */
#include <errno.h>
#include <glib/gstdio.h>
#include <libsoup/soup.h>

#include "atelier-download.h"

#define CHUNK_SIZE (256 * 1024)
/* A stalled connection fails after this long instead of hanging the download. */
#define IO_TIMEOUT_SECONDS 60
#define PROGRESS_INTERVAL_US (G_USEC_PER_SEC / 8)

typedef struct
{
  char *url, *destination, *part, *sha256;
  guint64 size;
  AtelierDownloadProgressFunc progress;
  gpointer progress_data;
} Download;

static void
download_free (gpointer data)
{
  Download *d = data;

  g_free (d->url);
  g_free (d->destination);
  g_free (d->part);
  g_free (d->sha256);
  g_free (d);
}

typedef struct
{
  GTask *task;
  AtelierDownloadProgress progress;
} ProgressReport;

static void
progress_report_free (gpointer data)
{
  ProgressReport *report = data;

  g_object_unref (report->task);
  g_free (report);
}

static gboolean
deliver_progress (gpointer data)
{
  ProgressReport *report = data;
  Download *d = g_task_get_task_data (report->task);

  /* A report still queued when the task finished would come after its callback. */
  if (!g_task_get_completed (report->task))
    d->progress (&report->progress, d->progress_data);
  return G_SOURCE_REMOVE;
}

typedef struct
{
  GTask *task;
  gint64 started_us, reported_us;
  guint64 resumed_from, received, total;
} Transfer;

static void
report_progress (Transfer *t, gboolean force)
{
  Download *d = g_task_get_task_data (t->task);
  gint64 now = g_get_monotonic_time ();
  double seconds = (now - t->started_us) / (double) G_USEC_PER_SEC;
  ProgressReport *report;

  if (d->progress == NULL || (!force && now - t->reported_us < PROGRESS_INTERVAL_US))
    return;
  t->reported_us = now;
  report = g_new0 (ProgressReport, 1);
  report->task = g_object_ref (t->task);
  report->progress.received = t->received;
  report->progress.total = t->total;
  report->progress.rate = seconds > 0 ? (t->received - t->resumed_from) / seconds : 0;
  report->progress.eta = t->total > 0 && report->progress.rate > 0
                           ? (t->total - MIN (t->received, t->total)) / report->progress.rate
                           : -1;
  g_main_context_invoke_full (g_task_get_context (t->task), G_PRIORITY_DEFAULT,
                              deliver_progress, report, progress_report_free);
}

/* Feeds the bytes already in the .part file to the checksum, so that a resumed download
 * is checked as a whole. */
static gboolean
hash_part (const char *part, GChecksum *checksum, GCancellable *cancellable, GError **error)
{
  g_autoptr (GFile) file = g_file_new_for_path (part);
  g_autoptr (GFileInputStream) in = g_file_read (file, cancellable, error);
  g_autofree guint8 *buffer = g_malloc (CHUNK_SIZE);
  gssize n;

  if (in == NULL)
    return FALSE;
  while ((n = g_input_stream_read (G_INPUT_STREAM (in), buffer, CHUNK_SIZE, cancellable,
                                   error)) > 0)
    g_checksum_update (checksum, buffer, n);
  return n == 0;
}

static guint64
file_size (const char *path)
{
  GStatBuf st;

  return g_stat (path, &st) == 0 ? (guint64) st.st_size : 0;
}

/* Deletes the .part (its bytes are wrong, resuming would keep them) and says why. */
static gboolean
discard_part (Download *d, GError **error, const char *format, ...) G_GNUC_PRINTF (3, 4);

static gboolean
discard_part (Download *d, GError **error, const char *format, ...)
{
  va_list args;
  g_autofree char *message = NULL;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  g_unlink (d->part);
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA,
               "%s; the partial download was deleted", message);
  return FALSE;
}

/* Streams the body into the .part file from t->received on (or from 0 when the server
 * ignores the range), through the checksum. */
/* Sends the request, from offset when there is a .part; sets *offset to 0 when the
 * server starts from the beginning anyway, and *length to the bytes it will send (0:
 * not said). */
static GInputStream *
send_request (SoupSession *session, Download *d, guint64 *offset, guint64 *length,
              GCancellable *cancellable, GError **error)
{
  g_autoptr (SoupMessage) msg = soup_message_new (SOUP_METHOD_GET, d->url);
  g_autoptr (GInputStream) body = NULL;
  g_autofree char *name = g_path_get_basename (d->destination);
  SoupStatus status;
  goffset start, end, total;

  if (msg == NULL)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                   "Could not download %s: “%s” is not a valid address", name, d->url);
      return NULL;
    }
  if (*offset > 0)
    soup_message_headers_set_range (soup_message_get_request_headers (msg), *offset, -1);
  body = soup_session_send (session, msg, cancellable, error);
  if (body == NULL)
    return NULL;
  status = soup_message_get_status (msg);
  *length = soup_message_headers_get_content_length (soup_message_get_response_headers (msg));
  if (status == SOUP_STATUS_PARTIAL_CONTENT && *offset > 0
      && soup_message_headers_get_content_range (soup_message_get_response_headers (msg),
                                                 &start, &end, &total)
      && (guint64) start == *offset)
    return g_steal_pointer (&body);
  if (status == SOUP_STATUS_OK)
    {
      *offset = 0;
      return g_steal_pointer (&body);
    }
  if (status == SOUP_STATUS_REQUESTED_RANGE_NOT_SATISFIABLE)
    discard_part (d, error, "Could not resume %s: the server has no bytes past the %"
                  G_GUINT64_FORMAT " already downloaded", name, *offset);
  else
    g_set_error (error, G_IO_ERROR, G_IO_ERROR_FAILED,
                 "Could not download %s: the server answered %u %s", name, status,
                 soup_message_get_reason_phrase (msg));
  return NULL;
}

static gboolean
write_all (GOutputStream *out, const guint8 *data, gsize n, Download *d,
           GCancellable *cancellable, GError **error)
{
  g_autoptr (GError) local_error = NULL;
  g_autofree char *folder = NULL;

  if (g_output_stream_write_all (out, data, n, NULL, cancellable, &local_error))
    return TRUE;
  if (!g_error_matches (local_error, G_IO_ERROR, G_IO_ERROR_NO_SPACE))
    {
      g_propagate_error (error, g_steal_pointer (&local_error));
      return FALSE;
    }
  folder = g_path_get_dirname (d->destination);
  g_set_error (error, G_IO_ERROR, G_IO_ERROR_NO_SPACE,
               "The disk holding %s is full: free some space, then download again to "
               "resume", folder);
  return FALSE;
}

static gboolean
transfer (Download *d, Transfer *t, GChecksum *checksum, GCancellable *cancellable,
          GError **error)
{
  g_autoptr (SoupSession) session = soup_session_new_with_options ("user-agent", "Atelier",
                                                                   "timeout",
                                                                   IO_TIMEOUT_SECONDS, NULL);
  g_autoptr (GFile) part = g_file_new_for_path (d->part);
  g_autoptr (GInputStream) body = NULL;
  g_autoptr (GFileOutputStream) out = NULL;
  g_autofree guint8 *buffer = g_malloc (CHUNK_SIZE);
  g_autofree char *name = g_path_get_basename (d->destination);
  guint64 offset = t->received, length = 0;
  gssize n;

  body = send_request (session, d, &offset, &length, cancellable, error);
  if (body == NULL)
    return FALSE;
  if (t->total == 0 && length > 0)
    t->total = offset + length;
  if (offset == 0)
    {
      g_checksum_reset (checksum);
      out = g_file_replace (part, NULL, FALSE, G_FILE_CREATE_NONE, cancellable, error);
    }
  else
    out = g_file_append_to (part, G_FILE_CREATE_NONE, cancellable, error);
  if (out == NULL)
    return FALSE;

  t->started_us = g_get_monotonic_time ();
  t->resumed_from = t->received = offset;
  report_progress (t, TRUE);
  while ((n = g_input_stream_read (body, buffer, CHUNK_SIZE, cancellable, error)) > 0)
    {
      if (!write_all (G_OUTPUT_STREAM (out), buffer, n, d, cancellable, error))
        return FALSE;
      g_checksum_update (checksum, buffer, n);
      t->received += n;
      if (t->total > 0 && t->received > t->total)
        {
          g_output_stream_close (G_OUTPUT_STREAM (out), NULL, NULL);
          return discard_part (d, error, "%s is larger than the expected %" G_GUINT64_FORMAT
                               " bytes", name, t->total);
        }
      report_progress (t, FALSE);
    }
  if (n < 0 || !g_output_stream_close (G_OUTPUT_STREAM (out), cancellable, error))
    return FALSE;
  report_progress (t, TRUE);
  if (t->total > 0 && t->received < t->total)
    {
      g_set_error (error, G_IO_ERROR, G_IO_ERROR_PARTIAL_INPUT,
                   "The connection closed after %" G_GUINT64_FORMAT " of %" G_GUINT64_FORMAT
                   " bytes of %s: download again to resume", t->received, t->total, name);
      return FALSE;
    }
  return TRUE;
}

static gboolean
download (GTask *task, Download *d, GCancellable *cancellable, GError **error)
{
  g_autoptr (GChecksum) checksum = g_checksum_new (G_CHECKSUM_SHA256);
  g_autofree char *name = g_path_get_basename (d->destination);
  Transfer t = { .task = task, .total = d->size, .received = file_size (d->part) };

  if (t.received > 0 && d->sha256 != NULL
      && !hash_part (d->part, checksum, cancellable, error))
    return FALSE;
  /* A .part already complete (cancelled while it was renamed) needs only checking. */
  if ((d->size == 0 || t.received != d->size)
      && !transfer (d, &t, checksum, cancellable, error))
    return FALSE;
  if (d->sha256 != NULL && g_ascii_strcasecmp (g_checksum_get_string (checksum), d->sha256) != 0)
    return discard_part (d, error, "%s is damaged: its SHA-256 is %s, not %s", name,
                         g_checksum_get_string (checksum), d->sha256);
  if (g_rename (d->part, d->destination) != 0)
    {
      int saved_errno = errno;

      g_set_error (error, G_IO_ERROR, g_io_error_from_errno (saved_errno),
                   "Could not move the download into %s: %s", d->destination,
                   g_strerror (saved_errno));
      return FALSE;
    }
  return TRUE;
}

static void
download_thread (GTask *task, gpointer source_object, gpointer task_data,
                 GCancellable *cancellable)
{
  GError *error = NULL;

  if (download (task, task_data, cancellable, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

void
atelier_download_async (const char *url, const char *destination, guint64 size,
                        const char *sha256, GCancellable *cancellable,
                        AtelierDownloadProgressFunc progress, gpointer progress_data,
                        GAsyncReadyCallback callback, gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, cancellable, callback, user_data);
  Download *d = g_new0 (Download, 1);

  d->url = g_strdup (url);
  d->destination = g_strdup (destination);
  d->part = atelier_download_part_path (destination);
  d->sha256 = g_strdup (sha256);
  d->size = size;
  d->progress = progress;
  d->progress_data = progress_data;
  g_task_set_source_tag (task, atelier_download_async);
  g_task_set_task_data (task, d, download_free);
  g_task_run_in_thread (task, download_thread);
}

gboolean
atelier_download_finish (GAsyncResult *result, GError **error)
{
  g_return_val_if_fail (g_task_is_valid (result, NULL), FALSE);
  return g_task_propagate_boolean (G_TASK (result), error);
}

char *
atelier_download_part_path (const char *destination)
{
  return g_strconcat (destination, ".part", NULL);
}
