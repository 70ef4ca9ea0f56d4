/* test-download.c: the model downloader against a SoupServer on the loopback interface
 * serving a generated file: whole, resumed after a cancel (Range), from the start again
 * when the server ignores Range, and the errors (checksum, size, HTTP status). */
#include <glib/gstdio.h>
#include <libsoup/soup.h>

#include "atelier-download.h"

#define DATA_SIZE (3 * 1024 * 1024 + 123)
#define HALF (DATA_SIZE / 2)

typedef struct
{
  SoupServer *server;
  char *base_url;
  guint8 *data;
  char *sha256;
  /* The first request for /model.bin stops after HALF bytes, until released. */
  gboolean stall;
  SoupServerMessage *stalled;
  /* What the last request asked for: the start of its Range, -1 without one. */
  goffset range_start;
  guint requests;
  char *folder;
} Fixture;

static void
stalled_finished (SoupServerMessage *msg, Fixture *f)
{
  f->stalled = NULL;
}

static void
serve (SoupServer *server, SoupServerMessage *msg, const char *path, GHashTable *query,
       gpointer user_data)
{
  Fixture *f = user_data;
  SoupMessageHeaders *request = soup_server_message_get_request_headers (msg);
  SoupMessageHeaders *response = soup_server_message_get_response_headers (msg);
  SoupRange *ranges;
  int n_ranges;

  f->requests++;
  f->range_start = -1;
  if (g_str_equal (path, "/ignores-range.bin"))
    soup_message_headers_remove (request, "Range");
  else if (!g_str_equal (path, "/model.bin"))
    {
      soup_server_message_set_status (msg, SOUP_STATUS_NOT_FOUND, NULL);
      return;
    }

  if (soup_message_headers_get_ranges (request, DATA_SIZE, &ranges, &n_ranges))
    {
      goffset start = ranges[0].start, end = ranges[0].end;

      soup_message_headers_free_ranges (request, ranges);
      f->range_start = start;
      soup_server_message_set_status (msg, SOUP_STATUS_PARTIAL_CONTENT, NULL);
      soup_message_headers_set_content_range (response, start, end, DATA_SIZE);
      soup_server_message_set_response (msg, "application/octet-stream", SOUP_MEMORY_COPY,
                                        (const char *) f->data + start, end - start + 1);
      return;
    }
  soup_server_message_set_status (msg, SOUP_STATUS_OK, NULL);
  if (f->stall)
    {
      /* A body shorter than its Content-Length: the server waits for the rest. */
      f->stall = FALSE;
      f->stalled = msg;
      g_signal_connect (msg, "finished", G_CALLBACK (stalled_finished), f);
      soup_message_headers_set_content_type (response, "application/octet-stream", NULL);
      soup_message_headers_set_content_length (response, DATA_SIZE);
      soup_message_body_append (soup_server_message_get_response_body (msg), SOUP_MEMORY_COPY,
                                f->data, HALF);
      return;
    }
  soup_server_message_set_response (msg, "application/octet-stream", SOUP_MEMORY_COPY,
                                    (const char *) f->data, DATA_SIZE);
}

static void
fixture_set_up (Fixture *f, gconstpointer user_data)
{
  g_autoptr (GRand) rand = g_rand_new_with_seed (1234);
  g_autoptr (GError) error = NULL;
  GSList *uris;

  f->data = g_malloc (DATA_SIZE);
  for (gsize i = 0; i < DATA_SIZE; i++)
    f->data[i] = g_rand_int (rand) & 0xff;
  f->sha256 = g_compute_checksum_for_data (G_CHECKSUM_SHA256, f->data, DATA_SIZE);
  f->server = soup_server_new (NULL, NULL);
  soup_server_add_handler (f->server, NULL, serve, f, NULL);
  g_assert_true (soup_server_listen_local (f->server, 0, SOUP_SERVER_LISTEN_IPV4_ONLY,
                                           &error));
  g_assert_no_error (error);
  uris = soup_server_get_uris (f->server);
  f->base_url = g_uri_to_string (uris->data);
  g_slist_free_full (uris, (GDestroyNotify) g_uri_unref);
  f->folder = g_dir_make_tmp ("atelier-download-XXXXXX", &error);
  g_assert_no_error (error);
}

static void
fixture_tear_down (Fixture *f, gconstpointer user_data)
{
  g_autoptr (GDir) dir = g_dir_open (f->folder, 0, NULL);
  const char *name;

  while ((name = g_dir_read_name (dir)) != NULL)
    {
      g_autofree char *path = g_build_filename (f->folder, name, NULL);

      g_unlink (path);
    }
  g_rmdir (f->folder);
  g_object_unref (f->server);
  g_free (f->base_url);
  g_free (f->data);
  g_free (f->sha256);
  g_free (f->folder);
}

typedef struct
{
  GAsyncResult *result;
  GArray *reports; /* AtelierDownloadProgress */
} Run;

static void
on_progress (const AtelierDownloadProgress *progress, gpointer user_data)
{
  Run *run = user_data;

  g_assert_null (run->result);
  g_array_append_val (run->reports, *progress);
}

static void
on_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  ((Run *) user_data)->result = g_object_ref (result);
}

static char *
path_in (Fixture *f, const char *name)
{
  return g_build_filename (f->folder, name, NULL);
}

static void
start (Fixture *f, Run *run, const char *url_path, guint64 size, const char *sha256,
       GCancellable *cancellable)
{
  g_autofree char *url = g_strconcat (f->base_url, url_path + 1, NULL);
  g_autofree char *destination = path_in (f, "model.gguf");

  run->result = NULL;
  run->reports = g_array_new (FALSE, FALSE, sizeof (AtelierDownloadProgress));
  atelier_download_async (url, destination, size, sha256, cancellable, on_progress, run,
                          on_done, run);
}

static gboolean
finish (Run *run, GError **error)
{
  gboolean ok;

  while (run->result == NULL)
    g_main_context_iteration (NULL, TRUE);
  ok = atelier_download_finish (run->result, error);
  g_clear_object (&run->result);
  return ok;
}

static gboolean
download (Fixture *f, Run *run, const char *url_path, guint64 size, const char *sha256,
          GError **error)
{
  start (f, run, url_path, size, sha256, NULL);
  return finish (run, error);
}

static void
run_clear (Run *run)
{
  g_array_unref (run->reports);
}

static void
assert_downloaded (Fixture *f)
{
  g_autofree char *destination = path_in (f, "model.gguf");
  g_autofree char *part = path_in (f, "model.gguf.part");
  g_autofree char *contents = NULL;
  gsize length = 0;

  g_assert_true (g_file_get_contents (destination, &contents, &length, NULL));
  g_assert_cmpmem (contents, length, f->data, DATA_SIZE);
  g_assert_false (g_file_test (part, G_FILE_TEST_EXISTS));
}

static void
assert_nothing_left (Fixture *f)
{
  g_autofree char *destination = path_in (f, "model.gguf");
  g_autofree char *part = path_in (f, "model.gguf.part");

  g_assert_false (g_file_test (destination, G_FILE_TEST_EXISTS));
  g_assert_false (g_file_test (part, G_FILE_TEST_EXISTS));
}

static guint64
part_size (Fixture *f)
{
  g_autofree char *part = path_in (f, "model.gguf.part");
  GStatBuf st;

  return g_stat (part, &st) == 0 ? (guint64) st.st_size : 0;
}

static void
write_part (Fixture *f, const guint8 *data, gsize length)
{
  g_autofree char *part = path_in (f, "model.gguf.part");

  g_assert_true (g_file_set_contents (part, (const char *) data, length, NULL));
}

static void
test_whole (Fixture *f, gconstpointer user_data)
{
  g_autoptr (GError) error = NULL;
  const AtelierDownloadProgress *last;
  Run run;

  g_assert_true (download (f, &run, "/model.bin", DATA_SIZE, f->sha256, &error));
  g_assert_no_error (error);
  assert_downloaded (f);
  g_assert_cmpint (f->range_start, ==, -1);
  g_assert_cmpuint (run.reports->len, >=, 2);
  g_assert_cmpuint (g_array_index (run.reports, AtelierDownloadProgress, 0).received, ==, 0);
  last = &g_array_index (run.reports, AtelierDownloadProgress, run.reports->len - 1);
  g_assert_cmpuint (last->received, ==, DATA_SIZE);
  g_assert_cmpuint (last->total, ==, DATA_SIZE);
  g_assert_cmpfloat (last->rate, >, 0);
  g_assert_cmpfloat (last->eta, ==, 0);
  run_clear (&run);
}

/* The size is not known beforehand: the server's Content-Length gives it. */
static void
test_unknown_size (Fixture *f, gconstpointer user_data)
{
  g_autoptr (GError) error = NULL;
  Run run;

  g_assert_true (download (f, &run, "/model.bin", 0, NULL, &error));
  g_assert_no_error (error);
  assert_downloaded (f);
  g_assert_cmpuint (g_array_index (run.reports, AtelierDownloadProgress,
                                   run.reports->len - 1).total, ==, DATA_SIZE);
  run_clear (&run);
}

static gboolean
deadline_passed (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
test_resume_after_cancel (Fixture *f, gconstpointer user_data)
{
  g_autoptr (GCancellable) cancellable = g_cancellable_new ();
  g_autoptr (GError) error = NULL;
  gboolean timed_out = FALSE;
  guint deadline;
  Run run;

  f->stall = TRUE;
  start (f, &run, "/model.bin", DATA_SIZE, f->sha256, cancellable);
  /* The server has sent half and waits: cancel once all of it is in the .part. */
  deadline = g_timeout_add_seconds (20, deadline_passed, &timed_out);
  while (part_size (f) < HALF && !timed_out)
    if (!g_main_context_iteration (NULL, FALSE))
      g_usleep (1000);
  g_assert_false (timed_out);
  g_source_remove (deadline);
  g_cancellable_cancel (cancellable);
  g_assert_false (finish (&run, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  g_clear_error (&error);
  run_clear (&run);
  g_assert_cmpuint (part_size (f), ==, HALF);
  if (f->stalled != NULL)
    {
      soup_message_body_complete (soup_server_message_get_response_body (f->stalled));
      soup_server_message_unpause (f->stalled);
    }

  /* Again: only the rest is asked for, and the whole is checked. */
  g_assert_true (download (f, &run, "/model.bin", DATA_SIZE, f->sha256, &error));
  g_assert_no_error (error);
  g_assert_cmpint (f->range_start, ==, HALF);
  assert_downloaded (f);
  g_assert_cmpuint (g_array_index (run.reports, AtelierDownloadProgress, 0).received, ==, HALF);
  run_clear (&run);
}

/* The server answers 200 with the whole file to a Range request: the .part's bytes are
 * replaced, not kept in front of it. */
static void
test_server_ignores_range (Fixture *f, gconstpointer user_data)
{
  static const guint8 stale[1000] = { 0 };
  g_autoptr (GError) error = NULL;
  Run run;

  write_part (f, stale, sizeof stale);
  g_assert_true (download (f, &run, "/ignores-range.bin", DATA_SIZE, f->sha256, &error));
  g_assert_no_error (error);
  g_assert_cmpint (f->range_start, ==, -1);
  assert_downloaded (f);
  run_clear (&run);
}

static void
test_checksum_mismatch (Fixture *f, gconstpointer user_data)
{
  g_autofree char *wrong = g_compute_checksum_for_string (G_CHECKSUM_SHA256, "other", -1);
  g_autofree guint8 *corrupt = g_memdup2 (f->data, HALF);
  g_autoptr (GError) error = NULL;
  Run run;

  g_assert_false (download (f, &run, "/model.bin", DATA_SIZE, wrong, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, f->sha256));
  g_assert_nonnull (strstr (error->message, wrong));
  g_clear_error (&error);
  assert_nothing_left (f);
  run_clear (&run);

  /* A damaged .part is caught too: the resumed download hashes what was there. */
  corrupt[100] ^= 1;
  write_part (f, corrupt, HALF);
  g_assert_false (download (f, &run, "/model.bin", DATA_SIZE, f->sha256, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_assert_cmpint (f->range_start, ==, HALF);
  assert_nothing_left (f);
  run_clear (&run);
}

static void
test_size_mismatch (Fixture *f, gconstpointer user_data)
{
  g_autoptr (GError) error = NULL;
  Run run;

  g_assert_false (download (f, &run, "/model.bin", DATA_SIZE - 1, NULL, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_INVALID_DATA);
  g_test_message ("%s", error->message);
  g_assert_nonnull (strstr (error->message, "larger than the expected"));
  assert_nothing_left (f);
  run_clear (&run);
}

static void
test_not_found (Fixture *f, gconstpointer user_data)
{
  g_autoptr (GError) error = NULL;
  Run run;

  g_assert_false (download (f, &run, "/missing.bin", DATA_SIZE, f->sha256, &error));
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_FAILED);
  g_assert_cmpstr (error->message, ==,
                   "Could not download model.gguf: the server answered 404 Not Found");
  assert_nothing_left (f);
  g_assert_cmpuint (f->requests, ==, 1);
  run_clear (&run);
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
#define ADD(path, func) \
  g_test_add ("/app/download/" path, Fixture, NULL, fixture_set_up, func, fixture_tear_down)
  ADD ("whole", test_whole);
  ADD ("unknown-size", test_unknown_size);
  ADD ("resume-after-cancel", test_resume_after_cancel);
  ADD ("server-ignores-range", test_server_ignores_range);
  ADD ("checksum-mismatch", test_checksum_mismatch);
  ADD ("size-mismatch", test_size_mismatch);
  ADD ("not-found", test_not_found);
#undef ADD
  return g_test_run ();
}
