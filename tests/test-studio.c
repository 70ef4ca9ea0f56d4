/* test-studio.c: the studio's window under Xvfb, driven through its GActions like the
 * keyboard shortcuts drive it, checked through its template's widgets. */
#include <glib/gstdio.h>

#include "atelier-application.h"
#include "atelier-models-page.h"
#include "atelier-window.h"
#include "atelier-write-page.h"
#include "fixtures/text-model-fixture.h"

static const char *const pages[] = { "write", "image", "audio", "gallery", "models" };
static char *system_data_dirs;

typedef gboolean (*Condition) (gpointer data);

static gboolean
deadline_passed (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

/* The window maps and the models folder is listed asynchronously. */
static void
wait_until (Condition condition, gpointer data)
{
  gboolean timed_out = FALSE;
  /* Generous: lavapipe loads and runs the tiny model on two CPU cores. */
  guint source = g_timeout_add_seconds (120, deadline_passed, &timed_out);

  while (!condition (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (timed_out);
  g_source_remove (source);
}

static gpointer
template_child (GtkWindow *window, const char *name)
{
  GObject *child = gtk_widget_get_template_child (GTK_WIDGET (window), ATELIER_TYPE_WINDOW,
                                                  name);

  g_assert_nonnull (child);
  return child;
}

/* A widget of the Models page's template. */
static gpointer
models_child (GtkWindow *window, const char *name)
{
  GObject *child = gtk_widget_get_template_child (template_child (window, "models_page"),
                                                  ATELIER_TYPE_MODELS_PAGE, name);

  g_assert_nonnull (child);
  return child;
}

static gboolean
is_mapped (gpointer data)
{
  return gtk_widget_get_mapped (GTK_WIDGET (data));
}

static gboolean
models_listed (gpointer data)
{
  GtkWindow *window = data;
  GtkStack *models_stack = models_child (window, "models_stack");
  GtkWidget *models_list = models_child (window, "models_list");

  return g_str_equal (gtk_stack_get_visible_child_name (models_stack), "list")
         || gtk_widget_get_first_child (models_list) != NULL;
}

static gboolean
first_model_is_other (gpointer data)
{
  GtkWidget *row = gtk_widget_get_first_child (models_child (data, "models_list"));

  return row != NULL
         && g_str_equal (adw_preferences_row_get_title (ADW_PREFERENCES_ROW (row)),
                         "other.safetensors");
}

static gboolean
empty_state_shown (gpointer data)
{
  AdwStatusPage *empty = models_child (data, "models_empty");

  return strstr (adw_status_page_get_description (empty), "no-models-here") != NULL;
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
  g_assert_true (ATELIER_IS_WINDOW (window));
  wait_until (is_mapped, window);
  return window;
}

static void
close_studio (GtkWindow *window)
{
  gtk_window_destroy (window);
  while (g_main_context_iteration (NULL, FALSE))
    ;
}

static void
write_file (const char *folder, const char *name, gsize size)
{
  g_autofree char *path = g_build_filename (folder, name, NULL);
  g_autofree char *contents = g_malloc0 (size);
  g_autoptr (GError) error = NULL;

  g_assert_true (g_file_set_contents (path, contents, size, &error));
  g_assert_no_error (error);
}

static void
test_pages_and_models (void)
{
  g_autofree char *folder = g_build_filename (g_get_user_data_dir (), "atelier", "models",
                                              NULL);
  g_autoptr (AtelierApplication) app = atelier_application_new ();
  g_autoptr (GSettings) settings = g_settings_new ("org.atelier.Atelier");
  g_autofree char *other_folder = NULL;
  g_autofree char *size = g_format_size (4096);
  g_auto (GStrv) accels = NULL;
  g_autoptr (GListModel) stack_pages = NULL;
  GtkWindow *window;
  GtkStack *stack;
  AdwWindowTitle *title;
  GtkWidget *row;

  g_assert_cmpint (g_mkdir_with_parents (folder, 0755), ==, 0);
  write_file (folder, "tiny.gguf", 4096);
  write_file (folder, "notes.txt", 10);

  window = start_studio (app);
  stack = template_child (window, "stack");
  title = template_child (window, "page_title");

  stack_pages = G_LIST_MODEL (gtk_stack_get_pages (stack));
  g_assert_cmpuint (g_list_model_get_n_items (stack_pages), ==, G_N_ELEMENTS (pages));
  for (guint i = G_N_ELEMENTS (pages); i-- > 0;)
    {
      GtkWidget *page = gtk_stack_get_child_by_name (stack, pages[i]);

      g_assert_nonnull (page);
      g_action_group_activate_action (G_ACTION_GROUP (window), "show-page",
                                      g_variant_new_string (pages[i]));
      g_assert_cmpstr (gtk_stack_get_visible_child_name (stack), ==, pages[i]);
      g_assert_cmpstr (adw_window_title_get_title (title), ==,
                       gtk_stack_page_get_title (gtk_stack_get_page (stack, page)));
    }
  accels = gtk_application_get_accels_for_action (GTK_APPLICATION (app),
                                                  "win.show-page::models");
  g_assert_cmpstr (accels[0], ==, "<Alt>5");
  g_assert_true (g_action_group_has_action (G_ACTION_GROUP (app), "quit"));
  g_assert_true (g_action_group_has_action (G_ACTION_GROUP (app), "about"));
  g_assert_true (g_action_group_has_action (G_ACTION_GROUP (window), "show-help-overlay"));

  /* lavapipe in the tests: a device, and the banner saying it is slow. */
  g_assert_cmpstr (adw_window_title_get_subtitle (title), !=, "");
  g_assert_true (gtk_widget_get_visible (template_child (window, "software_bar")));
  g_assert_false (gtk_widget_get_visible (template_child (window, "error_bar")));

  wait_until (models_listed, window);
  row = gtk_widget_get_first_child (models_child (window, "models_list"));
  g_assert_true (ADW_IS_ACTION_ROW (row));
  g_assert_cmpstr (adw_preferences_row_get_title (ADW_PREFERENCES_ROW (row)), ==,
                   "tiny.gguf");
  /* Zeros are no GGUF file: its size, then why it cannot be used. */
  g_assert_true (g_str_has_prefix (adw_action_row_get_subtitle (ADW_ACTION_ROW (row)), size));
  g_assert_null (gtk_widget_get_next_sibling (row));

  /* Another folder in the settings: listed again. */
  other_folder = g_build_filename (g_get_user_data_dir (), "other-models", NULL);
  g_assert_cmpint (g_mkdir_with_parents (other_folder, 0755), ==, 0);
  write_file (other_folder, "other.safetensors", 100);
  g_settings_set_string (settings, "models-folder", other_folder);
  wait_until (first_model_is_other, window);
  g_settings_reset (settings, "models-folder");

  close_studio (window);
}

/* No device and an empty, missing models folder: the window says so, nothing crashes. */
static void
test_no_device_empty_folder (void)
{
  g_autofree char *folder = g_build_filename (g_get_user_data_dir (), "no-models-here",
                                              NULL);
  g_autoptr (GSettings) settings = g_settings_new ("org.atelier.Atelier");
  g_autoptr (AtelierApplication) app = NULL;
  GtkWindow *window;

  g_settings_set_string (settings, "device", "no-such-device");
  g_settings_set_string (settings, "models-folder", folder);
  app = atelier_application_new ();
  window = start_studio (app);

  g_assert_true (gtk_widget_get_visible (template_child (window, "error_bar")));
  g_assert_false (gtk_widget_get_visible (template_child (window, "software_bar")));
  wait_until (empty_state_shown, window);
  g_assert_true (g_file_test (folder, G_FILE_TEST_IS_DIR));
  g_assert_cmpstr (gtk_stack_get_visible_child_name (models_child (window, "models_stack")),
                   ==, "empty");

  close_studio (window);
  g_settings_reset (settings, "device");
  g_settings_reset (settings, "models-folder");
}

static gpointer
page_child (AtelierWritePage *page, const char *name)
{
  GObject *child = gtk_widget_get_template_child (GTK_WIDGET (page), ATELIER_TYPE_WRITE_PAGE,
                                                  name);

  g_assert_nonnull (child);
  return child;
}

static gboolean
page_ready (gpointer data)
{
  return g_list_model_get_n_items (page_child (data, "model_names")) == 1
         && gtk_text_view_get_editable (page_child (data, "view"));
}

static gboolean
page_idle (gpointer data)
{
  return !atelier_write_page_is_busy (data);
}

static char *
buffer_text (GtkTextBuffer *buffer)
{
  GtkTextIter start, end;

  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

typedef struct
{
  GtkTextBuffer *buffer;
  const char *path;
  gsize length;
} DraftCheck;

static gboolean
draft_saved (gpointer data)
{
  DraftCheck *check = data;
  g_autofree char *contents = NULL;
  g_autofree char *text = buffer_text (check->buffer);

  return g_file_get_contents (check->path, &contents, NULL, NULL)
         && g_str_equal (contents, text);
}

static gboolean
text_grew (gpointer data)
{
  DraftCheck *check = data;

  return (gsize) gtk_text_buffer_get_char_count (check->buffer) > check->length;
}

static void
write_fixture_model (const char *folder)
{
  AtTextFixture fixture = { .arch = "llama", .type = AT_TYPE_Q8_0, .seed = 7 };
  g_autofree char *vocab = g_build_filename (AT_VOCAB_DIR, "ggml-vocab-llama-spm.gguf", NULL);
  g_autofree char *path = g_build_filename (folder, "tiny-llama.gguf", NULL);
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) bytes = NULL;

  fixture.vocab_path = vocab;
  bytes = at_text_fixture_build (&fixture, &error);
  g_assert_no_error (error);
  g_assert_true (g_file_set_contents (path, g_bytes_get_data (bytes, NULL),
                                      g_bytes_get_size (bytes), &error));
  g_assert_no_error (error);
}

/* Load the fixture, type, Continue in the middle of the text: the continuation lands at
 * the cursor and one undo takes it all back; the draft is saved; Stop stops. */
static void
test_write_page (void)
{
  static const char before[] = "Once upon a time there was a dragon.";
  static const char after[] = " The end.";
  g_autofree char *folder = g_build_filename (g_get_user_data_dir (), "atelier", "models",
                                              NULL);
  g_autofree char *draft = g_build_filename (g_get_user_data_dir (), "atelier", "documents",
                                             "draft.md", NULL);
  g_autoptr (AtelierApplication) app = atelier_application_new ();
  g_autofree char *typed = g_strconcat (before, after, NULL);
  g_autofree char *continued = NULL;
  g_autofree char *stopped = NULL;
  AtelierWritePage *page;
  GtkWidget *continue_button;
  GtkTextBuffer *buffer;
  GtkTextIter cursor;
  GtkWindow *window;
  DraftCheck check;

  g_assert_cmpint (g_mkdir_with_parents (folder, 0755), ==, 0);
  write_fixture_model (folder);
  window = start_studio (app);
  g_action_group_activate_action (G_ACTION_GROUP (window), "show-page",
                                  g_variant_new_string ("write"));
  page = template_child (window, "write_page");
  wait_until (page_ready, page);
  buffer = gtk_text_view_get_buffer (page_child (page, "view"));
  continue_button = page_child (page, "continue_button");

  /* No model yet: Continue says what to do first. */
  g_assert_false (gtk_widget_get_sensitive (continue_button));
  g_assert_cmpstr (gtk_widget_get_tooltip_text (continue_button), ==,
                   "Load a model to continue the text");
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "write.load", NULL));
  g_assert_true (atelier_write_page_is_busy (page));
  wait_until (page_idle, page);
  g_assert_true (gtk_widget_get_sensitive (continue_button));

  gtk_text_buffer_begin_user_action (buffer);
  gtk_text_buffer_insert_interactive_at_cursor (buffer, typed, -1, TRUE);
  gtk_text_buffer_end_user_action (buffer);
  g_assert_cmpstr (gtk_label_get_text (page_child (page, "word_count")), ==, "10 words");
  gtk_text_buffer_get_iter_at_offset (buffer, &cursor, strlen (before));
  gtk_text_buffer_place_cursor (buffer, &cursor);

  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "write.continue", NULL));
  g_assert_true (atelier_write_page_is_busy (page));
  g_assert_false (gtk_text_view_get_editable (page_child (page, "view")));
  wait_until (page_idle, page);
  continued = buffer_text (buffer);
  g_test_message ("continued: %s", continued);
  g_assert_true (g_str_has_prefix (continued, before));
  g_assert_true (g_str_has_suffix (continued, after));
  g_assert_cmpuint (strlen (continued), >, strlen (typed));

  gtk_text_buffer_undo (buffer);
  g_assert_cmpstr (buffer_text (buffer), ==, typed);

  check = (DraftCheck) { .buffer = buffer, .path = draft, .length = strlen (typed) };
  wait_until (draft_saved, &check);

  /* Stop after the first piece: nothing more arrives, and Continue works again. */
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "write.continue", NULL));
  wait_until (text_grew, &check);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "write.stop", NULL));
  wait_until (page_idle, page);
  stopped = buffer_text (buffer);
  g_assert_cmpuint (strlen (stopped), <, strlen (continued));
  g_assert_true (gtk_widget_get_sensitive (continue_button));
  gtk_text_buffer_undo (buffer);
  g_assert_cmpstr (buffer_text (buffer), ==, typed);

  close_studio (window);
}

/* The Write page with the fixture model loaded and text typed into the empty draft. */
static AtelierWritePage *
start_writing (AtelierApplication *app, const char *text, GtkWindow **window)
{
  g_autofree char *folder = g_build_filename (g_get_user_data_dir (), "atelier", "models",
                                              NULL);
  AtelierWritePage *page;
  GtkTextBuffer *buffer;

  g_assert_cmpint (g_mkdir_with_parents (folder, 0755), ==, 0);
  write_fixture_model (folder);
  *window = start_studio (app);
  g_action_group_activate_action (G_ACTION_GROUP (*window), "show-page",
                                  g_variant_new_string ("write"));
  page = template_child (*window, "write_page");
  wait_until (page_ready, page);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "write.load", NULL));
  wait_until (page_idle, page);
  g_assert_cmpstr (atelier_application_get_text_model_name (app), ==, "tiny-llama.gguf");
  g_assert_true (AT_IS_LANGUAGE_MODEL (atelier_application_get_text_model (app)));

  buffer = gtk_text_view_get_buffer (page_child (page, "view"));
  gtk_text_buffer_begin_user_action (buffer);
  gtk_text_buffer_insert_interactive_at_cursor (buffer, text, -1, TRUE);
  gtk_text_buffer_end_user_action (buffer);
  return page;
}

static void
select_chars (GtkTextBuffer *buffer, const char *text, const char *part)
{
  GtkTextIter start, end;
  glong offset = g_utf8_pointer_to_offset (text, strstr (text, part));

  gtk_text_buffer_get_iter_at_offset (buffer, &start, offset);
  gtk_text_buffer_get_iter_at_offset (buffer, &end, offset + g_utf8_strlen (part, -1));
  gtk_text_buffer_select_range (buffer, &start, &end);
}

/* The text between before and after, which must be intact around it. */
static char *
replaced_part (GtkTextBuffer *buffer, const char *before, const char *after)
{
  g_autofree char *text = buffer_text (buffer);

  g_test_message ("text: %s", text);
  g_assert_true (g_str_has_prefix (text, before));
  g_assert_true (g_str_has_suffix (text, after));
  g_assert_cmpuint (strlen (text), >=, strlen (before) + strlen (after));
  return g_strndup (text + strlen (before), strlen (text) - strlen (before) - strlen (after));
}

typedef struct
{
  GtkTextBuffer *buffer;
  const char *original;
} ChangeCheck;

static gboolean
text_changed (gpointer data)
{
  ChangeCheck *check = data;
  g_autofree char *text = buffer_text (check->buffer);

  return !g_str_equal (text, check->original);
}

static gboolean
popover_mapped (gpointer data)
{
  return gtk_widget_get_mapped (GTK_WIDGET (data));
}

/* $ATELIER_WRITE_SCREENSHOTS names a folder for pictures of button's popover open (which
 * the window's own snapshot leaves out): the X screen as a person sees it. Only then is
 * the popover opened: GTK 4.8 finds no monitor for a popover menu under Xvfb and says so
 * with a critical, which is let pass here alone. */
static void
screenshot_popover (GtkMenuButton *button, const char *name)
{
  const char *folder = g_getenv ("ATELIER_WRITE_SCREENSHOTS");
  g_autofree char *path = NULL;
  g_autofree char *command = NULL;
  g_autoptr (GError) error = NULL;
  int status = 0;
  GLogLevelFlags fatal;

  if (folder == NULL)
    return;
  fatal = g_log_set_always_fatal (G_LOG_FATAL_MASK);
  /* A folded window shows the page list: the page is the next leaf. */
  adw_leaflet_navigate (ADW_LEAFLET (gtk_widget_get_ancestor (GTK_WIDGET (button),
                                                              ADW_TYPE_LEAFLET)),
                        ADW_NAVIGATION_DIRECTION_FORWARD);
  gtk_menu_button_popup (button);
  wait_until (popover_mapped, gtk_menu_button_get_popover (button));
  /* Enough frames for the leaflet's transition and the popover to be drawn. */
  for (int i = 0; i < 50; i++)
    {
      g_usleep (20000);
      while (g_main_context_iteration (NULL, FALSE))
        ;
    }
  path = g_build_filename (folder, name, NULL);
  command = g_strdup_printf ("import -window root %s", path);
  g_assert_true (g_spawn_command_line_sync (command, NULL, NULL, &status, &error));
  g_assert_no_error (error);
  g_assert_true (g_spawn_check_wait_status (status, &error));
  gtk_menu_button_popdown (button);
  g_log_set_always_fatal (fatal);
}

/* The fixture model rewrites a selection: the reply replaces it, intact text around it,
 * one undo gives the original back exactly, the reply lands in the library; Stop keeps
 * the partial reply; with no selection the paragraph at the cursor is worked on. */
static void
test_write_actions (void)
{
  static const char before[] = "Notes.\n\nThe ";
  static const char selected[] = "quick brown fox";
  static const char after[] = " jumps over the lazy dog.\n\nLast line.";
  g_autoptr (AtelierApplication) app = atelier_application_new ();
  g_autofree char *original = g_strconcat (before, selected, after, NULL);
  g_autofree char *rewritten = NULL;
  g_autofree char *partial = NULL;
  g_autofree char *summary = NULL;
  g_autofree char *contents = NULL;
  g_autofree char *prompt = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtelierAsset) asset = NULL;
  AtelierLibrary *library;
  AtelierWritePage *page;
  GtkMenuButton *ai_button;
  GtkTextBuffer *buffer;
  GtkTextIter start, end, cursor;
  GtkWindow *window;
  ChangeCheck check;
  guint n_assets;

  page = start_writing (app, original, &window);
  buffer = gtk_text_view_get_buffer (page_child (page, "view"));
  ai_button = page_child (page, "ai_button");
  library = atelier_application_get_library (app, &error);
  g_assert_no_error (error);
  n_assets = g_list_model_get_n_items (G_LIST_MODEL (library));
  g_assert_true (gtk_widget_get_sensitive (GTK_WIDGET (ai_button)));

  select_chars (buffer, original, selected);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "write.run", "s", "rewrite"));
  g_assert_true (atelier_write_page_is_busy (page));
  g_assert_false (gtk_widget_get_sensitive (GTK_WIDGET (ai_button)));
  wait_until (page_idle, page);
  rewritten = replaced_part (buffer, before, after);
  g_assert_cmpstr (rewritten, !=, "");
  g_assert_cmpstr (rewritten, !=, selected);
  /* The reply is selected, ready for another action. */
  g_assert_true (gtk_text_buffer_get_selection_bounds (buffer, &start, &end));
  g_assert_cmpint (gtk_text_iter_get_offset (&start), ==, g_utf8_strlen (before, -1));
  g_assert_cmpint (gtk_text_iter_get_offset (&end), ==,
                   g_utf8_strlen (before, -1) + g_utf8_strlen (rewritten, -1));
  g_assert_true (g_str_has_prefix (gtk_label_get_text (page_child (page, "status_label")),
                                   "Done: "));

  /* Kept in the library: the reply, what it was made from and how. */
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, n_assets + 1);
  asset = g_list_model_get_item (G_LIST_MODEL (library), 0);
  g_assert_cmpint (atelier_asset_get_kind (asset), ==, ATELIER_ASSET_TEXT);
  g_assert_true (g_str_has_suffix (atelier_asset_get_path (asset), ".md"));
  g_assert_true (g_file_get_contents (atelier_asset_get_path (asset), &contents, NULL, &error));
  g_assert_no_error (error);
  g_assert_cmpstr (contents, ==, rewritten);
  prompt = g_strconcat ("Rewrite: ", selected, NULL);
  g_assert_cmpstr (atelier_asset_get_prompt (asset), ==, prompt);
  g_assert_cmpstr (atelier_asset_get_model (asset), ==, "tiny-llama.gguf");
  g_assert_nonnull (strstr (atelier_asset_get_parameters (asset), "\"action\":\"rewrite\""));
  g_assert_nonnull (strstr (atelier_asset_get_parameters (asset), "\"model\":\"tiny-llama.gguf\""));

  screenshot_popover (ai_button, "write-ai-menu.png");

  gtk_text_buffer_undo (buffer);
  g_assert_cmpstr (buffer_text (buffer), ==, original);

  /* Stop as soon as the reply starts: what came is kept, and undone in one step. */
  select_chars (buffer, original, selected);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "write.run", "s", "expand"));
  check = (ChangeCheck) { .buffer = buffer, .original = original };
  wait_until (text_changed, &check);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "write.stop", NULL));
  wait_until (page_idle, page);
  partial = replaced_part (buffer, before, after);
  g_assert_cmpstr (partial, !=, "");
  g_assert_true (g_str_has_prefix (gtk_label_get_text (page_child (page, "status_label")),
                                   "Stopped after "));
  gtk_text_buffer_undo (buffer);
  g_assert_cmpstr (buffer_text (buffer), ==, original);

  /* No selection: the paragraph at the cursor, and only it. */
  gtk_text_buffer_get_iter_at_offset (buffer, &cursor, g_utf8_strlen (before, -1) + 2);
  gtk_text_buffer_place_cursor (buffer, &cursor);
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "write.run", "s",
                                             "summarise"));
  wait_until (page_idle, page);
  summary = replaced_part (buffer, "Notes.\n\n", "\n\nLast line.");
  g_assert_cmpstr (summary, !=, "The quick brown fox jumps over the lazy dog.");
  gtk_text_buffer_undo (buffer);
  g_assert_cmpstr (buffer_text (buffer), ==, original);

  close_studio (window);
}

static GtkWidget *
find_unload_button (GtkWidget *widget)
{
  if (GTK_IS_BUTTON (widget)
      && g_strcmp0 (gtk_actionable_get_action_name (GTK_ACTIONABLE (widget)), "status.unload")
         == 0)
    return widget;
  for (GtkWidget *child = gtk_widget_get_first_child (widget); child != NULL;
       child = gtk_widget_get_next_sibling (child))
    {
      GtkWidget *found = find_unload_button (child);

      if (found != NULL)
        return found;
    }
  return NULL;
}

/* The header bar's status lists the loaded model; its Unload button empties the
 * registry, and the Write page lets the model go and says to load one. */
static void
test_status_unload (void)
{
  g_autoptr (AtelierApplication) app = atelier_application_new ();
  AtelierWritePage *page;
  GtkMenuButton *status_button;
  GtkPopover *popover;
  GtkWidget *unload;
  GtkWindow *window;

  page = start_writing (app, "Some text.", &window);
  status_button = GTK_MENU_BUTTON (adw_bin_get_child (template_child (window, "status")));
  popover = gtk_menu_button_get_popover (status_button);
  /* lavapipe: the button warns that generation will be slow. */
  g_assert_nonnull (strstr (gtk_widget_get_tooltip_text (GTK_WIDGET (status_button)),
                            "generation will be slow"));

  screenshot_popover (status_button, "status-popover.png");
  unload = find_unload_button (GTK_WIDGET (popover));
  g_assert_nonnull (unload);
  g_assert_true (gtk_widget_get_visible (unload));
  /* What a click does. */
  g_signal_emit_by_name (unload, "clicked");

  g_assert_null (atelier_application_get_text_model (app));
  g_assert_null (find_unload_button (GTK_WIDGET (popover)));
  g_assert_false (gtk_widget_get_sensitive (page_child (page, "ai_button")));
  g_assert_false (gtk_widget_get_sensitive (page_child (page, "continue_button")));
  g_assert_cmpstr (gtk_label_get_text (page_child (page, "status_label")), ==,
                   "Load a model to continue the text or rewrite it");

  close_studio (window);
}

int
main (int argc, char **argv)
{
  const char *data_dirs = g_getenv ("XDG_DATA_DIRS");

  system_data_dirs = g_strdup (data_dirs != NULL ? data_dirs : "/usr/local/share:/usr/share");
  /* Isolated HOME and XDG folders: the models folder is a fresh temporary one. */
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  g_test_add_func ("/app/studio/pages-and-models", test_pages_and_models);
  g_test_add_func ("/app/studio/no-device-empty-folder", test_no_device_empty_folder);
  g_test_add_func ("/app/studio/write-page", test_write_page);
  g_test_add_func ("/app/studio/write-actions", test_write_actions);
  g_test_add_func ("/app/studio/status-unload", test_status_unload);
  return g_test_run ();
}
