/* test-audio-page.c: the Audio page in the studio's real window under Xvfb: a script is
 * spoken, previewed, kept in the library and saved; cancelling keeps nothing. With
 * $ATELIER_SCREENSHOT set, the window after speaking is saved there as a PNG. */
#include <glib/gstdio.h>

#include "atelier-application.h"
#include "atelier-audio-page.h"
#include "atelier-waveform.h"
#include "atelier-window.h"

static char *system_data_dirs;

typedef gboolean (*Condition) (gpointer data);

static gboolean
deadline_passed (gpointer data)
{
  *(gboolean *) data = TRUE;
  return G_SOURCE_REMOVE;
}

static void
wait_until (Condition condition, gpointer data)
{
  gboolean timed_out = FALSE;
  guint source = g_timeout_add_seconds (120, deadline_passed, &timed_out);

  while (!condition (data) && !timed_out)
    g_main_context_iteration (NULL, TRUE);
  g_assert_false (timed_out);
  g_source_remove (source);
}

static gpointer
page_child (AtelierAudioPage *page, const char *name)
{
  GObject *child = gtk_widget_get_template_child (GTK_WIDGET (page), ATELIER_TYPE_AUDIO_PAGE,
                                                  name);

  g_assert_nonnull (child);
  return child;
}

static gboolean
is_mapped (gpointer data)
{
  return gtk_widget_get_mapped (GTK_WIDGET (data));
}

static gboolean
voices_listed (gpointer data)
{
  return g_list_model_get_n_items (page_child (data, "voice_names")) > 0;
}

static gboolean
page_idle (gpointer data)
{
  return !atelier_audio_page_is_busy (data);
}

static gboolean
media_settled (gpointer data)
{
  GtkMediaStream *stream = data;

  return gtk_media_stream_is_prepared (stream) || gtk_media_stream_get_error (stream) != NULL;
}

/* Activates the page's action; TRUE when that started speaking. The Speak button, bound
 * to the action, is sensitive exactly when it is enabled. */
static gboolean
speak (AtelierAudioPage *page)
{
  gboolean sensitive = gtk_widget_get_sensitive (page_child (page, "speak_button"));

  gtk_widget_activate_action (GTK_WIDGET (page), "audio.speak", NULL);
  g_assert_cmpint (sensitive, ==, atelier_audio_page_is_busy (page));
  return atelier_audio_page_is_busy (page);
}

static char *
buffer_text (GtkTextBuffer *buffer)
{
  GtkTextIter start, end;

  gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

static void
save_screenshot (GtkWidget *window, const char *path)
{
  int width = gtk_widget_get_width (window), height = gtk_widget_get_height (window);
  g_autoptr (GdkPaintable) paintable = gtk_widget_paintable_new (window);
  GtkSnapshot *snapshot = gtk_snapshot_new ();
  g_autoptr (GskRenderNode) node = NULL;
  g_autoptr (GdkTexture) texture = NULL;

  gboolean drawn = FALSE;

  /* Some frames, so that the window shows the result before it is rendered again. */
  g_timeout_add (500, deadline_passed, &drawn);
  while (!drawn)
    g_main_context_iteration (NULL, TRUE);
  gdk_paintable_snapshot (paintable, snapshot, width, height);
  node = gtk_snapshot_free_to_node (snapshot);
  texture = gsk_renderer_render_texture (gtk_native_get_renderer (GTK_NATIVE (window)), node,
                                         &GRAPHENE_RECT_INIT (0, 0, width, height));
  g_assert_true (gdk_texture_save_to_png (texture, path));
}

static gboolean
file_starts_with (const char *path, const char *magic)
{
  g_autofree char *contents = NULL;
  gsize length = 0;

  return g_file_get_contents (path, &contents, &length, NULL) && length > strlen (magic)
         && memcmp (contents, magic, strlen (magic)) == 0;
}

static void
test_speak (void)
{
  static const char script[] = "Hello from the Audio page. This voice-over lands in the Gallery.";
  g_autofree char *library_folder = g_build_filename (g_get_user_data_dir (), "test-library",
                                                      NULL);
  g_autofree char *ogg = g_build_filename (g_get_user_data_dir (), "exported.ogg", NULL);
  g_autoptr (GSettings) settings = g_settings_new ("org.atelier.Atelier");
  g_autoptr (AtelierApplication) app = NULL;
  g_autoptr (GError) error = NULL;
  g_autoptr (GString) long_script = g_string_new (NULL);
  g_autofree char *undone = NULL;
  const char *screenshot = g_getenv ("ATELIER_SCREENSHOT");
  AtelierLibrary *library;
  AtelierAudioPage *page;
  AtelierAsset *asset;
  GtkMediaStream *stream;
  GtkTextBuffer *buffer;
  GtkWindow *window;
  const char *selected;

  /* The isolated folders hide the system's too: GTK needs its MIME data and icons. */
  g_setenv ("XDG_DATA_DIRS", system_data_dirs, TRUE);
  g_setenv ("ATELIER_LIBRARY_DIR", library_folder, TRUE);
  g_settings_set_int (settings, "speech-rate", 190);
  app = atelier_application_new ();
  g_assert_true (g_application_register (G_APPLICATION (app), NULL, &error));
  g_assert_no_error (error);
  g_application_activate (G_APPLICATION (app));
  window = gtk_application_get_active_window (GTK_APPLICATION (app));
  g_assert_true (ATELIER_IS_WINDOW (window));
  gtk_window_set_default_size (window, 1100, 720);
  wait_until (is_mapped, window);
  g_action_group_activate_action (G_ACTION_GROUP (window), "show-page",
                                  g_variant_new_string ("audio"));
  page = ATELIER_AUDIO_PAGE (gtk_widget_get_template_child (GTK_WIDGET (window),
                                                            ATELIER_TYPE_WINDOW,
                                                            "audio_page"));
  library = atelier_application_get_library (app, &error);
  g_assert_no_error (error);
  buffer = gtk_text_view_get_buffer (page_child (page, "script_view"));

  /* No script yet: the empty state explains the page, and Speak does nothing. */
  wait_until (voices_listed, page);
  selected = gtk_string_object_get_string (
    gtk_drop_down_get_selected_item (page_child (page, "voice_dropdown")));
  g_test_message ("selected voice: %s", selected);
  g_assert_true (g_str_has_suffix (selected, "— en-gb"));
  g_assert_cmpint (gtk_spin_button_get_value_as_int (page_child (page, "rate_spin")), ==, 190);
  g_assert_true (gtk_widget_get_visible (page_child (page, "script_empty")));
  g_assert_false (gtk_widget_get_visible (page_child (page, "preview_box")));
  g_assert_false (speak (page));

  atelier_audio_page_set_text (page, script);
  g_assert_false (gtk_widget_get_visible (page_child (page, "script_empty")));
  gtk_spin_button_set_value (page_child (page, "rate_spin"), 200);
  g_assert_cmpint (g_settings_get_int (settings, "speech-rate"), ==, 200);

  g_assert_true (speak (page));
  g_assert_true (gtk_widget_get_visible (page_child (page, "busy_box")));
  wait_until (page_idle, page);
  g_assert_false (gtk_widget_get_visible (page_child (page, "busy_box")));
  g_assert_true (gtk_widget_get_visible (page_child (page, "preview_box")));
  g_assert_cmpint (atelier_waveform_get_duration (page_child (page, "waveform")), >,
                   2 * G_USEC_PER_SEC);
  g_test_message ("preview: %s", gtk_label_get_text (page_child (page, "preview_label")));

  /* The library has the voice-over, with what made it. */
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 1);
  asset = g_list_model_get_item (G_LIST_MODEL (library), 0);
  g_assert_cmpint (atelier_asset_get_kind (asset), ==, ATELIER_ASSET_AUDIO);
  g_assert_cmpstr (atelier_asset_get_prompt (asset), ==, script);
  g_assert_cmpstr (atelier_asset_get_parameters (asset), ==,
                   "{\"voice\":\"en\",\"rate\":200,\"engine\":\"eSpeak NG\"}");
  g_assert_true (g_str_has_prefix (atelier_asset_get_path (asset), library_folder));
  g_assert_true (file_starts_with (atelier_asset_get_path (asset), "RIFF"));

  stream = gtk_media_controls_get_media_stream (page_child (page, "media_controls"));
  g_assert_nonnull (stream);
  wait_until (media_settled, stream);
  g_test_message ("media: prepared %d, error %s", gtk_media_stream_is_prepared (stream),
                  gtk_media_stream_get_error (stream) != NULL
                  ? gtk_media_stream_get_error (stream)->message : "none");
  if (screenshot != NULL)
    save_screenshot (GTK_WIDGET (window), screenshot);

  /* Saved as Ogg Vorbis. */
  atelier_audio_page_export (page, ogg);
  g_assert_true (atelier_audio_page_is_busy (page));
  wait_until (page_idle, page);
  g_assert_true (file_starts_with (ogg, "OggS"));

  /* Cancelled at once: nothing more in the library, and the last result stays. */
  for (guint i = 0; i < 100; i++)
    g_string_append (long_script, "A long script that is cancelled before its end. ");
  atelier_audio_page_set_text (page, long_script->str);
  g_assert_true (speak (page));
  g_assert_true (gtk_widget_activate_action (GTK_WIDGET (page), "audio.cancel", NULL));
  wait_until (page_idle, page);
  g_assert_cmpuint (g_list_model_get_n_items (G_LIST_MODEL (library)), ==, 1);
  g_assert_true (gtk_widget_get_visible (page_child (page, "preview_box")));

  /* Replacing the script is one step to undo. */
  gtk_text_buffer_undo (buffer);
  undone = buffer_text (buffer);
  g_assert_cmpstr (undone, ==, script);

  g_object_unref (asset);
  gtk_window_destroy (window);
  while (g_main_context_iteration (NULL, FALSE))
    ;
  g_settings_reset (settings, "speech-rate");
}

int
main (int argc, char **argv)
{
  const char *data_dirs = g_getenv ("XDG_DATA_DIRS");

  system_data_dirs = g_strdup (data_dirs != NULL ? data_dirs : "/usr/local/share:/usr/share");
  g_test_init (&argc, &argv, G_TEST_OPTION_ISOLATE_DIRS, NULL);
  g_test_add_func ("/app/audio-page/speak", test_speak);
  return g_test_run ();
}
