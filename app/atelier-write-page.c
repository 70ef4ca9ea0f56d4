/* atelier-write-page.c: AtelierWritePage, built from ui/atelier-write-page.ui.
 *
 * A generation replaces a range of the text (empty for Continue) with the model's reply
 * as it streams: the range stays until the first piece of the reply's body arrives,
 * then is deleted and the pieces are inserted between two marks. It all happens inside
 * one user action, so one Undo gives the original back. */
#include "config.h"

#include <glib/gi18n.h>
#include <gtksourceview/gtksource.h>

#include "atelier-model-files.h"
#include "atelier-write-actions.h"
#include "atelier-write-page.h"

/* A couple of seconds of quiet typing before the draft is written: a crash loses no
 * more than that, and a fast typist does not rewrite the file at every key. */
#define AUTOSAVE_SECONDS 2
/* The prompt is the end of the text before the cursor: enough for the model to follow
 * the voice and the topic, short enough to decode quickly. */
#define PROMPT_CHARS 2000

struct _AtelierWritePage
{
  AdwBin parent_instance;

  GtkDropDown *model_dropdown;
  GtkStringList *model_names;
  GtkProgressBar *load_progress;
  GtkButton *continue_button;
  GtkMenuButton *ai_button;
  GMenuModel *ai_menu;
  GtkSpinner *spinner;
  GtkLabel *status_label;
  GtkLabel *word_count;
  GtkSourceView *view;

  AtEngine *engine;
  AtelierApplication *app;
  char *models_folder;
  AtLanguageModel *model;
  char *model_name;
  GCancellable *load_cancellable;
  char *loading_name;
  /* What the status line says when nothing runs: the last generation's summary. */
  char *last_summary;

  /* The generation under way. */
  GCancellable *generate_cancellable;
  AtelierWriteAction action;
  AtelierWriteTone tone;
  /* The text the model was given: the replaced range, or Continue's prompt. */
  char *source;
  /* The model's file name, kept: the model may be unloaded before the reply ends. */
  char *source_model;
  /* The reply goes between them: start_mark stays before it, generate_mark after. */
  GtkTextMark *start_mark;
  GtkTextMark *generate_mark;
  /* Whether the original range has been deleted for the reply. */
  gboolean replaced;
  /* The reply's beginning, held back until it is known whether it is a preamble such as
   * "Here is the rewritten text:"; NULL once the body streams. */
  GString *head;
  gint64 n_pieces, max_tokens;
  gint64 first_piece_time;
  float temperature;
  guint64 seed;

  GFile *document;
  GCancellable *document_cancellable;
  gboolean document_loaded;
  guint autosave_source;
  gboolean saving;
  gboolean changed_while_saving;
};

G_DEFINE_FINAL_TYPE (AtelierWritePage, atelier_write_page, ADW_TYPE_BIN)

static GtkTextBuffer *
page_buffer (AtelierWritePage *self)
{
  return gtk_text_view_get_buffer (GTK_TEXT_VIEW (self->view));
}

/* The async callbacks hold a reference to the page, so they may run after the window
 * closed and the template's widgets are gone. */
static gboolean
is_disposed (AtelierWritePage *self)
{
  return self->view == NULL;
}

static void show_error (AtelierWritePage *self, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
show_error (AtelierWritePage *self, const char *format, ...)
{
  g_autofree char *message = NULL;
  g_autofree char *markup = NULL;
  AdwToast *toast;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  /* A toast's title is markup; messages quote file names. */
  markup = g_markup_escape_text (message, -1);
  toast = adw_toast_new (markup);
  adw_toast_set_timeout (toast, 0);
  adw_toast_overlay_add_toast (ADW_TOAST_OVERLAY (adw_bin_get_child (ADW_BIN (self))), toast);
}

static void
update_status (AtelierWritePage *self)
{
  g_autofree char *text = NULL;
  gboolean generating = self->generate_cancellable != NULL;

  gtk_widget_set_visible (GTK_WIDGET (self->spinner), generating);
  gtk_spinner_set_spinning (self->spinner, generating);
  if (generating)
    {
      double seconds = self->first_piece_time == 0
                       ? 0
                       : (g_get_monotonic_time () - self->first_piece_time) / 1e6;

      text = atelier_write_progress_text (self->n_pieces, seconds, self->max_tokens);
    }
  else if (self->load_cancellable != NULL)
    text = g_strdup_printf (_("Loading %s…"), self->loading_name);
  else if (self->engine == NULL)
    text = g_strdup (_("No usable GPU: nothing can be generated"));
  else if (self->model == NULL
           && g_list_model_get_n_items (G_LIST_MODEL (self->model_names)) == 0)
    text = g_strdup (_("Put a GGUF language model in the models folder (see the Models "
                       "page), then load it here"));
  else if (self->model == NULL)
    text = g_strdup (_("Load a model to continue the text or rewrite it"));
  else if (self->last_summary != NULL)
    text = g_strdup (self->last_summary);
  else
    text = g_strdup_printf (_("%s is ready: select text and pick an AI action, or press "
                              "Ctrl+Enter to continue"),
                            self->model_name);
  gtk_label_set_text (self->status_label, text);
}

static void
update_actions (AtelierWritePage *self)
{
  gboolean loading = self->load_cancellable != NULL;
  gboolean generating = self->generate_cancellable != NULL;
  gboolean idle = !loading && !generating;
  gboolean ready = idle && self->model != NULL && self->document_loaded;

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "write.load",
                                 idle && self->engine != NULL
                                 && gtk_drop_down_get_selected (self->model_dropdown)
                                    != GTK_INVALID_LIST_POSITION);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "write.cancel-load", loading);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "write.continue", ready);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "write.run", ready);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "write.change-tone", ready);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "write.stop", generating);
  gtk_widget_set_sensitive (GTK_WIDGET (self->model_dropdown), idle);
  gtk_widget_set_visible (GTK_WIDGET (self->load_progress), loading);
  /* A menu button has no action of its own: it follows the actions it offers. */
  gtk_widget_set_sensitive (GTK_WIDGET (self->ai_button), ready);
  gtk_text_view_set_editable (GTK_TEXT_VIEW (self->view),
                              self->document_loaded && !generating);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->continue_button),
                               self->model != NULL
                               ? _("Continue the text at the cursor (Ctrl+Enter)")
                               : _("Load a model to continue the text"));
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->ai_button),
                               self->model != NULL
                               ? _("Rewrite, shorten, expand, change the tone of, summarise "
                                   "or translate the selection or the paragraph at the "
                                   "cursor")
                               : _("Load a model to use the AI actions"));
  update_status (self);
}

/* Words are runs of letters between spaces; Chinese and Japanese are written without
 * spaces, so each of their (wide) characters counts as a word. */
static guint
count_words (const char *text)
{
  gboolean in_word = FALSE;
  guint words = 0;

  for (const char *p = text; *p != '\0'; p = g_utf8_next_char (p))
    {
      gunichar c = g_utf8_get_char (p);

      if (g_unichar_iswide (c))
        {
          words++;
          in_word = FALSE;
        }
      else if (g_unichar_isspace (c))
        in_word = FALSE;
      else if (!in_word)
        {
          words++;
          in_word = TRUE;
        }
    }
  return words;
}

static void
update_word_count (AtelierWritePage *self)
{
  GtkTextBuffer *buffer = page_buffer (self);
  GtkTextIter start, end;
  g_autofree char *text = NULL;
  g_autofree char *label = NULL;
  guint words;

  gtk_text_buffer_get_bounds (buffer, &start, &end);
  text = gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
  words = count_words (text);
  label = g_strdup_printf (ngettext ("%u word", "%u words", words), words);
  gtk_label_set_text (self->word_count, label);
}

static void save_document (AtelierWritePage *self);

static void
document_saved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierWritePage) self = user_data;
  g_autoptr (GError) error = NULL;

  self->saving = FALSE;
  if (!g_file_replace_contents_finish (G_FILE (source), result, NULL, &error))
    {
      if (is_disposed (self))
        return;
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        show_error (self, _("The draft could not be saved: %s"), error->message);
      return;
    }
  if (self->changed_while_saving && !is_disposed (self))
    save_document (self);
}

static void
save_document (AtelierWritePage *self)
{
  GtkTextBuffer *buffer = page_buffer (self);
  g_autoptr (GFile) folder = g_file_get_parent (self->document);
  g_autoptr (GBytes) bytes = NULL;
  GtkTextIter start, end;
  char *text;

  /* One write at a time, so that an older text never lands after a newer one. */
  if (self->saving)
    {
      self->changed_while_saving = TRUE;
      return;
    }
  self->changed_while_saving = FALSE;
  self->saving = TRUE;
  gtk_text_buffer_get_bounds (buffer, &start, &end);
  text = gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
  bytes = g_bytes_new_take (text, strlen (text));
  /* A mkdir: cheap, unlike writing the text. */
  g_file_make_directory_with_parents (folder, NULL, NULL);
  g_file_replace_contents_bytes_async (self->document, bytes, NULL, FALSE,
                                       G_FILE_CREATE_PRIVATE, self->document_cancellable,
                                       document_saved, g_object_ref (self));
}

static gboolean
autosave_due (gpointer user_data)
{
  AtelierWritePage *self = ATELIER_WRITE_PAGE (user_data);

  self->autosave_source = 0;
  save_document (self);
  return G_SOURCE_REMOVE;
}

static void
on_buffer_changed (AtelierWritePage *self)
{
  update_word_count (self);
  if (!self->document_loaded)
    return;
  g_clear_handle_id (&self->autosave_source, g_source_remove);
  self->autosave_source = g_timeout_add_seconds (AUTOSAVE_SECONDS, autosave_due, self);
}

static void
document_read (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierWritePage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize length = 0;
  GtkTextBuffer *buffer;
  GtkTextIter end;

  if (!g_file_load_contents_finish (G_FILE (source), result, &contents, &length, NULL,
                                    &error))
    {
      if (is_disposed (self) || g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        return;
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND))
        {
          /* Saving over a draft that could not be read would lose it. */
          show_error (self, _("The draft could not be opened: %s"), error->message);
          return;
        }
    }
  else if (is_disposed (self))
    return;
  else if (!g_utf8_validate_len (contents, length, NULL))
    {
      show_error (self, _("The draft could not be opened: %s"),
                  _("it is not UTF-8 text"));
      return;
    }

  buffer = page_buffer (self);
  if (contents != NULL)
    {
      /* The saved text is where undo starts, not a change to undo. */
      gtk_text_buffer_begin_irreversible_action (buffer);
      gtk_text_buffer_set_text (buffer, contents, length);
      gtk_text_buffer_end_irreversible_action (buffer);
      gtk_text_buffer_set_modified (buffer, FALSE);
    }
  gtk_text_buffer_get_end_iter (buffer, &end);
  gtk_text_buffer_place_cursor (buffer, &end);
  self->document_loaded = TRUE;
  update_actions (self);
}

static void
load_progress (double fraction, gpointer user_data)
{
  AtelierWritePage *self = ATELIER_WRITE_PAGE (user_data);

  if (!is_disposed (self))
    gtk_progress_bar_set_fraction (self->load_progress, fraction);
}

static void
model_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierWritePage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtLanguageModel) model = at_language_model_load_finish (result, &error);
  g_autofree char *name = g_steal_pointer (&self->loading_name);

  g_clear_object (&self->load_cancellable);
  if (is_disposed (self))
    return;
  /* The registry tells the page (on_text_model_changed) and the window's status. */
  if (model != NULL)
    atelier_application_set_text_model (self->app, G_OBJECT (model), name);
  else if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    show_error (self, _("The model could not be loaded: %s"), error->message);
  update_actions (self);
}

static void
load_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierWritePage *self = ATELIER_WRITE_PAGE (widget);
  guint selected = gtk_drop_down_get_selected (self->model_dropdown);
  const char *name = gtk_string_list_get_string (self->model_names, selected);
  g_autofree char *path = NULL;

  if (name == NULL || self->engine == NULL || self->app == NULL)
    return;
  path = g_build_filename (self->models_folder, name, NULL);
  /* The old model's GPU memory is given back before the new one asks for its own. */
  atelier_application_set_text_model (self->app, NULL, NULL);
  self->loading_name = g_strdup (name);
  self->load_cancellable = g_cancellable_new ();
  gtk_progress_bar_set_fraction (self->load_progress, 0);
  /* The page's reference, held until the load ends, keeps progress_data valid. */
  at_language_model_load_async (self->engine, path, 0, self->load_cancellable, load_progress,
                                self, model_loaded, g_object_ref (self));
  update_actions (self);
}

static void
cancel_load_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  g_cancellable_cancel (ATELIER_WRITE_PAGE (widget)->load_cancellable);
}

/* The registry's language model changed: loaded here, or unloaded from the window's
 * status popover. */
static void
on_text_model_changed (AtelierWritePage *self)
{
  GObject *shared = atelier_application_get_text_model (self->app);
  AtLanguageModel *model = AT_IS_LANGUAGE_MODEL (shared) ? AT_LANGUAGE_MODEL (shared) : NULL;

  /* Unloading is asking for the GPU memory back: a generation stops, keeping its text. */
  if (model == NULL)
    g_cancellable_cancel (self->generate_cancellable);
  g_set_object (&self->model, model);
  g_free (self->model_name);
  self->model_name = g_strdup (atelier_application_get_text_model_name (self->app));
  g_clear_pointer (&self->last_summary, g_free);
  update_actions (self);
}

/* Puts text where the reply goes, deleting the original range first. */
static void
insert_reply (AtelierWritePage *self, const char *text)
{
  GtkTextBuffer *buffer = page_buffer (self);
  GtkTextIter start, at;

  if (*text == '\0')
    return;
  if (!self->replaced)
    {
      gtk_text_buffer_get_iter_at_mark (buffer, &start, self->start_mark);
      gtk_text_buffer_get_iter_at_mark (buffer, &at, self->generate_mark);
      gtk_text_buffer_delete (buffer, &start, &at);
      self->replaced = TRUE;
    }
  gtk_text_buffer_get_iter_at_mark (buffer, &at, self->generate_mark);
  gtk_text_buffer_insert (buffer, &at, text, -1);
  gtk_text_buffer_place_cursor (buffer, &at);
  gtk_text_view_scroll_mark_onscreen (GTK_TEXT_VIEW (self->view), self->generate_mark);
}

static char *
reply_text (AtelierWritePage *self)
{
  GtkTextBuffer *buffer = page_buffer (self);
  GtkTextIter start, end;

  gtk_text_buffer_get_iter_at_mark (buffer, &start, self->start_mark);
  gtk_text_buffer_get_iter_at_mark (buffer, &end, self->generate_mark);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}

/* Replaces the reply so far with text (the cleaned reply, or the original back). */
static void
replace_reply (AtelierWritePage *self, const char *text)
{
  GtkTextBuffer *buffer = page_buffer (self);
  GtkTextIter start, end;

  gtk_text_buffer_get_iter_at_mark (buffer, &start, self->start_mark);
  gtk_text_buffer_get_iter_at_mark (buffer, &end, self->generate_mark);
  gtk_text_buffer_delete (buffer, &start, &end);
  gtk_text_buffer_get_iter_at_mark (buffer, &end, self->generate_mark);
  gtk_text_buffer_insert (buffer, &end, text, -1);
}

static void
receive_piece (const char *text, gpointer user_data)
{
  AtelierWritePage *self = ATELIER_WRITE_PAGE (user_data);

  if (is_disposed (self))
    return;
  if (self->first_piece_time == 0)
    self->first_piece_time = g_get_monotonic_time ();
  self->n_pieces++;
  if (self->head == NULL)
    insert_reply (self, text);
  else
    {
      gssize body;

      g_string_append (self->head, text);
      body = atelier_write_reply_body_start (self->head->str, FALSE);
      if (body >= 0)
        {
          insert_reply (self, self->head->str + body);
          g_string_free (g_steal_pointer (&self->head), TRUE);
        }
    }
  update_status (self);
}

/* The reply is complete, or stopped: what was held back goes in, and a complete
 * instruction reply loses its surrounding quotes. */
static void
finish_reply (AtelierWritePage *self, gboolean stopped)
{
  g_autofree char *reply = NULL;
  g_autofree char *clean = NULL;

  if (self->head != NULL)
    {
      insert_reply (self, self->head->str
                            + atelier_write_reply_body_start (self->head->str, TRUE));
      g_string_free (g_steal_pointer (&self->head), TRUE);
    }
  if (stopped || self->action == ATELIER_WRITE_CONTINUE)
    return;
  if (self->replaced)
    {
      reply = reply_text (self);
      clean = atelier_write_clean_reply (reply);
    }
  if (clean == NULL || *clean == '\0')
    {
      if (self->replaced)
        replace_reply (self, self->source);
      show_error (self, "%s", _("The model replied with no text; your text is unchanged."));
      return;
    }
  if (!g_str_equal (clean, reply))
    replace_reply (self, clean);
}

static gboolean
keep_in_library (AtelierWritePage *self, const char *text, gint64 n_tokens)
{
  AtelierLibrary *library = atelier_application_get_library (self->app, NULL);
  g_autofree char *prompt = atelier_write_asset_prompt (self->action, self->tone, self->source);
  g_autofree char *parameters = NULL;
  g_autoptr (GBytes) bytes = g_bytes_new (text, strlen (text));
  g_autoptr (AtelierAsset) asset = NULL;
  g_autoptr (GError) error = NULL;
  AtelierAssetInfo info;

  /* Without a library (the Gallery says why it could not be opened) the text is only
   * in the draft. */
  if (library == NULL)
    return FALSE;
  parameters = atelier_write_parameters_json (self->action, self->tone, self->source_model,
                                              self->temperature, self->seed, n_tokens);
  info = (AtelierAssetInfo) { .prompt = prompt, .parameters = parameters,
                              .model = self->source_model, .seed = self->seed };
  asset = atelier_library_add_bytes (library, ATELIER_ASSET_TEXT, bytes, "md", &info, &error);
  if (asset == NULL)
    show_error (self, _("The text could not be kept in the library: %s"), error->message);
  return asset != NULL;
}

static void
generated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierWritePage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGenerateResult) generate_result = NULL;
  g_autofree char *produced = NULL;
  g_autofree char *progress = NULL;
  gboolean stopped, kept = FALSE;
  gint64 n_tokens;
  double seconds;
  GtkTextBuffer *buffer;
  GtkTextIter start, end;

  generate_result = at_language_model_generate_finish (AT_LANGUAGE_MODEL (source), result,
                                                       &error);
  g_clear_object (&self->generate_cancellable);
  if (is_disposed (self))
    return;
  buffer = page_buffer (self);
  stopped = g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED);
  if (generate_result == NULL && !stopped)
    {
      /* The user's text is never lost to a failure: the original comes back. */
      if (self->replaced)
        replace_reply (self, self->source);
      show_error (self, _("The model failed, your text is unchanged: %s"), error->message);
    }
  else
    finish_reply (self, stopped);
  /* Everything since the action started is one step to undo. */
  gtk_text_buffer_end_user_action (buffer);

  n_tokens = generate_result != NULL ? generate_result->n_generated : self->n_pieces;
  if (error == NULL || stopped)
    produced = reply_text (self);
  if (produced != NULL && *produced != '\0')
    {
      kept = keep_in_library (self, produced, n_tokens);
      /* The new text selected: ready for another action, or to be seen. */
      gtk_text_buffer_get_iter_at_mark (buffer, &start, self->start_mark);
      gtk_text_buffer_get_iter_at_mark (buffer, &end, self->generate_mark);
      if (self->action != ATELIER_WRITE_CONTINUE)
        gtk_text_buffer_select_range (buffer, &end, &start);
    }
  seconds = self->first_piece_time == 0
            ? 0
            : (g_get_monotonic_time () - self->first_piece_time) / 1e6;
  progress = atelier_write_progress_text (n_tokens, seconds, -1);
  g_clear_pointer (&self->last_summary, g_free);
  if (stopped)
    /* Translators: %s is the progress line, "42 tokens · 12.0 tokens/s". */
    self->last_summary = g_strdup_printf (_("Stopped after %s"), progress);
  else if (kept)
    self->last_summary = g_strdup_printf (_("Done: %s · kept in the Gallery"), progress);
  else if (error == NULL)
    self->last_summary = g_strdup_printf (_("Done: %s"), progress);

  gtk_text_buffer_delete_mark (buffer, self->start_mark);
  gtk_text_buffer_delete_mark (buffer, self->generate_mark);
  self->start_mark = self->generate_mark = NULL;
  g_clear_pointer (&self->source, g_free);
  g_clear_pointer (&self->source_model, g_free);
  update_actions (self);
}

/* Starts generating request's reply in place of start..end (empty for Continue), the
 * source being what the model is given. */
static void
start_generation (AtelierWritePage *self, AtelierWriteAction action, AtelierWriteTone tone,
                  char *source, GtkTextIter *start, GtkTextIter *end, AtGenerateRequest *request)
{
  GtkTextBuffer *buffer = page_buffer (self);

  self->action = action;
  self->tone = tone;
  self->source = source;
  self->source_model = g_strdup (self->model_name);
  /* 32 bits: the parameters' JSON keeps it exactly. */
  self->seed = request->sampler.seed = g_random_int ();
  self->temperature = request->sampler.temperature;
  self->max_tokens = request->max_tokens;
  self->n_pieces = 0;
  self->first_piece_time = 0;
  self->start_mark = gtk_text_buffer_create_mark (buffer, NULL, start, TRUE);
  /* Right gravity: the mark stays after each piece inserted at it. */
  self->generate_mark = gtk_text_buffer_create_mark (buffer, NULL, end, FALSE);
  self->replaced = gtk_text_iter_equal (start, end);
  self->head = action == ATELIER_WRITE_CONTINUE ? NULL : g_string_new (NULL);
  self->generate_cancellable = g_cancellable_new ();
  g_clear_pointer (&self->last_summary, g_free);
  gtk_text_buffer_begin_user_action (buffer);
  at_language_model_generate_async (self->model, request, receive_piece, self,
                                    self->generate_cancellable, generated,
                                    g_object_ref (self));
  update_actions (self);
}

static void
continue_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierWritePage *self = ATELIER_WRITE_PAGE (widget);
  GtkTextBuffer *buffer = page_buffer (self);
  char *prompt;
  AtGenerateRequest request;
  GtkTextIter start, cursor;

  if (self->model == NULL || self->generate_cancellable != NULL)
    return;
  gtk_text_buffer_get_iter_at_mark (buffer, &cursor, gtk_text_buffer_get_insert (buffer));
  gtk_text_buffer_get_iter_at_offset (buffer, &start,
                                      MAX (0, gtk_text_iter_get_offset (&cursor)
                                              - PROMPT_CHARS));
  prompt = gtk_text_buffer_get_text (buffer, &start, &cursor, FALSE);

  at_generate_request_init (&request);
  request.prompt = prompt;
  request.max_tokens = atelier_write_max_tokens (ATELIER_WRITE_CONTINUE, prompt);
  request.context_full = AT_CONTEXT_FULL_SHIFT;
  start_generation (self, ATELIER_WRITE_CONTINUE, ATELIER_TONE_NONE, prompt, &cursor, &cursor,
                    &request);
}

static gboolean
line_is_blank (const GtkTextIter *line_start)
{
  GtkTextIter end = *line_start;
  g_autofree char *text = NULL;

  if (!gtk_text_iter_ends_line (&end))
    gtk_text_iter_forward_to_line_end (&end);
  text = gtk_text_iter_get_text (line_start, &end);
  return *g_strchug (text) == '\0';
}

/* The lines around the cursor up to blank lines; FALSE on a blank line. */
static gboolean
paragraph_at_cursor (GtkTextBuffer *buffer, GtkTextIter *start, GtkTextIter *end)
{
  GtkTextIter line;

  gtk_text_buffer_get_iter_at_mark (buffer, start, gtk_text_buffer_get_insert (buffer));
  gtk_text_iter_set_line_offset (start, 0);
  if (line_is_blank (start))
    return FALSE;
  *end = *start;
  line = *start;
  while (gtk_text_iter_backward_line (&line) && !line_is_blank (&line))
    *start = line;
  line = *end;
  while (gtk_text_iter_forward_line (&line) && !line_is_blank (&line))
    *end = line;
  if (!gtk_text_iter_ends_line (end))
    gtk_text_iter_forward_to_line_end (end);
  return TRUE;
}

/* An instruction action on the selection, or the paragraph at the cursor; "translate"
 * goes to English or Chinese depending on the text. */
static void
run_action (AtelierWritePage *self, const char *name, AtelierWriteTone tone)
{
  GtkTextBuffer *buffer = page_buffer (self);
  g_autoptr (AtelierWritePrompt) prompt = NULL;
  AtelierWriteAction action;
  AtGenerateRequest request;
  AtChatMessage messages[2];
  GtkTextIter start, end;
  g_autofree char *text = NULL;

  if (self->model == NULL || self->generate_cancellable != NULL)
    return;
  if (!gtk_text_buffer_get_selection_bounds (buffer, &start, &end)
      && !paragraph_at_cursor (buffer, &start, &end))
    {
      adw_toast_overlay_add_toast (ADW_TOAST_OVERLAY (adw_bin_get_child (ADW_BIN (self))),
                                   adw_toast_new (_("Select some text, or put the cursor in "
                                                    "a paragraph")));
      return;
    }
  text = gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
  if (g_str_equal (name, "translate"))
    action = atelier_write_translation_for (text);
  else if (!atelier_write_action_from_string (name, &action)
           || action == ATELIER_WRITE_CONTINUE
           || (action == ATELIER_WRITE_CHANGE_TONE) != (tone != ATELIER_TONE_NONE))
    g_return_if_reached ();

  prompt = atelier_write_prompt_new (action, tone, text);
  messages[0] = (AtChatMessage) { "system", prompt->system };
  messages[1] = (AtChatMessage) { "user", prompt->user };
  at_generate_request_init (&request);
  request.messages = messages;
  request.n_messages = G_N_ELEMENTS (messages);
  request.max_tokens = atelier_write_max_tokens (action, text);
  start_generation (self, action, tone, g_steal_pointer (&text), &start, &end, &request);
}

static void
run_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  run_action (ATELIER_WRITE_PAGE (widget), g_variant_get_string (parameter, NULL),
              ATELIER_TONE_NONE);
}

static void
change_tone_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierWriteTone tone;

  if (atelier_write_tone_from_string (g_variant_get_string (parameter, NULL), &tone)
      && tone != ATELIER_TONE_NONE)
    run_action (ATELIER_WRITE_PAGE (widget), "change-tone", tone);
}

static void
stop_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  g_cancellable_cancel (ATELIER_WRITE_PAGE (widget)->generate_cancellable);
}

static void
on_model_selected (AtelierWritePage *self)
{
  update_actions (self);
}

void
atelier_write_page_set_engine (AtelierWritePage *self, AtEngine *engine)
{
  g_return_if_fail (ATELIER_IS_WRITE_PAGE (self));

  g_set_object (&self->engine, engine);
  update_actions (self);
}

void
atelier_write_page_set_application (AtelierWritePage *self, AtelierApplication *app)
{
  g_return_if_fail (ATELIER_IS_WRITE_PAGE (self));
  g_return_if_fail (self->app == NULL);

  self->app = g_object_ref (app);
  g_signal_connect_object (app, "notify::text-model", G_CALLBACK (on_text_model_changed), self,
                           G_CONNECT_SWAPPED);
  on_text_model_changed (self);
}

void
atelier_write_page_set_model_files (AtelierWritePage *self, const char *folder,
                                    GPtrArray *files)
{
  g_autoptr (GPtrArray) names = g_ptr_array_new_null_terminated (files->len, NULL, TRUE);
  guint n_old;

  g_return_if_fail (ATELIER_IS_WRITE_PAGE (self));

  g_free (self->models_folder);
  self->models_folder = g_strdup (folder);
  for (guint i = 0; i < files->len; i++)
    {
      const AtelierModelFile *file = g_ptr_array_index (files, i);

      /* The language models are GGUF files; .safetensors hold image models. */
      if (g_str_has_suffix (file->name, ".gguf"))
        g_ptr_array_add (names, file->name);
    }
  n_old = g_list_model_get_n_items (G_LIST_MODEL (self->model_names));
  gtk_string_list_splice (self->model_names, 0, n_old,
                          (const char *const *) names->pdata);
  update_actions (self);
}

gboolean
atelier_write_page_is_busy (AtelierWritePage *self)
{
  g_return_val_if_fail (ATELIER_IS_WRITE_PAGE (self), FALSE);

  return self->load_cancellable != NULL || self->generate_cancellable != NULL;
}

static void
atelier_write_page_dispose (GObject *object)
{
  AtelierWritePage *self = ATELIER_WRITE_PAGE (object);

  g_cancellable_cancel (self->load_cancellable);
  g_cancellable_cancel (self->generate_cancellable);
  g_cancellable_cancel (self->document_cancellable);
  g_clear_object (&self->document_cancellable);
  g_clear_handle_id (&self->autosave_source, g_source_remove);
  g_clear_object (&self->model);
  g_clear_object (&self->engine);
  g_clear_object (&self->app);
  gtk_widget_dispose_template (GTK_WIDGET (self), ATELIER_TYPE_WRITE_PAGE);
  G_OBJECT_CLASS (atelier_write_page_parent_class)->dispose (object);
}

static void
atelier_write_page_finalize (GObject *object)
{
  AtelierWritePage *self = ATELIER_WRITE_PAGE (object);

  g_clear_object (&self->document);
  g_free (self->models_folder);
  g_free (self->model_name);
  g_free (self->loading_name);
  g_free (self->last_summary);
  g_free (self->source);
  g_free (self->source_model);
  if (self->head != NULL)
    g_string_free (self->head, TRUE);
  G_OBJECT_CLASS (atelier_write_page_parent_class)->finalize (object);
}

static void
atelier_write_page_class_init (AtelierWritePageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_write_page_dispose;
  object_class->finalize = atelier_write_page_finalize;

  gtk_source_init ();
  g_type_ensure (GTK_SOURCE_TYPE_VIEW);
  /* The toast overlay is the bin's child, not bound: the bin unparents it itself. */
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-write-page.ui");
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, model_dropdown);
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, model_names);
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, load_progress);
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, continue_button);
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, ai_button);
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, ai_menu);
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, spinner);
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, status_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, word_count);
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, view);
  gtk_widget_class_bind_template_callback (widget_class, on_model_selected);

  gtk_widget_class_install_action (widget_class, "write.load", NULL, load_activated);
  gtk_widget_class_install_action (widget_class, "write.cancel-load", NULL,
                                   cancel_load_activated);
  gtk_widget_class_install_action (widget_class, "write.continue", NULL, continue_activated);
  gtk_widget_class_install_action (widget_class, "write.run", "s", run_activated);
  gtk_widget_class_install_action (widget_class, "write.change-tone", "s",
                                   change_tone_activated);
  gtk_widget_class_install_action (widget_class, "write.stop", NULL, stop_activated);
}

static void
add_shortcut (GtkShortcutController *shortcuts, const char *trigger, const char *action,
              const char *target)
{
  GtkShortcut *shortcut = gtk_shortcut_new (gtk_shortcut_trigger_parse_string (trigger),
                                            gtk_named_action_new (action));

  if (target != NULL)
    gtk_shortcut_set_arguments (shortcut, g_variant_new_string (target));
  gtk_shortcut_controller_add_shortcut (shortcuts, shortcut);
}

static void
atelier_write_page_init (AtelierWritePage *self)
{
  GtkSourceBuffer *buffer;
  GtkShortcutController *shortcuts;
  g_autofree char *path = g_build_filename (g_get_user_data_dir (), "atelier", "documents",
                                            "draft.md", NULL);

  gtk_widget_init_template (GTK_WIDGET (self));

  buffer = GTK_SOURCE_BUFFER (page_buffer (self));
  gtk_source_buffer_set_language (buffer,
                                  gtk_source_language_manager_get_language (
                                    gtk_source_language_manager_get_default (), "markdown"));
  g_signal_connect_object (buffer, "changed", G_CALLBACK (on_buffer_changed), self,
                           G_CONNECT_SWAPPED);
  /* The editor's right-click menu offers what the AI button does. */
  gtk_text_view_set_extra_menu (GTK_TEXT_VIEW (self->view), self->ai_menu);

  /* In the capture phase, so that the editor does not take Ctrl+Enter as a new line.
   * The same keys are listed in ui/atelier-shortcuts.ui and shown in the AI menu. */
  shortcuts = GTK_SHORTCUT_CONTROLLER (gtk_shortcut_controller_new ());
  gtk_event_controller_set_propagation_phase (GTK_EVENT_CONTROLLER (shortcuts),
                                              GTK_PHASE_CAPTURE);
  add_shortcut (shortcuts, "<Control>Return", "write.continue", NULL);
  add_shortcut (shortcuts, "Escape", "write.stop", NULL);
  add_shortcut (shortcuts, "<Control><Shift>r", "write.run", "rewrite");
  add_shortcut (shortcuts, "<Control><Shift>s", "write.run", "shorten");
  add_shortcut (shortcuts, "<Control><Shift>e", "write.run", "expand");
  add_shortcut (shortcuts, "<Control><Shift>m", "write.run", "summarise");
  add_shortcut (shortcuts, "<Control><Shift>t", "write.run", "translate");
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (shortcuts));

  update_word_count (self);
  update_actions (self);

  self->document = g_file_new_for_path (path);
  self->document_cancellable = g_cancellable_new ();
  g_file_load_contents_async (self->document, self->document_cancellable, document_read,
                              g_object_ref (self));
}

char *
atelier_write_page_get_text (AtelierWritePage *self)
{
  GtkTextBuffer *buffer;
  GtkTextIter start, end;

  g_return_val_if_fail (ATELIER_IS_WRITE_PAGE (self), NULL);
  buffer = page_buffer (self);
  if (!gtk_text_buffer_get_selection_bounds (buffer, &start, &end))
    gtk_text_buffer_get_bounds (buffer, &start, &end);
  return gtk_text_buffer_get_text (buffer, &start, &end, FALSE);
}
