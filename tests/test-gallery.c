/* test-gallery.c: the Gallery page in the studio's real window under Xvfb, over a library
 * filled beforehand: the grid shows it, filters by kind, favourites and prompt text, and a
 * delete is undone. $ATELIER_GALLERY_SCREENSHOT names a PNG to save the page into. */
#include <glib/gstdio.h>

#include "atelier-application.h"
#include "atelier-gallery-page.h"
#include "atelier-window.h"
#include "formats/at-png.h"

#define N_IMAGES 24
#define N_TEXTS 6
#define N_AUDIO 3

static const char *const subjects[] = {
  "Red fox in snow", "Lighthouse at dusk, oil painting", "A bowl of ramen, studio light",
  "Misty pine forest", "Portrait of an old sailor", "Neon city street in the rain",
};

typedef gboolean (*Condition) (gpointer data);

static gboolean
deadline_passed (gpointer data)
{
  *(gboolean *)data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
wait_until (Condition condition, gpointer data)
{
  gboolean timed_out = FALSE;
  guint source = g_timeout_add_seconds (20, deadline_passed, &timed_out);

  while (!condition (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (timed_out);
  g_source_remove (source);
}

static void
fill_library (const char *folder)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (AtelierLibrary) library = atelier_library_new (folder, &error);
  guint8 pixels[64 * 64 * 3];

  g_assert_no_error (error);
  for (guint i = 0; i < N_TEXTS; i++)
    {
      g_autofree char *text = g_strdup_printf ("# Chapter %u\n\nThe tide came in slowly over "
                                               "the flats, and the gulls rose.\n", i + 1);
      g_autoptr (GBytes) bytes = g_bytes_new (text, strlen (text));
      AtelierAssetInfo info = { .prompt = "Continue the story of the tide" };

      g_object_unref (atelier_library_add_bytes (library, ATELIER_ASSET_TEXT, bytes, "md", &info,
                                                 &error));
      g_assert_no_error (error);
    }
  for (guint i = 0; i < N_AUDIO; i++)
    {
      /* A valid 16 kHz mono WAV of silence, 1.5 s. */
      static const guint8 header[44] = { 'R', 'I', 'F', 'F', 36, 0xbb, 0, 0, 'W', 'A', 'V', 'E',
                                         'f', 'm', 't', ' ', 16, 0, 0, 0, 1, 0, 1, 0,
                                         0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0,
                                         'd', 'a', 't', 'a', 0, 0xbb, 0, 0 };
      g_autofree guint8 *wav = g_malloc0 (sizeof header + 0xbb00);
      g_autoptr (GBytes) bytes = NULL;
      AtelierAssetInfo info = { .prompt = "Welcome to the atelier" };

      memcpy (wav, header, sizeof header);
      bytes = g_bytes_new (wav, sizeof header + 0xbb00);
      g_object_unref (atelier_library_add_bytes (library, ATELIER_ASSET_AUDIO, bytes, "wav",
                                                 &info, &error));
      g_assert_no_error (error);
    }
  for (guint i = 0; i < N_IMAGES; i++)
    {
      g_autofree char *path = atelier_library_new_path (library, ATELIER_ASSET_IMAGE, "png");
      const char *prompt = subjects[i % G_N_ELEMENTS (subjects)];
      AtelierAssetInfo info = { .prompt = prompt, .parameters = "{}", .seed = i };

      /* Each image its own colours, so that a screenshot shows distinct cells. */
      for (guint y = 0; y < 64; y++)
        for (guint x = 0; x < 64; x++)
          {
            guint8 *p = pixels + (y * 64 + x) * 3;

            p[0] = (guint8)(x * 4 + i * 37);
            p[1] = (guint8)(y * 4 + i * 11);
            p[2] = (guint8)(128 + i * 53);
          }
      g_assert_true (at_png_write (path, pixels, 64, 64, 3, 64 * 3, prompt, &error));
      g_object_unref (atelier_library_add (library, ATELIER_ASSET_IMAGE, path, &info, &error));
      g_assert_no_error (error);
    }
}

static gpointer
page_child (AtelierGalleryPage *page, const char *name)
{
  GObject *child = gtk_widget_get_template_child (GTK_WIDGET (page), ATELIER_TYPE_GALLERY_PAGE,
                                                  name);

  g_assert_nonnull (child);
  return child;
}

static guint
n_shown (AtelierGalleryPage *page)
{
  GtkGridView *grid = page_child (page, "grid_view");

  return g_list_model_get_n_items (G_LIST_MODEL (gtk_grid_view_get_model (grid)));
}

static gboolean
is_mapped (gpointer data)
{
  return gtk_widget_get_mapped (GTK_WIDGET (data));
}

/* The first cell shows its preview: a thumbnail was made and cached. */
static gboolean
cells_have_previews (gpointer data)
{
  GtkWidget *grid = page_child (data, "grid_view");
  guint previews = 0;

  for (GtkWidget *cell = gtk_widget_get_first_child (grid); cell != NULL;
       cell = gtk_widget_get_next_sibling (cell))
    {
      GtkWidget *stack = gtk_widget_get_first_child (gtk_widget_get_first_child (
        gtk_widget_get_first_child (cell)));

      if (GTK_IS_STACK (stack)
          && g_strcmp0 (gtk_stack_get_visible_child_name (GTK_STACK (stack)), "loading") != 0)
        previews++;
    }
  return previews >= 8;
}

typedef struct
{
  AtelierGalleryPage *page;
  guint n;
} Count;

static gboolean
shows_n (gpointer data)
{
  Count *count = data;

  return n_shown (count->page) == count->n;
}

static void
expect_shown (AtelierGalleryPage *page, guint n)
{
  Count count = { page, n };

  /* The search entry waits a moment after typing before it filters. */
  wait_until (shows_n, &count);
}

static void
on_reuse (AtelierGalleryPage *page, AtelierAsset *asset, gboolean as_init, gpointer data)
{
  int *calls = data;

  g_assert_cmpint (atelier_asset_get_kind (asset), ==, ATELIER_ASSET_IMAGE);
  *calls += as_init ? 10 : 1;
}

static void
save_screenshot (GtkWidget *widget, const char *path)
{
  g_autoptr (GtkSnapshot) snapshot = gtk_snapshot_new ();
  g_autoptr (GskRenderNode) node = NULL;
  g_autoptr (GdkTexture) texture = NULL;
  GskRenderer *renderer = gtk_native_get_renderer (gtk_widget_get_native (widget));
  GdkPaintable *paintable = gtk_widget_paintable_new (widget);
  int width = gtk_widget_get_width (widget), height = gtk_widget_get_height (widget);

  gdk_paintable_snapshot (paintable, snapshot, width, height);
  node = gtk_snapshot_free_to_node (g_steal_pointer (&snapshot));
  texture = gsk_renderer_render_texture (renderer, node,
                                         &GRAPHENE_RECT_INIT (0, 0, width, height));
  g_assert_true (gdk_texture_save_to_png (texture, path));
  g_object_unref (paintable);
}

static void
test_gallery (void)
{
  g_autofree char *folder = g_build_filename (g_get_user_data_dir (), "library", NULL);
  g_autoptr (AtelierApplication) app = NULL;
  g_autoptr (GError) error = NULL;
  const char *screenshot = g_getenv ("ATELIER_GALLERY_SCREENSHOT");
  AtelierGalleryPage *page;
  AtelierLibrary *library;
  GtkSelectionModel *selection;
  GtkWindow *window;
  int reuse_calls = 0;

  fill_library (folder);
  g_setenv ("ATELIER_LIBRARY_DIR", folder, TRUE);
  app = atelier_application_new ();
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, &error));
  g_assert_no_error (error);
  g_application_activate (G_APPLICATION (app));
  window = gtk_application_get_active_window (GTK_APPLICATION (app));
  gtk_window_set_default_size (window, 1180, 760);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (window), "win.show-page", "s",
                                             "gallery"));
  page = ATELIER_GALLERY_PAGE (gtk_widget_get_template_child (GTK_WIDGET (window),
                                                              ATELIER_TYPE_WINDOW,
                                                              "gallery_page"));
  wait_until (is_mapped, page);
  library = atelier_application_get_library (app, NULL);
  g_signal_connect (page, "reuse-asset", G_CALLBACK (on_reuse), &reuse_calls);

  g_assert_cmpuint (n_shown (page), ==, N_IMAGES + N_TEXTS + N_AUDIO);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (page_child (page, "content_stack")), ==,
                   "grid");
  wait_until (cells_have_previews, page);
  if (screenshot != NULL)
    save_screenshot (GTK_WIDGET (window), screenshot);

  gtk_toggle_button_set_active (page_child (page, "texts_button"), TRUE);
  expect_shown (page, N_TEXTS);
  gtk_toggle_button_set_active (page_child (page, "audio_button"), TRUE);
  expect_shown (page, N_AUDIO);
  gtk_toggle_button_set_active (page_child (page, "images_button"), TRUE);
  expect_shown (page, N_IMAGES);

  /* Case does not matter; 24 images over 6 subjects: 4 foxes. */
  gtk_editable_set_text (page_child (page, "search_entry"), "FOX");
  expect_shown (page, N_IMAGES / G_N_ELEMENTS (subjects));
  gtk_editable_set_text (page_child (page, "search_entry"), "no such prompt");
  expect_shown (page, 0);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (page_child (page, "content_stack")), ==,
                   "no-match");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "gallery.show-all", NULL));
  expect_shown (page, N_IMAGES + N_TEXTS + N_AUDIO);

  /* Favourites only: one starred image. */
  {
    g_autoptr (AtelierAsset) newest = g_list_model_get_item (G_LIST_MODEL (library), 0);

    g_assert_true (atelier_library_set_favourite (library, newest, TRUE, NULL));
  }
  gtk_toggle_button_set_active (page_child (page, "favourites_button"), TRUE);
  expect_shown (page, 1);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "gallery.show-all", NULL));

  /* Reuse and init image, on the newest (an image). */
  selection = GTK_SELECTION_MODEL (gtk_grid_view_get_model (page_child (page, "grid_view")));
  gtk_selection_model_select_item (selection, 0, TRUE);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "gallery.reuse", NULL));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "gallery.use-as-init", NULL));
  g_assert_cmpint (reuse_calls, ==, 11);

  /* Delete two, then Undo brings both back in their places. */
  {
    g_autoptr (AtelierAsset) first = g_list_model_get_item (G_LIST_MODEL (library), 0);
    g_autoptr (AtelierAsset) second = g_list_model_get_item (G_LIST_MODEL (library), 1);
    g_autoptr (AtelierAsset) third = g_list_model_get_item (G_LIST_MODEL (library), 2);
    g_autoptr (AtelierAsset) now_first = NULL;
    g_autoptr (AtelierAsset) now_second = NULL;

    gtk_selection_model_select_range (selection, 0, 2, TRUE);
    g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "gallery.delete", NULL));
    expect_shown (page, N_IMAGES + N_TEXTS + N_AUDIO - 2);
    now_first = g_list_model_get_item (G_LIST_MODEL (library), 0);
    g_assert_true (now_first == third);
    g_assert_true (g_file_test (atelier_asset_get_path (first), G_FILE_TEST_IS_REGULAR));
    g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "gallery.undo-delete", NULL));
    expect_shown (page, N_IMAGES + N_TEXTS + N_AUDIO);
    g_clear_object (&now_first);
    now_first = g_list_model_get_item (G_LIST_MODEL (library), 0);
    now_second = g_list_model_get_item (G_LIST_MODEL (library), 1);
    g_assert_true (now_first == first);
    g_assert_true (now_second == second);
  }

  gtk_window_destroy (window);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

int
main (int argc, char **argv)
{
  g_autofree char *data_dirs = g_strdup (g_getenv ("XDG_DATA_DIRS"));

  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  /* The isolated folders hide the system's too: GTK needs its MIME data and icons. */
  g_setenv ("XDG_DATA_DIRS", data_dirs != NULL ? data_dirs : "/usr/local/share:/usr/share", TRUE);
  gtk_init ();
  g_test_add_func ("/app/gallery/filter-delete-undo", test_gallery);
  return g_test_run ();
}
