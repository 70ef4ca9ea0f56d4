/* test-models-page.c: the Models page and the Preferences window in the real studio under
 * Xvfb: the empty state and the catalog, adding files by dropping them, removing one
 * through its confirmation dialog, and preferences bound to the settings. */
#include <glib/gstdio.h>

#include "atelier-application.h"
#include "atelier-catalog.h"
#include "atelier-models-page.h"
#include "atelier-preferences.h"
#include "atelier-window.h"
#include "fixtures/sd-fixture.h"

static char *system_data_dirs;

typedef gboolean (*Condition) (gpointer data);

static gboolean
deadline_passed (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

#define wait_until(condition, data) (g_test_message ("waiting at line %d", __LINE__), \
                                    wait_until_func (condition, data))

static void
wait_until_func (Condition condition, gpointer data)
{
  gboolean timed_out = FALSE;
  guint source = g_timeout_add_seconds (20, deadline_passed, &timed_out);

  while (!condition (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (timed_out);
  g_source_remove (source);
}

static GtkWidget *
models_page (GtkWindow *window)
{
  GObject *page = gtk_widget_get_template_child (GTK_WIDGET (window), ATELIER_TYPE_WINDOW,
                                                 "models_page");

  g_assert_nonnull (page);
  return GTK_WIDGET (page);
}

static gpointer
page_child (GtkWindow *window, const char *name)
{
  GObject *child = gtk_widget_get_template_child (models_page (window),
                                                  ATELIER_TYPE_MODELS_PAGE, name);

  g_assert_nonnull (child);
  return child;
}

static guint
n_children (GtkWidget *widget)
{
  guint n = 0;

  for (GtkWidget *c = gtk_widget_get_first_child (widget); c != NULL;
       c = gtk_widget_get_next_sibling (c))
    n++;
  return n;
}

static gboolean
is_mapped (gpointer data)
{
  return gtk_widget_get_mapped (GTK_WIDGET (data));
}

static GtkWindow *
start_studio (AtelierApplication *app)
{
  g_autoptr (GError) error = NULL;
  GtkWindow *window;

  /* The isolated folders hide the system's too: GTK needs its MIME data and icons. */
  g_setenv ("XDG_DATA_DIRS", system_data_dirs, TRUE);
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, &error));
  g_assert_no_error (error);
  g_application_activate (G_APPLICATION (app));
  window = gtk_application_get_active_window (GTK_APPLICATION (app));
  wait_until (is_mapped, window);
  g_action_group_activate_action (G_ACTION_GROUP (window), "show-page",
                                  g_variant_new_string ("models"));
  return window;
}

static void
close_studio (GtkWindow *window)
{
  gtk_window_destroy (window);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

typedef struct
{
  GtkWindow *window;
  guint n_rows;
  guint n_emitted; /* ::files-changed so far */
  guint n_files;   /* in the last one */
} Listing;

static void
on_files_changed (AtelierModelsPage *page, const char *folder, GPtrArray *files,
                  Listing *listing)
{
  listing->n_emitted++;
  listing->n_files = files->len;
}

static gboolean
has_rows (gpointer data)
{
  Listing *listing = data;

  return n_children (page_child (listing->window, "models_list")) == listing->n_rows
         && listing->n_files == listing->n_rows;
}

static gboolean
listed_once (gpointer data)
{
  return ((Listing *) data)->n_emitted > 0;
}

static void
drop_files (GtkWidget *page, GList *files)
{
  g_autoptr (GListModel) controllers = gtk_widget_observe_controllers (page);
  g_auto (GValue) value = G_VALUE_INIT;
  gboolean handled = FALSE;
  GdkFileList *list = NULL;

  g_value_init (&value, GDK_TYPE_FILE_LIST);
  {
    g_autoptr (GSList) slist = NULL;

    for (GList *l = g_list_last (files); l != NULL; l = l->prev)
      slist = g_slist_prepend (slist, l->data);
    list = gdk_file_list_new_from_list (slist);
  }
  g_value_take_boxed (&value, list);
  for (guint i = 0; i < g_list_model_get_n_items (controllers); i++)
    {
      g_autoptr (GObject) controller = g_list_model_get_item (controllers, i);

      if (GTK_IS_DROP_TARGET (controller))
        g_signal_emit_by_name (controller, "drop", &value, 10.0, 10.0, &handled);
    }
  g_assert_true (handled);
}

static GtkWindow *
find_toplevel (GType type)
{
  GListModel *toplevels = gtk_window_get_toplevels ();

  for (guint i = 0; i < g_list_model_get_n_items (toplevels); i++)
    {
      g_autoptr (GObject) window = g_list_model_get_item (toplevels, i);

      if (G_TYPE_CHECK_INSTANCE_TYPE (window, type))
        return GTK_WINDOW (window);
    }
  return NULL;
}

static gboolean
dialog_shown (gpointer data)
{
  return find_toplevel (ADW_TYPE_MESSAGE_DIALOG) != NULL;
}

static void
test_add_and_remove (void)
{
  g_autofree char *folder = g_build_filename (g_get_user_data_dir (), "atelier", "models",
                                              NULL);
  g_autofree char *source_dir = g_build_filename (g_get_user_data_dir (), "elsewhere", NULL);
  g_autofree char *sd_source = g_build_filename (source_dir, "tiny-sd.safetensors", NULL);
  g_autofree char *notes_source = g_build_filename (source_dir, "notes.txt", NULL);
  g_autofree char *copied = g_build_filename (folder, "tiny-sd.safetensors", NULL);
  g_autofree char *notes_copied = g_build_filename (folder, "notes.txt", NULL);
  g_autoptr (AtelierApplication) app = atelier_application_new ();
  g_autoptr (GPtrArray) catalog = NULL;
  g_autoptr (GError) error = NULL;
  g_autolist (GFile) files = NULL;
  AtSdFixture fixture = { .layout = AT_SD_FIXTURE_SD1, .seed = 2 };
  Listing listing = { 0 };
  GtkWidget *row;
  GtkWindow *dialog;

  g_assert_cmpint (g_mkdir_with_parents (source_dir, 0755), ==, 0);
  /* The trash lives beside the home folder, which the isolated folders leave uncreated. */
  g_assert_cmpint (g_mkdir_with_parents (g_get_home_dir (), 0755), ==, 0);
  g_assert_true (at_sd_fixture_write (&fixture, sd_source, &error));
  g_assert_no_error (error);
  g_assert_true (g_file_set_contents (notes_source, "notes", -1, NULL));

  listing.window = start_studio (app);
  g_signal_connect (models_page (listing.window), "files-changed",
                    G_CALLBACK (on_files_changed), &listing);

  /* No models: the empty state offers both ways in. */
  wait_until (listed_once, &listing);
  g_assert_cmpstr (gtk_stack_get_visible_child_name (page_child (listing.window,
                                                                 "models_stack")),
                   ==, "empty");
  g_assert_cmpuint (n_children (adw_status_page_get_child (page_child (listing.window,
                                                                      "models_empty"))),
                    ==, 2);
  g_assert_true (gtk_widget_activate_action (models_page (listing.window),
                                             "models.browse-catalog", NULL));
  g_assert_cmpstr (gtk_stack_get_visible_child_name (page_child (listing.window,
                                                                 "models_stack")),
                   ==, "list");
  catalog = atelier_catalog_load (&error);
  g_assert_no_error (error);
  g_assert_cmpuint (catalog->len, >=, 5);
  g_assert_cmpuint (n_children (page_child (listing.window, "catalog_list")), ==, catalog->len);

  /* Dropped: the model is copied in, listed, and announced; the text file is refused. */
  files = g_list_append (files, g_file_new_for_path (sd_source));
  files = g_list_append (files, g_file_new_for_path (notes_source));
  drop_files (models_page (listing.window), files);
  listing.n_rows = 1;
  wait_until (has_rows, &listing);
  row = gtk_widget_get_first_child (page_child (listing.window, "models_list"));
  g_assert_cmpstr (adw_preferences_row_get_title (ADW_PREFERENCES_ROW (row)), ==,
                   "tiny-sd.safetensors");
  g_assert_true (g_str_has_prefix (adw_action_row_get_subtitle (ADW_ACTION_ROW (row)),
                                   "SD 1.x (safetensors) · F16 · "));
  g_assert_true (g_file_test (copied, G_FILE_TEST_IS_REGULAR));
  g_assert_false (g_file_test (notes_copied, G_FILE_TEST_EXISTS));
  g_assert_cmpuint (listing.n_emitted, >=, 2);

  /* Removed after the confirmation: the listing follows. */
  g_assert_true (gtk_widget_activate_action (models_page (listing.window), "models.remove",
                                             "s", "tiny-sd.safetensors"));
  wait_until (dialog_shown, NULL);
  dialog = find_toplevel (ADW_TYPE_MESSAGE_DIALOG);
  g_assert_cmpstr (adw_message_dialog_get_heading (ADW_MESSAGE_DIALOG (dialog)), ==,
                   "Remove tiny-sd.safetensors?");
  adw_message_dialog_response (ADW_MESSAGE_DIALOG (dialog), "remove");
  gtk_window_destroy (dialog);
  listing.n_rows = 0;
  wait_until (has_rows, &listing);
  g_assert_false (g_file_test (copied, G_FILE_TEST_EXISTS));
  g_assert_true (g_file_test (sd_source, G_FILE_TEST_IS_REGULAR));

  close_studio (listing.window);
}

static gpointer
prefs_child (GtkWindow *prefs, const char *name)
{
  GObject *child = gtk_widget_get_template_child (GTK_WIDGET (prefs), ATELIER_TYPE_PREFERENCES,
                                                  name);

  g_assert_nonnull (child);
  return child;
}

static gboolean
devices_listed (gpointer data)
{
  return g_list_model_get_n_items (adw_combo_row_get_model (prefs_child (data, "device_row")))
         >= 2;
}

static void
test_preferences (void)
{
  g_autoptr (AtelierApplication) app = atelier_application_new ();
  g_autoptr (GSettings) settings = g_settings_new ("org.atelier.Atelier");
  g_autofree char *scheme = NULL;
  g_autofree char *sampler = NULL;
  g_autofree char *negative = NULL;
  g_autofree char *device = NULL;
  g_auto (GStrv) accels = NULL;
  GtkWindow *window = start_studio (app);
  GtkWindow *prefs;

  accels = gtk_application_get_accels_for_action (GTK_APPLICATION (app), "app.preferences");
  g_assert_cmpstr (accels[0], ==, "<Control>comma");
  g_action_group_activate_action (G_ACTION_GROUP (app), "preferences", NULL);
  prefs = find_toplevel (ATELIER_TYPE_PREFERENCES);
  g_assert_nonnull (prefs);
  g_assert_true (gtk_window_get_transient_for (prefs) == window);

  /* Settings show in the rows, and the rows change the settings. */
  g_settings_set_int (settings, "image-steps", 33);
  g_assert_cmpint (gtk_spin_button_get_value_as_int (prefs_child (prefs, "steps_spin")), ==, 33);
  gtk_spin_button_set_value (prefs_child (prefs, "cfg_spin"), 4.5);
  g_assert_cmpfloat (g_settings_get_double (settings, "image-cfg"), ==, 4.5);
  adw_combo_row_set_selected (prefs_child (prefs, "style_row"), 2);
  scheme = g_settings_get_string (settings, "color-scheme");
  g_assert_cmpstr (scheme, ==, "dark");
  g_assert_cmpint (adw_style_manager_get_color_scheme (adw_style_manager_get_default ()), ==,
                   ADW_COLOR_SCHEME_FORCE_DARK);
  g_settings_set_string (settings, "image-sampler", "DDIM");
  g_assert_cmpuint (adw_combo_row_get_selected (prefs_child (prefs, "sampler_row")), ==, 4);
  adw_combo_row_set_selected (prefs_child (prefs, "sampler_row"), 3);
  sampler = g_settings_get_string (settings, "image-sampler");
  g_assert_cmpstr (sampler, ==, "DPM++ 2M Karras");
  gtk_editable_set_text (prefs_child (prefs, "negative_row"), "blurry");
  negative = g_settings_get_string (settings, "image-negative-prompt");
  g_assert_cmpstr (negative, ==, "blurry");

  /* Folders: the subtitle shows the path, or what an empty one means. */
  g_assert_false (gtk_widget_get_sensitive (prefs_child (prefs, "project_folder_clear")));
  g_settings_set_string (settings, "project-folder", "/srv/projects");
  g_assert_cmpstr (adw_action_row_get_subtitle (prefs_child (prefs, "project_folder_row")), ==,
                   "/srv/projects");
  g_assert_true (gtk_widget_get_sensitive (prefs_child (prefs, "project_folder_clear")));
  g_signal_emit_by_name (prefs_child (prefs, "project_folder_clear"), "clicked");
  g_assert_cmpstr (adw_action_row_get_subtitle (prefs_child (prefs, "project_folder_row")), ==,
                   "Not chosen yet");

  /* The GPUs are listed after "Automatic" (lavapipe at least). */
  wait_until (devices_listed, prefs);
  g_assert_cmpuint (adw_combo_row_get_selected (prefs_child (prefs, "device_row")), ==, 0);
  adw_combo_row_set_selected (prefs_child (prefs, "device_row"), 1);
  device = g_settings_get_string (settings, "device");
  g_assert_cmpstr (device, !=, "");

  gtk_window_destroy (prefs);
  close_studio (window);
  g_settings_reset (settings, "device");
}

int
main (int argc, char **argv)
{
  const char *data_dirs = g_getenv ("XDG_DATA_DIRS");

  system_data_dirs = g_strdup (data_dirs != NULL ? data_dirs : "/usr/local/share:/usr/share");
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  g_test_add_func ("/app/models-page/add-and-remove", test_add_and_remove);
  g_test_add_func ("/app/models-page/preferences", test_preferences);
  return g_test_run ();
}
