/* atelier-write-page.c: AtelierWritePage, built from ui/atelier-write-page.ui. */
#include "config.h"

#include <glib/gi18n.h>
#include <gtksourceview/gtksource.h>

#include "atelier-model-files.h"
#include "atelier-write-page.h"

/* A couple of seconds of quiet typing before the draft is written: a crash loses no
 * more than that, and a fast typist does not rewrite the file at every key. */
#define AUTOSAVE_SECONDS 2
/* The prompt is the end of the text before the cursor: enough for the model to follow
 * the voice and the topic, short enough to decode quickly. */
#define PROMPT_CHARS 2000
/* About a paragraph per Continue. */
#define CONTINUE_TOKENS 128

struct _AtelierWritePage
{
  AdwBin parent_instance;

  GtkDropDown *model_dropdown;
  GtkStringList *model_names;
  GtkProgressBar *load_progress;
  GtkButton *continue_button;
  GtkLabel *word_count;
  GtkSourceView *view;

  AtEngine *engine;
  char *models_folder;
  AtLanguageModel *model;
  GCancellable *load_cancellable;
  GCancellable *generate_cancellable;
  /* Where the generated text goes; it moves right as pieces are inserted. */
  GtkTextMark *generate_mark;

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
update_actions (AtelierWritePage *self)
{
  gboolean loading = self->load_cancellable != NULL;
  gboolean generating = self->generate_cancellable != NULL;
  gboolean idle = !loading && !generating;

  gtk_widget_action_set_enabled (GTK_WIDGET (self), "write.load",
                                 idle && self->engine != NULL
                                 && gtk_drop_down_get_selected (self->model_dropdown)
                                    != GTK_INVALID_LIST_POSITION);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "write.cancel-load", loading);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "write.continue",
                                 idle && self->model != NULL && self->document_loaded);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "write.stop", generating);
  gtk_widget_set_sensitive (GTK_WIDGET (self->model_dropdown), idle);
  gtk_widget_set_visible (GTK_WIDGET (self->load_progress), loading);
  gtk_text_view_set_editable (GTK_TEXT_VIEW (self->view),
                              self->document_loaded && !generating);
  gtk_widget_set_tooltip_text (GTK_WIDGET (self->continue_button),
                               self->model != NULL
                               ? _("Continue the text at the cursor (Ctrl+Enter)")
                               : _("Load a model to continue the text"));
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

  g_clear_object (&self->load_cancellable);
  if (is_disposed (self))
    return;
  if (model != NULL)
    g_set_object (&self->model, model);
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

  if (name == NULL || self->engine == NULL)
    return;
  path = g_build_filename (self->models_folder, name, NULL);
  /* The old model's GPU memory is given back before the new one asks for its own. */
  g_clear_object (&self->model);
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

static void
insert_piece (const char *text, gpointer user_data)
{
  AtelierWritePage *self = ATELIER_WRITE_PAGE (user_data);
  GtkTextBuffer *buffer;
  GtkTextIter at;

  if (is_disposed (self))
    return;
  buffer = page_buffer (self);
  gtk_text_buffer_get_iter_at_mark (buffer, &at, self->generate_mark);
  gtk_text_buffer_insert (buffer, &at, text, -1);
  gtk_text_buffer_place_cursor (buffer, &at);
  gtk_text_view_scroll_mark_onscreen (GTK_TEXT_VIEW (self->view), self->generate_mark);
}

static void
generated (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierWritePage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (AtGenerateResult) generate_result = NULL;
  GtkTextBuffer *buffer;

  generate_result = at_language_model_generate_finish (AT_LANGUAGE_MODEL (source), result,
                                                       &error);
  g_clear_object (&self->generate_cancellable);
  if (is_disposed (self))
    return;
  buffer = page_buffer (self);
  /* Everything inserted since Continue is one step to undo. */
  gtk_text_buffer_end_user_action (buffer);
  gtk_text_buffer_delete_mark (buffer, self->generate_mark);
  self->generate_mark = NULL;
  if (generate_result == NULL && !g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    show_error (self, _("The text could not be continued: %s"), error->message);
  update_actions (self);
}

static void
continue_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierWritePage *self = ATELIER_WRITE_PAGE (widget);
  GtkTextBuffer *buffer = page_buffer (self);
  g_autofree char *prompt = NULL;
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
  request.max_tokens = CONTINUE_TOKENS;
  request.context_full = AT_CONTEXT_FULL_SHIFT;

  /* Right gravity: the mark stays after each piece inserted at it. */
  self->generate_mark = gtk_text_buffer_create_mark (buffer, NULL, &cursor, FALSE);
  self->generate_cancellable = g_cancellable_new ();
  gtk_text_buffer_begin_user_action (buffer);
  at_language_model_generate_async (self->model, &request, insert_piece, self,
                                    self->generate_cancellable, generated,
                                    g_object_ref (self));
  update_actions (self);
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
  gtk_widget_dispose_template (GTK_WIDGET (self), ATELIER_TYPE_WRITE_PAGE);
  G_OBJECT_CLASS (atelier_write_page_parent_class)->dispose (object);
}

static void
atelier_write_page_finalize (GObject *object)
{
  AtelierWritePage *self = ATELIER_WRITE_PAGE (object);

  g_clear_object (&self->document);
  g_free (self->models_folder);
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
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, word_count);
  gtk_widget_class_bind_template_child (widget_class, AtelierWritePage, view);
  gtk_widget_class_bind_template_callback (widget_class, on_model_selected);

  gtk_widget_class_install_action (widget_class, "write.load", NULL, load_activated);
  gtk_widget_class_install_action (widget_class, "write.cancel-load", NULL,
                                   cancel_load_activated);
  gtk_widget_class_install_action (widget_class, "write.continue", NULL, continue_activated);
  gtk_widget_class_install_action (widget_class, "write.stop", NULL, stop_activated);
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

  /* In the capture phase, so that the editor does not take Ctrl+Enter as a new line. */
  shortcuts = GTK_SHORTCUT_CONTROLLER (gtk_shortcut_controller_new ());
  gtk_event_controller_set_propagation_phase (GTK_EVENT_CONTROLLER (shortcuts),
                                              GTK_PHASE_CAPTURE);
  gtk_shortcut_controller_add_shortcut (shortcuts,
                                        gtk_shortcut_new (gtk_shortcut_trigger_parse_string ("<Control>Return"),
                                                          gtk_named_action_new ("write.continue")));
  gtk_shortcut_controller_add_shortcut (shortcuts,
                                        gtk_shortcut_new (gtk_keyval_trigger_new (GDK_KEY_Escape, 0),
                                                          gtk_named_action_new ("write.stop")));
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (shortcuts));

  update_word_count (self);
  update_actions (self);

  self->document = g_file_new_for_path (path);
  self->document_cancellable = g_cancellable_new ();
  g_file_load_contents_async (self->document, self->document_cancellable, document_read,
                              g_object_ref (self));
}
