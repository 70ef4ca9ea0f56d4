/* atelier-audio-page.c: AtelierAudioPage, built from ui/atelier-audio-page.ui. */
#include "config.h"

#include <glib/gi18n.h>
#include <json-glib/json-glib.h>

#include "atelier-audio-page.h"
#include "atelier-speech.h"
#include "atelier-waveform.h"

/* One spoken script: what was asked, and once spoken its WAV and where it was written. */
typedef struct
{
  char *text;
  char *voice;
  char *voice_name;
  int rate;
  GBytes *wav;
  char *path;
  gboolean in_library;
} Speech;

struct _AtelierAudioPage
{
  AdwBin parent_instance;

  GtkDropDown *voice_dropdown;
  GtkStringList *voice_names;
  GtkSpinButton *rate_spin;
  GtkWidget *speak_button;
  GtkWidget *busy_box;
  GtkProgressBar *speak_progress;
  GtkTextView *script_view;
  GtkWidget *script_empty;
  GtkWidget *preview_box;
  AtelierWaveform *waveform;
  GtkMediaControls *media_controls;
  GtkLabel *preview_label;

  AtelierApplication *app;
  GSettings *settings;
  GPtrArray *voices;
  /* Set while the saved voice is selected, so that selecting it does not save it back. */
  gboolean selecting_voice;
  GCancellable *cancellable;
  Speech *speaking;
  Speech *result;
  GtkMediaStream *media;
  GtkFileChooserNative *chooser;
  guint n_saving;
};

G_DEFINE_FINAL_TYPE (AtelierAudioPage, atelier_audio_page, ADW_TYPE_BIN)

static void
speech_free (Speech *speech)
{
  g_free (speech->text);
  g_free (speech->voice);
  g_free (speech->voice_name);
  g_clear_pointer (&speech->wav, g_bytes_unref);
  g_free (speech->path);
  g_free (speech);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (Speech, speech_free)

static GtkTextBuffer *
page_buffer (AtelierAudioPage *self)
{
  return gtk_text_view_get_buffer (self->script_view);
}

/* The async callbacks hold a reference to the page, so they may run after the window
 * closed and the template's widgets are gone. */
static gboolean
is_disposed (AtelierAudioPage *self)
{
  return self->script_view == NULL;
}

static void
show_toast (AtelierAudioPage *self, const char *message, guint timeout)
{
  /* A toast's title is markup; messages quote file names and the user's text. */
  g_autofree char *markup = g_markup_escape_text (message, -1);
  AdwToast *toast = adw_toast_new (markup);

  adw_toast_set_timeout (toast, timeout);
  adw_toast_overlay_add_toast (ADW_TOAST_OVERLAY (adw_bin_get_child (ADW_BIN (self))), toast);
}

static void show_error (AtelierAudioPage *self, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
show_error (AtelierAudioPage *self, const char *format, ...)
{
  g_autofree char *message = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  show_toast (self, message, 0);
}

static AtelierVoice *
selected_voice (AtelierAudioPage *self)
{
  guint selected = gtk_drop_down_get_selected (self->voice_dropdown);

  if (self->voices == NULL || selected >= self->voices->len)
    return NULL;
  return g_ptr_array_index (self->voices, selected);
}

static char *
script_text (AtelierAudioPage *self)
{
  GtkTextIter start, end;

  gtk_text_buffer_get_bounds (page_buffer (self), &start, &end);
  return gtk_text_buffer_get_text (page_buffer (self), &start, &end, FALSE);
}

static void
update_actions (AtelierAudioPage *self)
{
  gboolean speaking = self->cancellable != NULL;
  gboolean has_text = gtk_text_buffer_get_char_count (page_buffer (self)) > 0;
  gboolean has_result = self->result != NULL && self->n_saving == 0;

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "audio.speak",
                                 !speaking && has_text && selected_voice (self) != NULL);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "audio.cancel", speaking);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "audio.save-wav", has_result);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "audio.save-ogg", has_result);
  gtk_widget_set_sensitive (GTK_WIDGET (self->voice_dropdown),
                            !speaking && self->voices != NULL);
  gtk_widget_set_sensitive (GTK_WIDGET (self->rate_spin), !speaking);
  gtk_widget_set_visible (self->busy_box, speaking);
  gtk_widget_set_visible (self->script_empty, !has_text);
}

static void
select_saved_voice (AtelierAudioPage *self)
{
  g_autofree char *saved = NULL;
  guint fallback = GTK_INVALID_LIST_POSITION;

  if (self->voices == NULL || self->settings == NULL)
    return;
  saved = g_settings_get_string (self->settings, "voice");
  for (guint i = 0; i < self->voices->len; i++)
    {
      AtelierVoice *voice = g_ptr_array_index (self->voices, i);

      if (g_ascii_strcasecmp (voice->id, saved) == 0)
        {
          fallback = i;
          break;
        }
      /* A voice removed since it was saved: English is what eSpeak itself defaults to. */
      if (fallback == GTK_INVALID_LIST_POSITION && g_str_equal (voice->id, "en"))
        fallback = i;
    }
  self->selecting_voice = TRUE;
  gtk_drop_down_set_selected (self->voice_dropdown, fallback != GTK_INVALID_LIST_POSITION
                                                    ? fallback : 0);
  self->selecting_voice = FALSE;
}

static void
on_voice_selected (AtelierAudioPage *self)
{
  AtelierVoice *voice = selected_voice (self);

  if (voice != NULL && self->settings != NULL && !self->selecting_voice)
    g_settings_set_string (self->settings, "voice", voice->id);
  update_actions (self);
}

static void
voices_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierAudioPage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) voices = atelier_speech_list_voices_finish (result, &error);
  g_autoptr (GPtrArray) names = NULL;

  if (is_disposed (self))
    return;
  if (voices == NULL)
    {
      show_error (self, _("No voices are available: %s"), error->message);
      return;
    }
  names = g_ptr_array_new_null_terminated (voices->len, g_free, TRUE);
  for (guint i = 0; i < voices->len; i++)
    {
      AtelierVoice *voice = g_ptr_array_index (voices, i);

      /* Translators: a voice in the voice menu: its name, then its language tag. */
      g_ptr_array_add (names, g_strdup_printf (_("%s — %s"), voice->name, voice->language));
    }
  self->voices = g_steal_pointer (&voices);
  self->selecting_voice = TRUE;
  gtk_string_list_splice (self->voice_names, 0,
                          g_list_model_get_n_items (G_LIST_MODEL (self->voice_names)),
                          (const char *const *) names->pdata);
  self->selecting_voice = FALSE;
  select_saved_voice (self);
  update_actions (self);
}

static char *
format_duration (gint64 microseconds)
{
  gint64 seconds = (microseconds + G_USEC_PER_SEC / 2) / G_USEC_PER_SEC;

  return g_strdup_printf ("%" G_GINT64_FORMAT ":%02d", seconds / 60, (int) (seconds % 60));
}

static void
on_media_error (AtelierAudioPage *self)
{
  const GError *error = gtk_media_stream_get_error (self->media);

  if (error != NULL && !is_disposed (self))
    show_error (self, _("The voice-over cannot be played: %s"), error->message);
}

/* Shows the spoken result: its waveform, and a player once its file is written. */
static void
show_result (AtelierAudioPage *self, Speech *speech)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) samples = NULL;
  g_autofree char *duration = NULL;
  g_autofree char *label = NULL;
  guint sample_rate = 0;

  g_clear_pointer (&self->result, speech_free);
  self->result = speech;
  samples = atelier_speech_wav_get_samples (speech->wav, &sample_rate, &error);
  atelier_waveform_set_samples (self->waveform, samples, sample_rate);

  if (self->media != NULL)
    {
      gtk_media_stream_pause (self->media);
      g_signal_handlers_disconnect_by_data (self->media, self);
      g_clear_object (&self->media);
    }
  if (speech->path != NULL)
    {
      self->media = gtk_media_file_new_for_filename (speech->path);
      g_signal_connect_swapped (self->media, "notify::error", G_CALLBACK (on_media_error), self);
    }
  gtk_media_controls_set_media_stream (self->media_controls, self->media);
  atelier_waveform_set_stream (self->waveform, self->media);

  duration = format_duration (atelier_waveform_get_duration (self->waveform));
  /* Translators: under the waveform: the voice, the rate, the duration (m:ss). */
  label = g_strdup_printf (_("%s · %d wpm · %s"), speech->voice_name, speech->rate, duration);
  gtk_label_set_text (self->preview_label, label);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->preview_label), label);
  gtk_widget_set_visible (self->preview_box, TRUE);
}

static char *
speech_parameters (Speech *speech)
{
  g_autoptr (JsonBuilder) builder = json_builder_new ();
  g_autoptr (JsonNode) root = NULL;

  json_builder_begin_object (builder);
  json_builder_set_member_name (builder, "voice");
  json_builder_add_string_value (builder, speech->voice);
  json_builder_set_member_name (builder, "rate");
  json_builder_add_int_value (builder, speech->rate);
  json_builder_set_member_name (builder, "engine");
  json_builder_add_string_value (builder, "eSpeak NG");
  json_builder_end_object (builder);
  root = json_builder_get_root (builder);
  return json_to_string (root, FALSE);
}

static void
write_in_thread (GTask *task, gpointer source, gpointer task_data, GCancellable *cancellable)
{
  GBytes *bytes = task_data;
  const char *path = g_object_get_data (G_OBJECT (task), "path");
  gsize size;
  const char *data = g_bytes_get_data (bytes, &size);
  GError *error = NULL;

  /* A temporary file renamed into place: a crash never leaves half a file at path. */
  if (g_file_set_contents_full (path, data, size, G_FILE_SET_CONTENTS_CONSISTENT, 0666, &error))
    g_task_return_boolean (task, TRUE);
  else
    g_task_return_error (task, error);
}

static void
write_file_async (GBytes *bytes, const char *path, GAsyncReadyCallback callback,
                  gpointer user_data)
{
  g_autoptr (GTask) task = g_task_new (NULL, NULL, callback, user_data);

  g_task_set_task_data (task, g_bytes_ref (bytes), (GDestroyNotify) g_bytes_unref);
  g_object_set_data_full (G_OBJECT (task), "path", g_strdup (path), g_free);
  g_task_run_in_thread (task, write_in_thread);
}

static void
wav_written (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierAudioPage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (Speech) speech = g_steal_pointer (&self->speaking);
  g_autoptr (AtelierAsset) asset = NULL;
  gboolean written = g_task_propagate_boolean (G_TASK (result), &error);

  g_clear_object (&self->cancellable);
  /* Indexed even when the window closed meanwhile, so that no file is left unlisted. */
  if (written && speech->in_library)
    {
      g_autofree char *parameters = speech_parameters (speech);
      AtelierAssetInfo info = { .prompt = speech->text, .parameters = parameters };

      asset = atelier_library_add (atelier_application_get_library (self->app, NULL),
                                   ATELIER_ASSET_AUDIO, speech->path, &info, &error);
    }
  if (is_disposed (self))
    return;
  if (!written)
    {
      /* The sound is still here to preview and save elsewhere. */
      show_error (self, _("The voice-over could not be written: %s"), error->message);
      g_clear_pointer (&speech->path, g_free);
    }
  else if (speech->in_library && asset == NULL)
    show_error (self, _("The voice-over could not be added to the Gallery: %s"),
                error->message);
  show_result (self, g_steal_pointer (&speech));
  update_actions (self);
}

/* Where a new voice-over is written: in the library, or without one in the cache. */
static void
choose_path (AtelierAudioPage *self, Speech *speech)
{
  g_autoptr (GError) error = NULL;
  AtelierLibrary *library = self->app != NULL
                            ? atelier_application_get_library (self->app, &error)
                            : NULL;
  g_autofree char *folder = NULL;

  if (library != NULL)
    {
      speech->path = atelier_library_new_path (library, ATELIER_ASSET_AUDIO, "wav");
      speech->in_library = TRUE;
      return;
    }
  if (error != NULL)
    show_error (self, _("The voice-over cannot be kept in the Gallery: %s"), error->message);
  folder = g_build_filename (g_get_user_cache_dir (), "atelier", NULL);
  g_mkdir_with_parents (folder, 0700);
  speech->path = g_build_filename (folder, "voice-over.wav", NULL);
}

static void
synthesized (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierAudioPage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GBytes) wav = atelier_speech_synthesize_finish (result, &error);
  Speech *speech;

  if (wav == NULL || is_disposed (self))
    {
      g_clear_object (&self->cancellable);
      g_clear_pointer (&self->speaking, speech_free);
      if (is_disposed (self))
        return;
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_error (self, _("The script could not be spoken: %s"), error->message);
      update_actions (self);
      return;
    }
  speech = self->speaking;
  speech->wav = g_steal_pointer (&wav);
  choose_path (self, speech);
  write_file_async (speech->wav, speech->path, wav_written, g_steal_pointer (&self));
}

static void
on_progress (double fraction, gpointer user_data)
{
  AtelierAudioPage *self = ATELIER_AUDIO_PAGE (user_data);

  if (!is_disposed (self))
    gtk_progress_bar_set_fraction (self->speak_progress, fraction);
}

static void
speak_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierAudioPage *self = ATELIER_AUDIO_PAGE (widget);
  AtelierVoice *voice = selected_voice (self);
  Speech *speech;

  if (voice == NULL || self->cancellable != NULL)
    return;
  speech = g_new0 (Speech, 1);
  speech->text = script_text (self);
  speech->voice = g_strdup (voice->id);
  speech->voice_name = g_strdup (voice->name);
  speech->rate = gtk_spin_button_get_value_as_int (self->rate_spin);
  self->speaking = speech;
  self->cancellable = g_cancellable_new ();
  gtk_progress_bar_set_fraction (self->speak_progress, 0);
  /* The page's reference, held until the end, keeps the progress callback's data. */
  atelier_speech_synthesize_async (speech->text, speech->voice, speech->rate,
                                   self->cancellable, on_progress, self, synthesized,
                                   g_object_ref (self));
  update_actions (self);
}

static void
cancel_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  g_cancellable_cancel (ATELIER_AUDIO_PAGE (widget)->cancellable);
}

typedef struct
{
  AtelierAudioPage *self;
  char *path;
} Export;

static void
exported (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Export *export = user_data;
  g_autoptr (AtelierAudioPage) self = export->self;
  g_autofree char *path = export->path;
  g_autoptr (GError) error = NULL;
  gboolean ok;

  g_free (export);
  if (g_task_get_source_tag (G_TASK (result)) == atelier_speech_wav_to_ogg_async)
    ok = atelier_speech_wav_to_ogg_finish (result, &error);
  else
    ok = g_task_propagate_boolean (G_TASK (result), &error);
  self->n_saving--;
  if (is_disposed (self))
    return;
  if (ok)
    {
      g_autofree char *name = g_path_get_basename (path);
      /* Translators: %s is the saved file's name. */
      g_autofree char *message = g_strdup_printf (_("Saved %s"), name);

      show_toast (self, message, 3);
    }
  else
    show_error (self, _("The voice-over could not be saved: %s"), error->message);
  update_actions (self);
}

void
atelier_audio_page_export (AtelierAudioPage *self, const char *path)
{
  Export *export;

  g_return_if_fail (ATELIER_IS_AUDIO_PAGE (self));
  g_return_if_fail (self->result != NULL && path != NULL);

  export = g_new (Export, 1);
  export->self = g_object_ref (self);
  export->path = g_strdup (path);
  self->n_saving++;
  if (g_str_has_suffix (path, ".ogg") || g_str_has_suffix (path, ".oga"))
    atelier_speech_wav_to_ogg_async (self->result->wav, path, NULL, exported, export);
  else
    write_file_async (self->result->wav, path, exported, export);
  update_actions (self);
}

static void
on_save_response (GtkNativeDialog *chooser, int response, gpointer user_data)
{
  AtelierAudioPage *self = ATELIER_AUDIO_PAGE (user_data);
  g_autoptr (GFile) file = NULL;
  g_autofree char *path = NULL;

  if (response == GTK_RESPONSE_ACCEPT && self->result != NULL)
    {
      file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (chooser));
      path = file != NULL ? g_file_get_path (file) : NULL;
      if (path != NULL)
        atelier_audio_page_export (self, path);
      else
        show_error (self, "%s", _("Voice-overs can only be saved in a folder on this computer"));
    }
  g_clear_object (&self->chooser);
}

static void
save_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierAudioPage *self = ATELIER_AUDIO_PAGE (widget);
  gboolean ogg = g_str_equal (action_name, "audio.save-ogg");
  g_autofree char *project = NULL;
  GtkFileFilter *filter = gtk_file_filter_new ();

  if (self->result == NULL || self->chooser != NULL)
    return;
  self->chooser = gtk_file_chooser_native_new (ogg ? _("Save as Ogg Vorbis") : _("Save as WAV"),
                                               GTK_WINDOW (gtk_widget_get_root (widget)),
                                               GTK_FILE_CHOOSER_ACTION_SAVE, _("_Save"),
                                               _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  gtk_file_filter_set_name (filter, ogg ? _("Ogg Vorbis audio") : _("WAV audio"));
  gtk_file_filter_add_suffix (filter, ogg ? "ogg" : "wav");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), filter);
  g_object_unref (filter);
  /* Translators: the suggested file name, without its extension. */
  project = g_strconcat (_("voice-over"), ogg ? ".ogg" : ".wav", NULL);
  gtk_file_chooser_set_current_name (GTK_FILE_CHOOSER (self->chooser), project);
  g_clear_pointer (&project, g_free);
  project = self->settings != NULL ? g_settings_get_string (self->settings, "project-folder")
                                   : NULL;
  if (project != NULL && project[0] != '\0')
    {
      g_autoptr (GFile) folder = g_file_new_for_path (project);

      gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (self->chooser), folder, NULL);
    }
  g_signal_connect (self->chooser, "response", G_CALLBACK (on_save_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

void
atelier_audio_page_set_text (AtelierAudioPage *self, const char *text)
{
  GtkTextBuffer *buffer;
  GtkTextIter start, end;

  g_return_if_fail (ATELIER_IS_AUDIO_PAGE (self));
  g_return_if_fail (text != NULL);

  buffer = page_buffer (self);
  /* One step to undo, so the script it replaces is never lost. */
  gtk_text_buffer_begin_user_action (buffer);
  gtk_text_buffer_get_bounds (buffer, &start, &end);
  gtk_text_buffer_delete (buffer, &start, &end);
  gtk_text_buffer_insert (buffer, &start, text, -1);
  gtk_text_buffer_end_user_action (buffer);
}

gboolean
atelier_audio_page_is_busy (AtelierAudioPage *self)
{
  g_return_val_if_fail (ATELIER_IS_AUDIO_PAGE (self), FALSE);
  return self->cancellable != NULL || self->n_saving > 0;
}

void
atelier_audio_page_set_application (AtelierAudioPage *self, AtelierApplication *app)
{
  g_return_if_fail (ATELIER_IS_AUDIO_PAGE (self));

  self->app = app;
  g_set_object (&self->settings, atelier_application_get_settings (app));
  g_settings_bind (self->settings, "speech-rate", gtk_spin_button_get_adjustment (self->rate_spin),
                   "value", G_SETTINGS_BIND_DEFAULT);
  select_saved_voice (self);
}

static void
atelier_audio_page_dispose (GObject *object)
{
  AtelierAudioPage *self = ATELIER_AUDIO_PAGE (object);

  g_cancellable_cancel (self->cancellable);
  if (self->chooser != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->chooser, self);
      gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
      g_clear_object (&self->chooser);
    }
  if (self->media != NULL)
    {
      g_signal_handlers_disconnect_by_data (self->media, self);
      gtk_media_stream_pause (self->media);
      g_clear_object (&self->media);
    }
  gtk_widget_dispose_template (GTK_WIDGET (self), ATELIER_TYPE_AUDIO_PAGE);
  g_clear_object (&self->settings);
  G_OBJECT_CLASS (atelier_audio_page_parent_class)->dispose (object);
}

static void
atelier_audio_page_finalize (GObject *object)
{
  AtelierAudioPage *self = ATELIER_AUDIO_PAGE (object);

  g_clear_pointer (&self->voices, g_ptr_array_unref);
  g_clear_pointer (&self->speaking, speech_free);
  g_clear_pointer (&self->result, speech_free);
  g_clear_object (&self->cancellable);
  G_OBJECT_CLASS (atelier_audio_page_parent_class)->finalize (object);
}

static void
atelier_audio_page_class_init (AtelierAudioPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_audio_page_dispose;
  object_class->finalize = atelier_audio_page_finalize;

  g_type_ensure (ATELIER_TYPE_WAVEFORM);
  /* The toast overlay is the bin's child, not bound: the bin unparents it itself. */
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-audio-page.ui");
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, voice_dropdown);
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, voice_names);
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, rate_spin);
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, speak_button);
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, busy_box);
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, speak_progress);
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, script_view);
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, script_empty);
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, preview_box);
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, waveform);
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, media_controls);
  gtk_widget_class_bind_template_child (widget_class, AtelierAudioPage, preview_label);
  gtk_widget_class_bind_template_callback (widget_class, on_voice_selected);

  gtk_widget_class_install_action (widget_class, "audio.speak", NULL, speak_activated);
  gtk_widget_class_install_action (widget_class, "audio.cancel", NULL, cancel_activated);
  gtk_widget_class_install_action (widget_class, "audio.save-wav", NULL, save_activated);
  gtk_widget_class_install_action (widget_class, "audio.save-ogg", NULL, save_activated);
}

static void
atelier_audio_page_init (AtelierAudioPage *self)
{
  GtkShortcutController *shortcuts;

  gtk_widget_init_template (GTK_WIDGET (self));
  g_signal_connect_object (page_buffer (self), "changed", G_CALLBACK (update_actions), self,
                           G_CONNECT_SWAPPED);

  /* In the capture phase, so that the script does not take Ctrl+Enter as a new line. */
  shortcuts = GTK_SHORTCUT_CONTROLLER (gtk_shortcut_controller_new ());
  gtk_event_controller_set_propagation_phase (GTK_EVENT_CONTROLLER (shortcuts),
                                              GTK_PHASE_CAPTURE);
  gtk_shortcut_controller_add_shortcut (shortcuts,
                                        gtk_shortcut_new (gtk_shortcut_trigger_parse_string ("<Control>Return"),
                                                          gtk_named_action_new ("audio.speak")));
  gtk_shortcut_controller_add_shortcut (shortcuts,
                                        gtk_shortcut_new (gtk_keyval_trigger_new (GDK_KEY_Escape, 0),
                                                          gtk_named_action_new ("audio.cancel")));
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (shortcuts));

  update_actions (self);
  atelier_speech_list_voices_async (NULL, voices_listed, g_object_ref (self));
}
