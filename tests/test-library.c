/* test-library.c: the asset library's index — order, trash, favourites across reopening,
 * and an index that survives its writer being killed with SIGKILL. */
#include <glib/gstdio.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "atelier-library.h"

static char *
make_folder (void)
{
  g_autoptr (GError) error = NULL;
  char *folder = g_dir_make_tmp ("atelier-library-XXXXXX", &error);

  g_assert_no_error (error);
  return folder;
}

static AtelierLibrary *
open_library (const char *folder)
{
  g_autoptr (GError) error = NULL;
  AtelierLibrary *library = atelier_library_new (folder, &error);

  g_assert_no_error (error);
  g_assert_nonnull (library);
  return library;
}

static AtelierAsset *
add_text (AtelierLibrary *library, const char *prompt)
{
  g_autoptr (GBytes) bytes = g_bytes_new (prompt, strlen (prompt));
  g_autoptr (GError) error = NULL;
  AtelierAssetInfo info = { .prompt = prompt, .parameters = "{\"tokens\": 12}",
                            .model = "tiny.gguf", .seed = 7 };
  AtelierAsset *asset = atelier_library_add_bytes (library, ATELIER_ASSET_TEXT, bytes, "md",
                                                   &info, &error);

  g_assert_no_error (error);
  g_assert_nonnull (asset);
  return asset;
}

static AtelierAsset *
item (AtelierLibrary *library, guint position)
{
  /* The list holds a reference: the one returned is dropped at once. */
  AtelierAsset *asset = g_list_model_get_item (G_LIST_MODEL (library), position);

  g_assert_nonnull (asset);
  g_object_unref (asset);
  return asset;
}

static void
count_changes (GListModel *list, guint position, guint removed, guint added, guint *changes)
{
  (*changes)++;
}

static void
test_order_trash_restore (void)
{
  g_autofree char *folder = make_folder ();
  g_autoptr (AtelierLibrary) library = open_library (folder);
  g_autoptr (AtelierAsset) first = add_text (library, "first");
  g_autoptr (AtelierAsset) second = add_text (library, "second");
  g_autoptr (AtelierAsset) third = add_text (library, "third");
  g_autoptr (GError) error = NULL;
  g_autofree char *third_path = g_strdup (atelier_asset_get_path (third));
  guint changes = 0;

  g_signal_connect (library, "items-changed", G_CALLBACK (count_changes), &changes);
  /* Newest first. */
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 3);
  g_assert_true (item (library, 0) == third);
  g_assert_true (item (library, 1) == second);
  g_assert_true (item (library, 2) == first);
  g_assert_cmpstr (atelier_asset_get_prompt (second), ==, "second");
  g_assert_cmpstr (atelier_asset_get_model (second), ==, "tiny.gguf");
  g_assert_cmpint (atelier_asset_get_seed (second), ==, 7);
  g_assert_true (g_str_has_prefix (atelier_asset_get_path (second), folder));
  g_assert_true (g_file_test (atelier_asset_get_path (second), G_FILE_TEST_IS_REGULAR));

  g_assert_true (atelier_library_trash (library, second, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (changes, ==, 1);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 2);
  g_assert_true (item (library, 1) == first);
  /* In the trash: still found, its file still there, so that Undo can bring it back. */
  g_assert_true (atelier_library_lookup (library, atelier_asset_get_id (second)) == second);
  g_assert_true (g_file_test (atelier_asset_get_path (second), G_FILE_TEST_IS_REGULAR));

  g_assert_true (atelier_library_restore (library, second, &error));
  g_assert_no_error (error);
  g_assert_cmpuint (changes, ==, 2);
  g_assert_true (item (library, 0) == third);
  g_assert_true (item (library, 1) == second);
  g_assert_true (item (library, 2) == first);

  /* Emptying deletes the trashed file and row, and nothing else. */
  g_assert_true (atelier_library_trash (library, third, &error));
  g_assert_true (atelier_library_empty_trash (library, &error));
  g_assert_no_error (error);
  g_assert_false (g_file_test (third_path, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (atelier_asset_get_path (first), G_FILE_TEST_IS_REGULAR));
  g_assert_null (atelier_library_lookup (library, atelier_asset_get_id (third)));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 2);
}

static void
test_reopen (void)
{
  g_autofree char *folder = make_folder ();
  AtelierLibrary *library = open_library (folder);
  g_autoptr (GError) error = NULL;
  gint64 first_id, second_id, trashed_id;

  {
    g_autoptr (AtelierAsset) first = add_text (library, "first");
    g_autoptr (AtelierAsset) second = add_text (library, "second");
    g_autoptr (AtelierAsset) trashed = add_text (library, "trashed");

    first_id = atelier_asset_get_id (first);
    second_id = atelier_asset_get_id (second);
    trashed_id = atelier_asset_get_id (trashed);
    g_assert_true (atelier_library_set_favourite (library, second, TRUE, &error));
    g_assert_no_error (error);
    g_assert_true (atelier_asset_get_favourite (second));
    g_assert_true (atelier_library_trash (library, trashed, &error));
  }
  g_object_unref (library);

  library = open_library (folder);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 2);
  g_assert_cmpint (atelier_asset_get_id (item (library, 0)), ==, second_id);
  g_assert_cmpint (atelier_asset_get_id (item (library, 1)), ==, first_id);
  g_assert_true (atelier_asset_get_favourite (item (library, 0)));
  g_assert_false (atelier_asset_get_favourite (item (library, 1)));
  g_assert_cmpstr (atelier_asset_get_parameters (item (library, 0)), ==, "{\"tokens\": 12}");
  /* The trash outlives a restart too, until it is emptied. */
  g_assert_nonnull (atelier_library_lookup (library, trashed_id));
  g_object_unref (library);
}

/* The child adds assets as fast as it can until it is killed. */
static void G_GNUC_NORETURN
write_forever (const char *folder)
{
  g_autoptr (AtelierLibrary) library = atelier_library_new (folder, NULL);

  if (library == NULL)
    _exit (1);
  for (guint i = 0;; i++)
    {
      g_autofree char *prompt = g_strdup_printf ("asset %u", i);
      g_autoptr (GBytes) bytes = g_bytes_new (prompt, strlen (prompt));
      AtelierAssetInfo info = { .prompt = prompt };
      AtelierAsset *asset = atelier_library_add_bytes (library, ATELIER_ASSET_TEXT, bytes, "md",
                                                       &info, NULL);

      if (asset == NULL)
        _exit (1);
      g_object_unref (asset);
    }
}

static gboolean
has_assets (const char *folder, guint at_least)
{
  g_autoptr (AtelierLibrary) library = open_library (folder);

  return g_list_model_get_n_items (G_LIST_MODEL (library)) >= at_least;
}

static void
test_killed_writer (void)
{
  g_autofree char *folder = make_folder ();
  g_autoptr (AtelierLibrary) library = NULL;
  g_autoptr (GHashTable) ids = g_hash_table_new_full (g_int64_hash, g_int64_equal, g_free, NULL);
  int status;
  guint n;
  pid_t child;

  /* The index exists before the child runs, so that the reader below never races the
   * table's creation. */
  g_object_unref (open_library (folder));
  child = fork ();
  g_assert_cmpint (child, >=, 0);
  if (child == 0)
    write_forever (folder);

  /* Killed in the middle of its writing: well after it started, at a random moment. */
  while (!has_assets (folder, 50))
    g_usleep (20000);
  g_usleep (g_random_int_range (0, 50000));
  g_assert_cmpint (kill (child, SIGKILL), ==, 0);
  g_assert_cmpint (waitpid (child, &status, 0), ==, child);
  g_assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);

  library = open_library (folder);
  n = g_list_model_get_n_items (G_LIST_MODEL (library));
  g_test_message ("%u assets indexed before the kill", n);
  g_assert_cmpuint (n, >=, 50);
  for (guint i = 0; i < n; i++)
    {
      AtelierAsset *asset = item (library, i);
      g_autofree char *contents = NULL;
      g_autofree char *expected = NULL;

      /* Every listed file is complete: files are renamed into place before indexing. */
      g_assert_true (g_file_get_contents (atelier_asset_get_path (asset), &contents, NULL,
                                          NULL));
      g_assert_cmpstr (contents, ==, atelier_asset_get_prompt (asset));
      gint64 id = atelier_asset_get_id (asset);

      g_assert_false (g_hash_table_contains (ids, &id));
      g_hash_table_add (ids, g_memdup2 (&id, sizeof id));
      /* Newest first: prompts count down. */
      expected = g_strdup_printf ("asset %u", n - 1 - i);
      g_assert_cmpstr (atelier_asset_get_prompt (asset), ==, expected);
    }
  /* The index still takes writes. */
  g_object_unref (add_text (library, "after the crash"));
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, n + 1);
}

static void
test_folder_not_creatable (void)
{
  g_autofree char *folder = make_folder ();
  g_autofree char *file = g_build_filename (folder, "a-file", NULL);
  g_autofree char *inside = g_build_filename (file, "library", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (AtelierLibrary) library = NULL;

  g_assert_true (g_file_set_contents (file, "", 0, NULL));
  /* A folder under a file: refused even to root, unlike a read-only folder. */
  library = atelier_library_new (inside, &error);
  g_assert_null (library);
  g_assert_error (error, G_IO_ERROR, G_IO_ERROR_NOT_DIRECTORY);
  g_assert_nonnull (strstr (error->message, inside));
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  g_test_add_func ("/app/library/order-trash-restore", test_order_trash_restore);
  g_test_add_func ("/app/library/reopen", test_reopen);
  g_test_add_func ("/app/library/killed-writer", test_killed_writer);
  g_test_add_func ("/app/library/folder-not-creatable", test_folder_not_creatable);
  return g_test_run ();
}
