/* atelier-models-page.c: AtelierModelsPage, built from ui/atelier-models-page.ui. Adding
 * (a file chooser or a drop), downloading from the catalog and removing all end in a
 * new listing, whose ::files-changed tells the other pages. One copy or download runs
 * at a time, shown in the bar at the top. */
#include "config.h"

#include <glib/gi18n.h>

#include "atelier-catalog.h"
#include "atelier-download.h"
#include "atelier-model-files.h"
#include "atelier-models-page.h"

struct _AtelierModelsPage
{
  AdwBin parent_instance;

  AdwToastOverlay *toasts;
  GtkRevealer *transfer_revealer;
  GtkLabel *transfer_label;
  GtkProgressBar *transfer_progress;
  GtkStack *models_stack;
  AdwStatusPage *models_empty;
  GtkLabel *models_folder_label;
  GtkListBox *models_list;
  GtkWidget *installed_empty;
  GtkWidget *catalog_box;
  GtkListBox *catalog_list;

  AtelierApplication *app;
  GSettings *settings;
  GCancellable *cancellable;
  GPtrArray *files;   /* the last listing's AtelierModelFile */
  GPtrArray *catalog; /* AtelierCatalogEntry */
  gboolean browsing;  /* the catalog was asked for: show it even with no model yet */

  /* The copy or download under way (NULL when none), the files waiting to be copied,
   * and where the bytes of the current copy go until it is complete. */
  GCancellable *transfer;
  GQueue pending;
  char *copy_temp, *copy_name;
  GtkFileChooserNative *chooser;
};

G_DEFINE_FINAL_TYPE (AtelierModelsPage, atelier_models_page, ADW_TYPE_BIN)

enum { SIGNAL_FILES_CHANGED, N_SIGNALS };
static guint signals[N_SIGNALS];

static void start_next_copy (AtelierModelsPage *self);

char *
atelier_models_folder (GSettings *settings)
{
  g_autofree char *folder = g_settings_get_string (settings, "models-folder");

  if (folder[0] == '\0')
    return g_build_filename (g_get_user_data_dir (), "atelier", "models", NULL);
  return g_steal_pointer (&folder);
}

static void
toast (AtelierModelsPage *self, const char *message)
{
  AdwToast *t = adw_toast_new (message);

  adw_toast_set_timeout (t, 6);
  adw_toast_overlay_add_toast (self->toasts, t);
}

/* A copy, download or removal can finish after the window closed: the page then only
 * cleans up after itself. */
static gboolean
is_disposed (AtelierModelsPage *self)
{
  return self->settings == NULL;
}

static gboolean
is_model_name (const char *name)
{
  return g_str_has_suffix (name, ".gguf") || g_str_has_suffix (name, ".safetensors");
}

static const char *
kind_icon (AtelierModelKind kind)
{
  switch (kind)
    {
    case ATELIER_MODEL_KIND_TEXT:
      return "document-edit-symbolic";
    case ATELIER_MODEL_KIND_IMAGE:
      return "image-x-generic-symbolic";
    case ATELIER_MODEL_KIND_PREVIEW:
      return "view-reveal-symbolic";
    case ATELIER_MODEL_KIND_UNKNOWN:
    default:
      return "dialog-warning-symbolic";
    }
}

/* "1.2B", "494M", "6.7M", "2.4K": parameter counts as model cards write them. */
static char *
format_count (guint64 n)
{
  if (n >= 1000000000)
    return g_strdup_printf ("%.1fB", n / 1e9);
  if (n >= 10000000)
    return g_strdup_printf ("%.0fM", n / 1e6);
  if (n >= 1000000)
    return g_strdup_printf ("%.1fM", n / 1e6);
  if (n >= 1000)
    return g_strdup_printf ("%.1fK", n / 1e3);
  return g_strdup_printf ("%" G_GUINT64_FORMAT, n);
}

/* "Llama 3 (GGUF) · Q4_K · 1.2B parameters · 808 MB", and the reason on a second line
 * when the file cannot be used. */
static char *
model_subtitle (const AtelierModelFile *file)
{
  g_autoptr (GPtrArray) pieces = g_ptr_array_new_with_free_func (g_free);
  g_autofree char *line = NULL;

  if (file->family != NULL)
    g_ptr_array_add (pieces, g_strdup_printf ("%s (%s)", file->family, file->format));
  if (file->quantization != NULL)
    g_ptr_array_add (pieces, g_strdup (file->quantization));
  if (file->n_params > 0)
    {
      g_autofree char *count = format_count (file->n_params);

      /* Translators: a model's size in parameters, e.g. "1.2B parameters". */
      g_ptr_array_add (pieces, g_strdup_printf (_("%s parameters"), count));
    }
  g_ptr_array_add (pieces, g_format_size (file->size));
  g_ptr_array_add (pieces, NULL);
  line = g_strjoinv (" · ", (char **) pieces->pdata);
  if (file->error == NULL)
    return g_steal_pointer (&line);
  return g_strdup_printf ("%s\n%s", line, file->error);
}

static GtkWidget *
model_row_new (const AtelierModelFile *file)
{
  GtkWidget *row = adw_action_row_new ();
  g_autofree char *subtitle = model_subtitle (file);
  g_autofree char *tooltip = g_strdup_printf (_("Remove %s"), file->name);
  GtkWidget *icon = gtk_image_new_from_icon_name (kind_icon (file->kind));
  GtkWidget *remove = gtk_button_new_from_icon_name ("user-trash-symbolic");

  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), file->name);
  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (row), subtitle);
  if (file->error != NULL)
    gtk_widget_add_css_class (icon, "warning");
  adw_action_row_add_prefix (ADW_ACTION_ROW (row), icon);

  gtk_widget_set_valign (remove, GTK_ALIGN_CENTER);
  gtk_widget_set_tooltip_text (remove, tooltip);
  gtk_widget_add_css_class (remove, "flat");
  gtk_actionable_set_action_name (GTK_ACTIONABLE (remove), "models.remove");
  gtk_actionable_set_action_target (GTK_ACTIONABLE (remove), "s", file->name);
  adw_action_row_add_suffix (ADW_ACTION_ROW (row), remove);
  return row;
}

static gboolean
is_installed (AtelierModelsPage *self, const char *name)
{
  for (guint i = 0; self->files != NULL && i < self->files->len; i++)
    if (g_str_equal (((AtelierModelFile *) g_ptr_array_index (self->files, i))->name, name))
      return TRUE;
  return FALSE;
}

static GtkWidget *
catalog_row_new (AtelierModelsPage *self, const AtelierCatalogEntry *entry, const char *folder)
{
  GtkWidget *row = adw_action_row_new ();
  g_autofree char *size = g_format_size (entry->size);
  g_autofree char *about = g_strdup_printf (_("about %s"), size);
  g_autofree char *destination = g_build_filename (folder, entry->filename, NULL);
  g_autofree char *part = atelier_download_part_path (destination);
  g_autofree char *meta = NULL;
  g_autofree char *subtitle = NULL;
  GtkWidget *suffix;

  meta = g_strjoin (" · ", entry->family, about, entry->licence,
                    entry->sha256 != NULL ? _("SHA-256 checked")
                                          : _("no checksum known: only its size is checked"),
                    NULL);
  subtitle = g_strdup_printf ("%s\n%s", entry->description, meta);
  adw_preferences_row_set_title (ADW_PREFERENCES_ROW (row), entry->name);
  adw_preferences_row_set_use_markup (ADW_PREFERENCES_ROW (row), FALSE);
  adw_action_row_set_subtitle (ADW_ACTION_ROW (row), subtitle);
  adw_action_row_add_prefix (ADW_ACTION_ROW (row),
                             gtk_image_new_from_icon_name (kind_icon (entry->kind)));

  if (is_installed (self, entry->filename))
    {
      suffix = gtk_label_new (_("Installed"));
      gtk_widget_add_css_class (suffix, "dim-label");
    }
  else
    {
      /* A .part left by a cancelled download: the same button carries on from there. */
      gboolean partial = g_file_test (part, G_FILE_TEST_EXISTS);

      suffix = gtk_button_new_with_mnemonic (partial ? _("_Resume") : _("_Download"));
      gtk_widget_set_tooltip_text (suffix, entry->url);
      gtk_actionable_set_action_name (GTK_ACTIONABLE (suffix), "models.download");
      gtk_actionable_set_action_target (GTK_ACTIONABLE (suffix), "s", entry->filename);
    }
  gtk_widget_set_valign (suffix, GTK_ALIGN_CENTER);
  adw_action_row_add_suffix (ADW_ACTION_ROW (row), suffix);
  return row;
}

static void
clear_list (GtkListBox *list)
{
  GtkWidget *child;

  while ((child = gtk_widget_get_first_child (GTK_WIDGET (list))) != NULL)
    gtk_list_box_remove (list, child);
}

static void
show_catalog (AtelierModelsPage *self)
{
  g_autofree char *folder = atelier_models_folder (self->settings);

  clear_list (self->catalog_list);
  for (guint i = 0; self->catalog != NULL && i < self->catalog->len; i++)
    gtk_list_box_append (self->catalog_list,
                         catalog_row_new (self, g_ptr_array_index (self->catalog, i), folder));
}

static void
show_stack_page (AtelierModelsPage *self)
{
  gboolean any = self->files != NULL && self->files->len > 0;

  gtk_widget_set_visible (self->installed_empty, !any);
  gtk_widget_set_visible (GTK_WIDGET (self->models_list), any);
  gtk_stack_set_visible_child_name (self->models_stack,
                                    any || self->browsing ? "list" : "empty");
}

static void
models_listed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GError) error = NULL;
  g_autoptr (GPtrArray) files = atelier_model_files_list_finish (result, &error);
  g_autofree char *folder = NULL;
  AtelierModelsPage *self;

  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  self = ATELIER_MODELS_PAGE (user_data);
  if (files == NULL)
    {
      adw_status_page_set_description (self->models_empty, error->message);
      gtk_stack_set_visible_child_name (self->models_stack, "empty");
      return;
    }

  folder = atelier_models_folder (self->settings);
  g_clear_pointer (&self->files, g_ptr_array_unref);
  self->files = g_ptr_array_ref (files);
  clear_list (self->models_list);
  for (guint i = 0; i < files->len; i++)
    gtk_list_box_append (self->models_list, model_row_new (g_ptr_array_index (files, i)));
  show_catalog (self);
  show_stack_page (self);
  g_signal_emit (self, signals[SIGNAL_FILES_CHANGED], 0, folder, files);
}

void
atelier_models_page_refresh (AtelierModelsPage *self)
{
  g_autofree char *folder = NULL;
  g_autofree char *empty_text = NULL;

  g_return_if_fail (ATELIER_IS_MODELS_PAGE (self));
  folder = atelier_models_folder (self->settings);
  /* A listing of the previous folder must not land after this one. */
  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  self->cancellable = g_cancellable_new ();

  empty_text = g_strdup_printf (_("Download a model from the catalog, or add a GGUF or "
                                  ".safetensors file you already have. Models are kept in "
                                  "%s."),
                                folder);
  adw_status_page_set_description (self->models_empty, empty_text);
  gtk_label_set_text (self->models_folder_label, folder);
  atelier_model_files_list_async (folder, self->cancellable, models_listed, self);
}

/* --- Copies and downloads --------------------------------------------------------- */

static void
begin_transfer (AtelierModelsPage *self, const char *label)
{
  g_assert (self->transfer == NULL);
  self->transfer = g_cancellable_new ();
  gtk_label_set_text (self->transfer_label, label);
  gtk_progress_bar_set_fraction (self->transfer_progress, 0);
  gtk_progress_bar_set_text (self->transfer_progress, NULL);
  gtk_revealer_set_reveal_child (self->transfer_revealer, TRUE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "models.cancel-transfer", TRUE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "models.download", FALSE);
}

static void
end_transfer (AtelierModelsPage *self)
{
  g_clear_object (&self->transfer);
  gtk_revealer_set_reveal_child (self->transfer_revealer, FALSE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "models.cancel-transfer", FALSE);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "models.download", TRUE);
}

static void
show_progress (AtelierModelsPage *self, guint64 done, guint64 total, const char *extra)
{
  g_autofree char *done_text = g_format_size (done);
  g_autofree char *total_text = g_format_size (total);
  g_autofree char *text = NULL;

  /* Translators: progress of a copy or download: "120 MB of 491 MB". */
  text = g_strdup_printf (_("%s of %s"), done_text, total_text);
  if (extra != NULL)
    {
      g_autofree char *joined = g_strdup_printf ("%s · %s", text, extra);

      g_free (text);
      text = g_steal_pointer (&joined);
    }
  gtk_progress_bar_set_fraction (self->transfer_progress,
                                 total > 0 ? MIN (1.0, (double) done / total) : 0);
  gtk_progress_bar_set_text (self->transfer_progress, text);
}

static void
copy_progress (goffset current, goffset total, gpointer user_data)
{
  show_progress (user_data, current, total, NULL);
}

static void
copy_moved (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierModelsPage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *message = NULL;

  if (!g_file_move_finish (G_FILE (source), result, &error))
    {
      g_file_delete (G_FILE (source), NULL, NULL);
      message = g_strdup (error->message);
    }
  if (is_disposed (self))
    return;
  else
    message = g_strdup_printf (_("Added %s"), self->copy_name);
  g_clear_pointer (&self->copy_temp, g_free);
  g_clear_pointer (&self->copy_name, g_free);
  end_transfer (self);
  toast (self, message);
  atelier_models_page_refresh (self);
  start_next_copy (self);
}

static void
copy_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierModelsPage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GFile) temp = g_file_new_for_path (self->copy_temp);
  g_autofree char *name = g_file_get_basename (G_FILE (source));
  g_autofree char *folder = NULL;
  g_autofree char *path = NULL;
  g_autoptr (GFile) destination = NULL;

  if (!g_file_copy_finish (G_FILE (source), result, &error) || is_disposed (self))
    {
      /* Half a model must not stay behind to be listed. */
      g_file_delete (temp, NULL, NULL);
      if (is_disposed (self))
        return;
      g_clear_pointer (&self->copy_temp, g_free);
      g_clear_pointer (&self->copy_name, g_free);
      end_transfer (self);
      if (!g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
        toast (self, error->message);
      else
        g_queue_clear_full (&self->pending, g_object_unref);
      start_next_copy (self);
      return;
    }
  /* Complete: renamed into place, so that the listing never sees a partial file. */
  folder = atelier_models_folder (self->settings);
  path = g_build_filename (folder, name, NULL);
  destination = g_file_new_for_path (path);
  g_file_move_async (temp, destination, G_FILE_COPY_NONE, G_PRIORITY_DEFAULT, NULL, NULL,
                     NULL, copy_moved, g_steal_pointer (&self));
}

static void
start_next_copy (AtelierModelsPage *self)
{
  g_autoptr (GFile) source = NULL;
  g_autofree char *name = NULL;
  g_autofree char *folder = NULL;
  g_autofree char *path = NULL;
  g_autofree char *temp_name = NULL;
  g_autofree char *label = NULL;
  g_autoptr (GFile) temp = NULL;

  if (self->transfer != NULL || g_queue_is_empty (&self->pending))
    return;
  source = g_queue_pop_head (&self->pending);
  name = g_file_get_basename (source);
  folder = atelier_models_folder (self->settings);
  path = g_build_filename (folder, name, NULL);
  if (g_file_test (path, G_FILE_TEST_EXISTS))
    {
      g_autofree char *message = g_strdup_printf (_("%s is already in the models folder"),
                                                  name);

      toast (self, message);
      start_next_copy (self);
      return;
    }
  /* A hidden name the listing skips until the copy is complete. */
  temp_name = g_strdup_printf (".%s.copying", name);
  self->copy_temp = g_build_filename (folder, temp_name, NULL);
  self->copy_name = g_strdup (name);
  temp = g_file_new_for_path (self->copy_temp);
  label = g_strdup_printf (_("Copying %s"), name);
  begin_transfer (self, label);
  g_mkdir_with_parents (folder, 0755);
  g_file_copy_async (source, temp, G_FILE_COPY_OVERWRITE, G_PRIORITY_DEFAULT, self->transfer,
                     copy_progress, self, copy_done, g_object_ref (self));
}

/* Queues the model files among files for copying into the models folder. */
static void
add_files (AtelierModelsPage *self, GList *files)
{
  for (GList *l = files; l != NULL; l = l->next)
    {
      g_autofree char *name = g_file_get_basename (l->data);

      if (name == NULL || !is_model_name (name))
        {
          g_autofree char *message = g_strdup_printf (_("%s is not a GGUF or .safetensors "
                                                        "file"),
                                                      name != NULL ? name : "?");

          toast (self, message);
          continue;
        }
      g_queue_push_tail (&self->pending, g_object_ref (l->data));
    }
  start_next_copy (self);
}

static gboolean
on_drop (GtkDropTarget *target, const GValue *value, double x, double y, gpointer user_data)
{
  AtelierModelsPage *self = user_data;
  GSList *dropped = gdk_file_list_get_files (g_value_get_boxed (value));
  g_autoptr (GList) files = NULL;

  for (GSList *l = dropped; l != NULL; l = l->next)
    files = g_list_append (files, l->data);
  g_slist_free (dropped);
  add_files (self, files);
  return TRUE;
}

static void
chooser_response (GtkNativeDialog *dialog, int response, gpointer user_data)
{
  AtelierModelsPage *self = user_data;
  g_autoptr (GListModel) chosen = NULL;
  g_autolist (GFile) files = NULL;

  if (response == GTK_RESPONSE_ACCEPT)
    {
      chosen = gtk_file_chooser_get_files (GTK_FILE_CHOOSER (dialog));
      for (guint i = g_list_model_get_n_items (chosen); i-- > 0;)
        files = g_list_prepend (files, g_list_model_get_item (chosen, i));
      add_files (self, files);
    }
  g_clear_object (&self->chooser);
}

static void
add_activated (GtkWidget *widget, const char *action, GVariant *parameter)
{
  AtelierModelsPage *self = ATELIER_MODELS_PAGE (widget);
  GtkRoot *root = gtk_widget_get_root (widget);
  GtkFileFilter *filter = gtk_file_filter_new ();

  if (self->chooser != NULL)
    return;
  self->chooser = gtk_file_chooser_native_new (_("Add a Model"),
                                               GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL,
                                               GTK_FILE_CHOOSER_ACTION_OPEN, _("_Add"),
                                               _("_Cancel"));
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (self->chooser), TRUE);
  gtk_file_chooser_set_select_multiple (GTK_FILE_CHOOSER (self->chooser), TRUE);
  gtk_file_filter_set_name (filter, _("Model files (GGUF, safetensors)"));
  gtk_file_filter_add_pattern (filter, "*.gguf");
  gtk_file_filter_add_pattern (filter, "*.safetensors");
  gtk_file_chooser_add_filter (GTK_FILE_CHOOSER (self->chooser), filter);
  g_object_unref (filter);
  g_signal_connect (self->chooser, "response", G_CALLBACK (chooser_response), self);
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (self->chooser));
}

static void
cancel_transfer_activated (GtkWidget *widget, const char *action, GVariant *parameter)
{
  AtelierModelsPage *self = ATELIER_MODELS_PAGE (widget);

  g_cancellable_cancel (self->transfer);
}

static void
browse_catalog_activated (GtkWidget *widget, const char *action, GVariant *parameter)
{
  AtelierModelsPage *self = ATELIER_MODELS_PAGE (widget);
  GtkWidget *first = gtk_widget_get_first_child (GTK_WIDGET (self->catalog_list));

  self->browsing = TRUE;
  show_stack_page (self);
  /* Focus scrolls the list to the catalog. */
  if (first != NULL)
    gtk_widget_grab_focus (first);
}

static const AtelierCatalogEntry *
find_entry (AtelierModelsPage *self, const char *filename)
{
  for (guint i = 0; self->catalog != NULL && i < self->catalog->len; i++)
    {
      const AtelierCatalogEntry *entry = g_ptr_array_index (self->catalog, i);

      if (g_str_equal (entry->filename, filename))
        return entry;
    }
  return NULL;
}

static void
download_progress (const AtelierDownloadProgress *progress, gpointer user_data)
{
  g_autofree char *rate = g_format_size ((guint64) progress->rate);
  g_autofree char *extra = NULL;

  if (progress->eta >= 0 && progress->rate > 0)
    {
      guint minutes = (guint) (progress->eta / 60 + 0.5);

      /* Translators: download speed and time left: "5.2 MB/s · 3 min left". */
      extra = minutes > 0 ? g_strdup_printf (_("%s/s · %u min left"), rate, minutes)
                          : g_strdup_printf (_("%s/s · under a minute left"), rate);
    }
  show_progress (user_data, progress->received, progress->total, extra);
}

typedef struct
{
  AtelierModelsPage *self;
  char *destination;
  AtelierModelKind kind;
} DownloadJob;

static void
download_job_free (DownloadJob *job)
{
  g_free (job->destination);
  g_object_unref (job->self);
  g_free (job);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (DownloadJob, download_job_free)

static void
download_done (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (DownloadJob) job = user_data;
  AtelierModelsPage *self = job->self;
  g_autoptr (GError) error = NULL;
  g_autofree char *name = g_path_get_basename (job->destination);
  g_autofree char *message = NULL;
  gboolean ok = atelier_download_finish (result, &error);

  if (is_disposed (self))
    return;
  if (ok)
    {
      g_autofree char *taesd = g_settings_get_string (self->settings, "taesd-path");

      message = g_strdup_printf (_("Downloaded %s"), name);
      /* The first preview decoder is the one to use. */
      if (job->kind == ATELIER_MODEL_KIND_PREVIEW && taesd[0] == '\0')
        g_settings_set_string (self->settings, "taesd-path", job->destination);
    }
  else if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    message = g_strdup_printf (_("Download of %s paused: Resume carries on where it stopped"),
                               name);
  else
    message = g_strdup (error->message);
  end_transfer (self);
  toast (self, message);
  atelier_models_page_refresh (self);
}

static void
download_activated (GtkWidget *widget, const char *action, GVariant *parameter)
{
  AtelierModelsPage *self = ATELIER_MODELS_PAGE (widget);
  const AtelierCatalogEntry *entry = find_entry (self, g_variant_get_string (parameter, NULL));
  g_autofree char *folder = atelier_models_folder (self->settings);
  g_autofree char *label = NULL;
  DownloadJob *job;

  if (entry == NULL || self->transfer != NULL)
    return;
  g_mkdir_with_parents (folder, 0755);
  job = g_new0 (DownloadJob, 1);
  job->self = g_object_ref (self);
  job->destination = g_build_filename (folder, entry->filename, NULL);
  job->kind = entry->kind;
  label = g_strdup_printf (_("Downloading %s"), entry->name);
  begin_transfer (self, label);
  show_progress (self, 0, entry->size, NULL);
  /* The catalog's sizes are approximate: the server's Content-Length is checked. */
  atelier_download_async (entry->url, job->destination, 0, entry->sha256, self->transfer,
                          download_progress, self, download_done, job);
}

/* --- Removing ----------------------------------------------------------------------- */

static void
removed (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierModelsPage) self = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *name = g_file_get_basename (G_FILE (source));
  g_autofree char *message = NULL;
  gboolean trashed = g_file_trash_finish (G_FILE (source), result, &error);

  /* No trash on this file system (a removable disk, a network share): delete it. */
  if (!trashed && g_error_matches (error, G_IO_ERROR, G_IO_ERROR_NOT_SUPPORTED))
    {
      g_clear_error (&error);
      if (g_file_delete (G_FILE (source), NULL, &error))
        message = g_strdup_printf (_("Deleted %s"), name);
    }
  else if (trashed)
    message = g_strdup_printf (_("Moved %s to the trash"), name);
  if (is_disposed (self))
    return;
  toast (self, message != NULL ? message : error->message);
  atelier_models_page_refresh (self);
}

static void
remove_response (AdwMessageDialog *dialog, const char *response, gpointer user_data)
{
  AtelierModelsPage *self = user_data;
  const char *name = g_object_get_data (G_OBJECT (dialog), "model-name");
  g_autofree char *folder = atelier_models_folder (self->settings);
  g_autofree char *path = g_build_filename (folder, name, NULL);
  g_autoptr (GFile) file = g_file_new_for_path (path);

  if (!g_str_equal (response, "remove"))
    return;
  /* A loaded model goes with its file. */
  if (g_strcmp0 (atelier_application_get_text_model_name (self->app), name) == 0)
    atelier_application_set_text_model (self->app, NULL, NULL);
  if (g_strcmp0 (atelier_application_get_image_model_name (self->app), name) == 0)
    atelier_application_set_image_model (self->app, NULL, NULL);
  g_file_trash_async (file, G_PRIORITY_DEFAULT, NULL, removed, g_object_ref (self));
}

static void
remove_activated (GtkWidget *widget, const char *action, GVariant *parameter)
{
  AtelierModelsPage *self = ATELIER_MODELS_PAGE (widget);
  const char *name = g_variant_get_string (parameter, NULL);
  GtkRoot *root = gtk_widget_get_root (widget);
  GtkWidget *dialog;

  dialog = adw_message_dialog_new (GTK_IS_WINDOW (root) ? GTK_WINDOW (root) : NULL, NULL,
                                   NULL);
  adw_message_dialog_format_heading (ADW_MESSAGE_DIALOG (dialog), _("Remove %s?"), name);
  adw_message_dialog_set_body (ADW_MESSAGE_DIALOG (dialog),
                               _("The file is moved to the trash, or deleted where there "
                                 "is no trash. A model loaded from it is unloaded."));
  adw_message_dialog_add_responses (ADW_MESSAGE_DIALOG (dialog), "cancel", _("_Cancel"),
                                    "remove", _("_Remove"), NULL);
  adw_message_dialog_set_response_appearance (ADW_MESSAGE_DIALOG (dialog), "remove",
                                              ADW_RESPONSE_DESTRUCTIVE);
  adw_message_dialog_set_default_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  adw_message_dialog_set_close_response (ADW_MESSAGE_DIALOG (dialog), "cancel");
  g_object_set_data_full (G_OBJECT (dialog), "model-name", g_strdup (name), g_free);
  g_signal_connect_object (dialog, "response", G_CALLBACK (remove_response), self, 0);
  gtk_window_present (GTK_WINDOW (dialog));
}

static void
atelier_models_page_dispose (GObject *object)
{
  AtelierModelsPage *self = ATELIER_MODELS_PAGE (object);

  g_cancellable_cancel (self->cancellable);
  g_clear_object (&self->cancellable);
  g_cancellable_cancel (self->transfer);
  g_queue_clear_full (&self->pending, g_object_unref);
  if (self->chooser != NULL)
    gtk_native_dialog_destroy (GTK_NATIVE_DIALOG (self->chooser));
  g_clear_object (&self->chooser);
  g_clear_object (&self->settings);
  g_clear_pointer (&self->files, g_ptr_array_unref);
  g_clear_pointer (&self->catalog, g_ptr_array_unref);
  /* The bin's child is a bound template child: drop it once, here, not twice. */
  adw_bin_set_child (ADW_BIN (self), NULL);
  gtk_widget_dispose_template (GTK_WIDGET (self), ATELIER_TYPE_MODELS_PAGE);
  G_OBJECT_CLASS (atelier_models_page_parent_class)->dispose (object);
}

static void
atelier_models_page_finalize (GObject *object)
{
  AtelierModelsPage *self = ATELIER_MODELS_PAGE (object);

  g_clear_object (&self->transfer);
  g_free (self->copy_temp);
  g_free (self->copy_name);
  G_OBJECT_CLASS (atelier_models_page_parent_class)->finalize (object);
}

static void
atelier_models_page_class_init (AtelierModelsPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_models_page_dispose;
  object_class->finalize = atelier_models_page_finalize;
  signals[SIGNAL_FILES_CHANGED] =
    g_signal_new ("files-changed", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL,
                  NULL, NULL, G_TYPE_NONE, 2, G_TYPE_STRING, G_TYPE_PTR_ARRAY);
  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-models-page.ui");
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, toasts);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, transfer_revealer);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, transfer_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, transfer_progress);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, models_stack);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, models_empty);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, models_folder_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, models_list);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, installed_empty);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, catalog_box);
  gtk_widget_class_bind_template_child (widget_class, AtelierModelsPage, catalog_list);
  gtk_widget_class_install_action (widget_class, "models.add", NULL, add_activated);
  gtk_widget_class_install_action (widget_class, "models.browse-catalog", NULL,
                                   browse_catalog_activated);
  gtk_widget_class_install_action (widget_class, "models.cancel-transfer", NULL,
                                   cancel_transfer_activated);
  gtk_widget_class_install_action (widget_class, "models.download", "s", download_activated);
  gtk_widget_class_install_action (widget_class, "models.remove", "s", remove_activated);
}

static void
atelier_models_page_init (AtelierModelsPage *self)
{
  g_autoptr (GError) error = NULL;
  GtkDropTarget *drop = gtk_drop_target_new (GDK_TYPE_FILE_LIST, GDK_ACTION_COPY);

  gtk_widget_init_template (GTK_WIDGET (self));
  g_queue_init (&self->pending);
  gtk_widget_action_set_enabled (GTK_WIDGET (self), "models.cancel-transfer", FALSE);
  g_signal_connect (drop, "drop", G_CALLBACK (on_drop), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drop));

  /* The catalog ships inside the program: failing to read it is a packaging bug, but
   * the rest of the page still works without it. */
  self->catalog = atelier_catalog_load (&error);
  if (self->catalog == NULL)
    {
      g_warning ("%s", error->message);
      gtk_widget_set_visible (self->catalog_box, FALSE);
    }
}

void
atelier_models_page_set_application (AtelierModelsPage *self, AtelierApplication *app)
{
  g_return_if_fail (ATELIER_IS_MODELS_PAGE (self));
  self->app = app;
  self->settings = g_object_ref (atelier_application_get_settings (app));
  g_signal_connect_object (self->settings, "changed::models-folder",
                           G_CALLBACK (atelier_models_page_refresh), self, G_CONNECT_SWAPPED);
  show_catalog (self);
  atelier_models_page_refresh (self);
}
