/* atelier-gallery-page.c: AtelierGalleryPage, built from ui/atelier-gallery-page.ui.
 *
 * The grid shows the library through a filter (kind, favourites, prompt search) and a
 * multi-selection; previews come from AtelierThumbnails, made off the UI thread and
 * cached, so that only the few cells on screen ever cost anything. */
#include "config.h"

#include <glib/gi18n.h>

#include "atelier-export.h"
#include "atelier-gallery-page.h"
#include "atelier-thumbnails.h"

/* Twice a cell's side, for HiDPI screens. */
#define THUMBNAIL_SIZE 320
/* About ten screens of cells: scrolling back is instant, memory stays under ~400 MB. */
#define THUMBNAIL_CACHE 1024
#define CELL_SIZE 176

struct _AtelierGalleryPage
{
  AdwBin parent_instance;

  GtkToggleButton *all_button, *images_button, *texts_button, *audio_button;
  GtkToggleButton *favourites_button;
  GtkSearchEntry *search_entry;
  GtkLabel *count_label;
  GtkProgressBar *export_progress;
  GtkStack *content_stack;
  GtkGridView *grid_view;
  AdwStatusPage *error_page;

  AtelierApplication *app;
  AtelierLibrary *library;
  GSettings *settings;
  GtkCustomFilter *filter;
  GtkFilterListModel *filtered;
  GtkMultiSelection *selection;
  AtelierThumbnails *thumbnails;
  /* The search text, case-folded; NULL when empty. */
  char *search;
  /* What the last delete moved to the trash, for its Undo. */
  GPtrArray *trashed;
  AdwToast *delete_toast;
  GCancellable *cancellable;
  gboolean exporting;
};

G_DEFINE_FINAL_TYPE (AtelierGalleryPage, atelier_gallery_page, ADW_TYPE_BIN)

enum { SIGNAL_REUSE_ASSET, N_SIGNALS };
static guint signals[N_SIGNALS];

/* The async callbacks hold a reference to the page, so they may run after the window
 * closed and the template's widgets are gone. */
static gboolean
is_disposed (AtelierGalleryPage *self)
{
  return self->grid_view == NULL;
}

static void
add_toast (AtelierGalleryPage *self, AdwToast *toast)
{
  adw_toast_overlay_add_toast (ADW_TOAST_OVERLAY (adw_bin_get_child (ADW_BIN (self))), toast);
}

static void show_message (AtelierGalleryPage *self, const char *format, ...) G_GNUC_PRINTF (2, 3);

static void
show_message (AtelierGalleryPage *self, const char *format, ...)
{
  g_autofree char *message = NULL;
  g_autofree char *markup = NULL;
  va_list args;

  va_start (args, format);
  message = g_strdup_vprintf (format, args);
  va_end (args);
  /* A toast's title is markup; messages quote file names and prompts. */
  markup = g_markup_escape_text (message, -1);
  add_toast (self, adw_toast_new (markup));
}

/* The selected assets, in the grid's order. */
static GPtrArray *
selected_assets (AtelierGalleryPage *self)
{
  GPtrArray *assets = g_ptr_array_new_with_free_func (g_object_unref);
  g_autoptr (GtkBitset) selected = NULL;
  GtkBitsetIter iter;
  guint position;

  if (self->selection == NULL)
    return assets;
  selected = gtk_selection_model_get_selection (GTK_SELECTION_MODEL (self->selection));
  for (gboolean more = gtk_bitset_iter_init_first (&iter, selected, &position); more;
       more = gtk_bitset_iter_next (&iter, &position))
    g_ptr_array_add (assets, g_list_model_get_item (G_LIST_MODEL (self->filtered), position));
  return assets;
}

/* The one selected asset, or NULL when none or several are. */
static AtelierAsset *
single_selected (AtelierGalleryPage *self)
{
  g_autoptr (GPtrArray) assets = selected_assets (self);

  return assets->len == 1 ? g_object_ref (g_ptr_array_index (assets, 0)) : NULL;
}

static void
update_actions (AtelierGalleryPage *self)
{
  g_autoptr (GPtrArray) assets = selected_assets (self);
  AtelierAsset *single = assets->len == 1 ? g_ptr_array_index (assets, 0) : NULL;
  gboolean image = single != NULL && atelier_asset_get_kind (single) == ATELIER_ASSET_IMAGE;
  GtkWidget *widget = GTK_WIDGET (self);

  gtk_widget_action_set_enabled (widget, "gallery.open", single != NULL);
  gtk_widget_action_set_enabled (widget, "gallery.copy", assets->len > 0);
  gtk_widget_action_set_enabled (widget, "gallery.delete", assets->len > 0);
  gtk_widget_action_set_enabled (widget, "gallery.reuse", image);
  gtk_widget_action_set_enabled (widget, "gallery.use-as-init", image);
  gtk_widget_action_set_enabled (widget, "gallery.export", assets->len > 0 && !self->exporting);
  gtk_widget_action_set_enabled (widget, "gallery.undo-delete",
                                 self->trashed != NULL && self->trashed->len > 0);
}

static void
update_view (AtelierGalleryPage *self)
{
  guint total, shown;
  g_autofree char *count = NULL;

  if (self->library == NULL)
    return;
  total = g_list_model_get_n_items (G_LIST_MODEL (self->library));
  shown = g_list_model_get_n_items (G_LIST_MODEL (self->filtered));
  if (total == 0)
    gtk_stack_set_visible_child_name (self->content_stack, "empty");
  else if (shown == 0)
    gtk_stack_set_visible_child_name (self->content_stack, "no-match");
  else
    gtk_stack_set_visible_child_name (self->content_stack, "grid");
  if (shown == total)
    count = g_strdup_printf (ngettext ("%u item", "%u items", total), total);
  else
    /* Translators: items shown by the filters, of all the library's items. */
    count = g_strdup_printf (ngettext ("%u of %u item", "%u of %u items", total), shown, total);
  gtk_label_set_text (self->count_label, count);
  update_actions (self);
}

/* --- filter ------------------------------------------------------------------------ */

static int
kind_shown (AtelierGalleryPage *self)
{
  if (gtk_toggle_button_get_active (self->images_button))
    return ATELIER_ASSET_IMAGE;
  if (gtk_toggle_button_get_active (self->texts_button))
    return ATELIER_ASSET_TEXT;
  if (gtk_toggle_button_get_active (self->audio_button))
    return ATELIER_ASSET_AUDIO;
  return -1;
}

static gboolean
asset_matches (gpointer item, gpointer user_data)
{
  AtelierGalleryPage *self = ATELIER_GALLERY_PAGE (user_data);
  AtelierAsset *asset = ATELIER_ASSET (item);
  int kind = kind_shown (self);
  g_autofree char *prompt = NULL;

  if (kind >= 0 && (int)atelier_asset_get_kind (asset) != kind)
    return FALSE;
  if (gtk_toggle_button_get_active (self->favourites_button)
      && !atelier_asset_get_favourite (asset))
    return FALSE;
  if (self->search == NULL)
    return TRUE;
  prompt = g_utf8_casefold (atelier_asset_get_prompt (asset), -1);
  return strstr (prompt, self->search) != NULL;
}

static void
on_filter_changed (AtelierGalleryPage *self)
{
  const char *text;

  if (is_disposed (self))
    return;
  text = gtk_editable_get_text (GTK_EDITABLE (self->search_entry));
  g_clear_pointer (&self->search, g_free);
  if (text[0] != '\0')
    self->search = g_utf8_casefold (text, -1);
  gtk_filter_changed (GTK_FILTER (self->filter), GTK_FILTER_CHANGE_DIFFERENT);
  update_view (self);
}

/* A group of toggle buttons notifies twice (off, then on): filter once. */
static void
on_kind_toggled (AtelierGalleryPage *self, GtkToggleButton *button)
{
  if (gtk_toggle_button_get_active (button))
    on_filter_changed (self);
}

static void
show_all_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierGalleryPage *self = ATELIER_GALLERY_PAGE (widget);

  gtk_editable_set_text (GTK_EDITABLE (self->search_entry), "");
  gtk_toggle_button_set_active (self->favourites_button, FALSE);
  gtk_toggle_button_set_active (self->all_button, TRUE);
  on_filter_changed (self);
}

/* --- cells ------------------------------------------------------------------------- */

/* The widgets of one grid cell, and what it shows now. */
typedef struct
{
  AtelierGalleryPage *page; /* not a reference: cells die with the page */
  GtkWidget *root;
  GtkStack *preview;
  GtkPicture *picture;
  GtkLabel *text;
  GtkLabel *duration;
  GtkImage *kind_icon;
  GtkToggleButton *star;
  GtkLabel *caption;
  AtelierAsset *asset;
  gulong favourite_handler;
  GCancellable *cancellable;
} Cell;

static void
cell_unbind (Cell *cell)
{
  g_cancellable_cancel (cell->cancellable);
  g_clear_object (&cell->cancellable);
  if (cell->asset != NULL)
    g_clear_signal_handler (&cell->favourite_handler, cell->asset);
  g_clear_object (&cell->asset);
}

static void
cell_free (Cell *cell)
{
  cell_unbind (cell);
  g_free (cell);
}

static const char *
kind_icon_name (AtelierAssetKind kind)
{
  switch (kind)
    {
    case ATELIER_ASSET_IMAGE:
      return "image-x-generic-symbolic";
    case ATELIER_ASSET_TEXT:
      return "text-x-generic-symbolic";
    case ATELIER_ASSET_AUDIO:
      return "audio-x-generic-symbolic";
    }
  g_return_val_if_reached (NULL);
}

static void
cell_show_preview (Cell *cell, GObject *preview)
{
  switch (atelier_asset_get_kind (cell->asset))
    {
    case ATELIER_ASSET_IMAGE:
      gtk_picture_set_paintable (cell->picture, GDK_PAINTABLE (preview));
      gtk_stack_set_visible_child_name (cell->preview, "image");
      break;
    case ATELIER_ASSET_TEXT:
      gtk_label_set_text (cell->text,
                          gtk_string_object_get_string (GTK_STRING_OBJECT (preview)));
      gtk_stack_set_visible_child_name (cell->preview, "text");
      break;
    case ATELIER_ASSET_AUDIO:
      gtk_label_set_text (cell->duration,
                          gtk_string_object_get_string (GTK_STRING_OBJECT (preview)));
      gtk_stack_set_visible_child_name (cell->preview, "audio");
      break;
    }
}

static void
preview_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  Cell *cell = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GObject) preview =
    atelier_thumbnails_load_finish (ATELIER_THUMBNAILS (source), result, &error);

  /* Cancelled means the cell was unbound, maybe freed: touch nothing. */
  if (g_error_matches (error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
    return;
  if (preview != NULL)
    cell_show_preview (cell, preview);
  else
    {
      gtk_stack_set_visible_child_name (cell->preview, "missing");
      gtk_widget_set_tooltip_text (cell->root, error->message);
    }
  g_clear_object (&cell->cancellable);
}

static void
cell_sync_star (Cell *cell)
{
  gboolean favourite = atelier_asset_get_favourite (cell->asset);

  gtk_toggle_button_set_active (cell->star, favourite);
  gtk_button_set_icon_name (GTK_BUTTON (cell->star),
                            favourite ? "starred-symbolic" : "non-starred-symbolic");
  if (favourite)
    gtk_widget_add_css_class (GTK_WIDGET (cell->star), "favourite");
  else
    gtk_widget_remove_css_class (GTK_WIDGET (cell->star), "favourite");
}

static void
on_star_toggled (GtkToggleButton *star, Cell *cell)
{
  AtelierGalleryPage *self = cell->page;
  gboolean active = gtk_toggle_button_get_active (star);
  g_autoptr (GError) error = NULL;

  if (cell->asset == NULL || active == atelier_asset_get_favourite (cell->asset))
    return;
  if (!atelier_library_set_favourite (self->library, cell->asset, active, &error))
    {
      show_message (self, _("The favourite could not be saved: %s"), error->message);
      cell_sync_star (cell);
    }
}

static void
on_asset_favourite (Cell *cell)
{
  AtelierGalleryPage *self = cell->page;

  cell_sync_star (cell);
  /* Unstarred under "favourites only": it leaves the grid. */
  if (gtk_toggle_button_get_active (self->favourites_button))
    {
      gtk_filter_changed (GTK_FILTER (self->filter), GTK_FILTER_CHANGE_DIFFERENT);
      update_view (self);
    }
}

static void
cell_bind (Cell *cell, AtelierAsset *asset)
{
  AtelierGalleryPage *self = cell->page;
  AtelierAssetKind kind = atelier_asset_get_kind (asset);
  const char *prompt = atelier_asset_get_prompt (asset);
  g_autofree char *name = g_path_get_basename (atelier_asset_get_path (asset));
  GObject *preview;

  cell->asset = g_object_ref (asset);
  gtk_image_set_from_icon_name (cell->kind_icon, kind_icon_name (kind));
  gtk_label_set_text (cell->caption, prompt[0] != '\0' ? prompt : name);
  gtk_widget_set_tooltip_text (cell->root, prompt[0] != '\0' ? prompt : name);
  cell_sync_star (cell);
  cell->favourite_handler = g_signal_connect_swapped (asset, "notify::favourite",
                                                      G_CALLBACK (on_asset_favourite), cell);

  preview = atelier_thumbnails_lookup (self->thumbnails, asset);
  if (preview != NULL)
    {
      cell_show_preview (cell, preview);
      return;
    }
  gtk_picture_set_paintable (cell->picture, NULL);
  gtk_stack_set_visible_child_name (cell->preview, "loading");
  cell->cancellable = g_cancellable_new ();
  atelier_thumbnails_load_async (self->thumbnails, asset, cell->cancellable, preview_loaded,
                                 cell);
}

/* The files a drag or a copy of asset carries: the whole selection when the asset is in
 * it, else the asset alone. */
static GdkFileList *
files_for (AtelierGalleryPage *self, AtelierAsset *asset)
{
  g_autoptr (GPtrArray) assets = selected_assets (self);
  GSList *files = NULL;
  GdkFileList *list;

  if (asset != NULL && !g_ptr_array_find (assets, asset, NULL))
    {
      g_ptr_array_set_size (assets, 0);
      g_ptr_array_add (assets, g_object_ref (asset));
    }
  for (guint i = assets->len; i-- > 0;)
    files = g_slist_prepend (files, g_file_new_for_path (
                                      atelier_asset_get_path (g_ptr_array_index (assets, i))));
  list = gdk_file_list_new_from_list (files);
  g_slist_free_full (files, g_object_unref);
  return list;
}

static GdkContentProvider *
on_drag_prepare (GtkDragSource *source, double x, double y, Cell *cell)
{
  GdkPaintable *icon;
  GdkFileList *files;
  GdkContentProvider *provider;

  if (cell->asset == NULL)
    return NULL;
  icon = gtk_picture_get_paintable (cell->picture);
  if (icon != NULL && atelier_asset_get_kind (cell->asset) == ATELIER_ASSET_IMAGE)
    gtk_drag_source_set_icon (source, icon, 0, 0);
  files = files_for (cell->page, cell->asset);
  provider = gdk_content_provider_new_typed (GDK_TYPE_FILE_LIST, files);
  g_boxed_free (GDK_TYPE_FILE_LIST, files);
  return provider;
}

static void
setup_cell (GtkSignalListItemFactory *factory, GtkListItem *item, AtelierGalleryPage *self)
{
  Cell *cell = g_new0 (Cell, 1);
  GtkWidget *overlay = gtk_overlay_new ();
  GtkWidget *audio_box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 6);
  GtkWidget *missing = gtk_image_new_from_icon_name ("image-missing-symbolic");
  GtkWidget *spinner = gtk_spinner_new ();
  GtkWidget *audio_icon = gtk_image_new_from_icon_name ("audio-x-generic-symbolic");
  GtkDragSource *drag = gtk_drag_source_new ();

  cell->page = self;
  cell->root = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  gtk_widget_add_css_class (cell->root, "gallery-cell");

  cell->preview = GTK_STACK (gtk_stack_new ());
  gtk_widget_set_size_request (GTK_WIDGET (cell->preview), CELL_SIZE, CELL_SIZE);
  gtk_widget_add_css_class (GTK_WIDGET (cell->preview), "gallery-preview");
  gtk_widget_set_overflow (GTK_WIDGET (cell->preview), GTK_OVERFLOW_HIDDEN);

  cell->picture = GTK_PICTURE (gtk_picture_new ());
  gtk_picture_set_can_shrink (cell->picture, TRUE);
  gtk_picture_set_content_fit (cell->picture, GTK_CONTENT_FIT_COVER);
  gtk_stack_add_named (cell->preview, GTK_WIDGET (cell->picture), "image");

  cell->text = GTK_LABEL (gtk_label_new (NULL));
  gtk_label_set_wrap (cell->text, TRUE);
  gtk_label_set_wrap_mode (cell->text, PANGO_WRAP_WORD_CHAR);
  gtk_label_set_lines (cell->text, 8);
  gtk_label_set_ellipsize (cell->text, PANGO_ELLIPSIZE_END);
  gtk_label_set_xalign (cell->text, 0);
  gtk_label_set_yalign (cell->text, 0);
  gtk_widget_add_css_class (GTK_WIDGET (cell->text), "gallery-text");
  gtk_stack_add_named (cell->preview, GTK_WIDGET (cell->text), "text");

  gtk_image_set_pixel_size (GTK_IMAGE (audio_icon), 48);
  gtk_widget_add_css_class (audio_icon, "dim-label");
  cell->duration = GTK_LABEL (gtk_label_new (NULL));
  gtk_widget_add_css_class (GTK_WIDGET (cell->duration), "numeric");
  gtk_widget_set_valign (audio_box, GTK_ALIGN_CENTER);
  gtk_box_append (GTK_BOX (audio_box), audio_icon);
  gtk_box_append (GTK_BOX (audio_box), GTK_WIDGET (cell->duration));
  gtk_stack_add_named (cell->preview, audio_box, "audio");

  gtk_image_set_pixel_size (GTK_IMAGE (missing), 48);
  gtk_widget_add_css_class (missing, "dim-label");
  gtk_stack_add_named (cell->preview, missing, "missing");
  gtk_widget_set_halign (spinner, GTK_ALIGN_CENTER);
  gtk_widget_set_valign (spinner, GTK_ALIGN_CENTER);
  gtk_stack_add_named (cell->preview, spinner, "loading");
  /* It only animates while its stack page is shown (mapped). */
  gtk_spinner_set_spinning (GTK_SPINNER (spinner), TRUE);
  gtk_overlay_set_child (GTK_OVERLAY (overlay), GTK_WIDGET (cell->preview));

  cell->kind_icon = GTK_IMAGE (gtk_image_new ());
  gtk_widget_set_halign (GTK_WIDGET (cell->kind_icon), GTK_ALIGN_START);
  gtk_widget_set_valign (GTK_WIDGET (cell->kind_icon), GTK_ALIGN_END);
  gtk_widget_add_css_class (GTK_WIDGET (cell->kind_icon), "gallery-badge");
  gtk_overlay_add_overlay (GTK_OVERLAY (overlay), GTK_WIDGET (cell->kind_icon));

  cell->star = GTK_TOGGLE_BUTTON (gtk_toggle_button_new ());
  gtk_widget_set_halign (GTK_WIDGET (cell->star), GTK_ALIGN_END);
  gtk_widget_set_valign (GTK_WIDGET (cell->star), GTK_ALIGN_START);
  gtk_widget_set_focus_on_click (GTK_WIDGET (cell->star), FALSE);
  gtk_widget_set_tooltip_text (GTK_WIDGET (cell->star), _("Favourite"));
  gtk_widget_add_css_class (GTK_WIDGET (cell->star), "circular");
  gtk_widget_add_css_class (GTK_WIDGET (cell->star), "gallery-star");
  g_signal_connect (cell->star, "toggled", G_CALLBACK (on_star_toggled), cell);
  gtk_overlay_add_overlay (GTK_OVERLAY (overlay), GTK_WIDGET (cell->star));
  gtk_box_append (GTK_BOX (cell->root), overlay);

  cell->caption = GTK_LABEL (gtk_label_new (NULL));
  gtk_label_set_ellipsize (cell->caption, PANGO_ELLIPSIZE_END);
  gtk_label_set_single_line_mode (cell->caption, TRUE);
  gtk_label_set_xalign (cell->caption, 0);
  gtk_label_set_max_width_chars (cell->caption, 1);
  gtk_widget_add_css_class (GTK_WIDGET (cell->caption), "caption");
  gtk_box_append (GTK_BOX (cell->root), GTK_WIDGET (cell->caption));

  gtk_drag_source_set_actions (drag, GDK_ACTION_COPY);
  g_signal_connect (drag, "prepare", G_CALLBACK (on_drag_prepare), cell);
  gtk_widget_add_controller (cell->root, GTK_EVENT_CONTROLLER (drag));

  g_object_set_data_full (G_OBJECT (item), "atelier-cell", cell, (GDestroyNotify)cell_free);
  gtk_list_item_set_child (item, cell->root);
}

static void
bind_cell (GtkSignalListItemFactory *factory, GtkListItem *item, AtelierGalleryPage *self)
{
  cell_bind (g_object_get_data (G_OBJECT (item), "atelier-cell"),
             gtk_list_item_get_item (item));
}

static void
unbind_cell (GtkSignalListItemFactory *factory, GtkListItem *item, AtelierGalleryPage *self)
{
  cell_unbind (g_object_get_data (G_OBJECT (item), "atelier-cell"));
}

/* --- open -------------------------------------------------------------------------- */

static void
viewer_texture_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GtkPicture) picture = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GdkTexture) texture = atelier_texture_load_finish (result, &error);

  if (texture != NULL)
    gtk_picture_set_paintable (picture, GDK_PAINTABLE (texture));
  else
    gtk_picture_set_alternative_text (picture, error->message);
}

static void
viewer_text_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (GtkTextView) view = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize length;

  if (!g_file_load_contents_finish (G_FILE (source), result, &contents, &length, NULL, &error))
    gtk_text_buffer_set_text (gtk_text_view_get_buffer (view), error->message, -1);
  else if (g_utf8_validate_len (contents, length, NULL))
    gtk_text_buffer_set_text (gtk_text_view_get_buffer (view), contents, length);
}

static GtkWidget *
details_label (AtelierAsset *asset)
{
  g_autoptr (GDateTime) time =
    g_date_time_new_from_unix_local (atelier_asset_get_created (asset) / G_USEC_PER_SEC);
  g_autofree char *date = g_date_time_format (time, "%x %X");
  GString *details = g_string_new (date);
  GtkWidget *label;

  if (atelier_asset_get_model (asset)[0] != '\0')
    g_string_append_printf (details, " · %s", atelier_asset_get_model (asset));
  if (atelier_asset_get_kind (asset) == ATELIER_ASSET_IMAGE && atelier_asset_get_seed (asset) >= 0)
    {
      g_autofree char *seed = g_strdup_printf ("%" G_GINT64_FORMAT, atelier_asset_get_seed (asset));

      /* Translators: the random seed an image was generated with. */
      g_string_append_printf (details, _(" · seed %s"), seed);
    }
  label = gtk_label_new (details->str);
  g_string_free (details, TRUE);
  gtk_label_set_selectable (GTK_LABEL (label), TRUE);
  gtk_label_set_wrap (GTK_LABEL (label), TRUE);
  gtk_widget_add_css_class (label, "dim-label");
  return label;
}

static void
open_asset (AtelierGalleryPage *self, AtelierAsset *asset)
{
  const char *path = atelier_asset_get_path (asset);
  g_autofree char *name = g_path_get_basename (path);
  const char *prompt = atelier_asset_get_prompt (asset);
  GtkWidget *window = adw_window_new ();
  GtkWidget *box = gtk_box_new (GTK_ORIENTATION_VERTICAL, 0);
  GtkWidget *header = adw_header_bar_new ();
  GtkWidget *info = gtk_box_new (GTK_ORIENTATION_VERTICAL, 4);
  GtkWidget *content = NULL;

  gtk_window_set_transient_for (GTK_WINDOW (window),
                                GTK_WINDOW (gtk_widget_get_root (GTK_WIDGET (self))));
  gtk_window_set_default_size (GTK_WINDOW (window), 960, 720);
  gtk_window_set_title (GTK_WINDOW (window), name);
  gtk_box_append (GTK_BOX (box), header);

  switch (atelier_asset_get_kind (asset))
    {
    case ATELIER_ASSET_IMAGE:
      content = gtk_picture_new ();
      gtk_picture_set_can_shrink (GTK_PICTURE (content), TRUE);
      atelier_texture_load_async (path, NULL, viewer_texture_loaded, g_object_ref (content));
      break;
    case ATELIER_ASSET_TEXT:
      {
        GtkWidget *view = gtk_text_view_new ();
        g_autoptr (GFile) file = g_file_new_for_path (path);

        gtk_text_view_set_editable (GTK_TEXT_VIEW (view), FALSE);
        gtk_text_view_set_wrap_mode (GTK_TEXT_VIEW (view), GTK_WRAP_WORD_CHAR);
        gtk_text_view_set_left_margin (GTK_TEXT_VIEW (view), 24);
        gtk_text_view_set_right_margin (GTK_TEXT_VIEW (view), 24);
        gtk_text_view_set_top_margin (GTK_TEXT_VIEW (view), 18);
        content = gtk_scrolled_window_new ();
        gtk_scrolled_window_set_child (GTK_SCROLLED_WINDOW (content), view);
        g_file_load_contents_async (file, NULL, viewer_text_loaded, g_object_ref (view));
      }
      break;
    case ATELIER_ASSET_AUDIO:
      {
        g_autoptr (GtkMediaStream) stream = gtk_media_file_new_for_filename (path);

        content = gtk_media_controls_new (stream);
        gtk_widget_set_valign (content, GTK_ALIGN_CENTER);
        gtk_widget_set_margin_start (content, 24);
        gtk_widget_set_margin_end (content, 24);
        gtk_window_set_default_size (GTK_WINDOW (window), 560, 260);
      }
      break;
    }
  gtk_widget_set_vexpand (content, TRUE);
  gtk_box_append (GTK_BOX (box), content);

  gtk_widget_set_margin_start (info, 18);
  gtk_widget_set_margin_end (info, 18);
  gtk_widget_set_margin_top (info, 12);
  gtk_widget_set_margin_bottom (info, 12);
  if (prompt[0] != '\0')
    {
      GtkWidget *label = gtk_label_new (prompt);

      gtk_label_set_selectable (GTK_LABEL (label), TRUE);
      gtk_label_set_wrap (GTK_LABEL (label), TRUE);
      gtk_label_set_xalign (GTK_LABEL (label), 0);
      gtk_box_append (GTK_BOX (info), label);
    }
  gtk_box_append (GTK_BOX (info), details_label (asset));
  gtk_widget_set_halign (gtk_widget_get_last_child (info), GTK_ALIGN_START);
  gtk_box_append (GTK_BOX (box), info);
  adw_window_set_content (ADW_WINDOW (window), box);
  gtk_window_present (GTK_WINDOW (window));
}

static void
open_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierGalleryPage *self = ATELIER_GALLERY_PAGE (widget);
  g_autoptr (AtelierAsset) asset = single_selected (self);

  if (asset != NULL)
    open_asset (self, asset);
}

static void
on_grid_activate (AtelierGalleryPage *self, guint position)
{
  g_autoptr (AtelierAsset) asset = g_list_model_get_item (G_LIST_MODEL (self->filtered), position);

  if (asset != NULL)
    open_asset (self, asset);
}

/* --- copy -------------------------------------------------------------------------- */

typedef struct
{
  AtelierGalleryPage *page;
  GdkFileList *files;
} CopyJob;

static void
copy_job_free (CopyJob *job)
{
  g_object_unref (job->page);
  g_boxed_free (GDK_TYPE_FILE_LIST, job->files);
  g_free (job);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC (CopyJob, copy_job_free)

static void
set_clipboard (CopyJob *job, GdkContentProvider *content)
{
  GdkContentProvider *providers[] = {
    content,
    gdk_content_provider_new_typed (GDK_TYPE_FILE_LIST, job->files),
  };
  g_autoptr (GdkContentProvider) union_provider =
    gdk_content_provider_new_union (content != NULL ? providers : providers + 1,
                                    content != NULL ? 2 : 1);

  gdk_clipboard_set_content (gtk_widget_get_clipboard (GTK_WIDGET (job->page)), union_provider);
}

static void
copy_texture_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CopyJob) job = user_data;
  g_autoptr (GError) error = NULL;
  g_autoptr (GdkTexture) texture = atelier_texture_load_finish (result, &error);

  if (is_disposed (job->page))
    return;
  if (texture == NULL)
    show_message (job->page, _("The image could not be copied: %s"), error->message);
  else
    set_clipboard (job, gdk_content_provider_new_typed (GDK_TYPE_TEXTURE, texture));
}

static void
copy_text_loaded (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (CopyJob) job = user_data;
  g_autoptr (GError) error = NULL;
  g_autofree char *contents = NULL;
  gsize length;

  if (is_disposed (job->page))
    return;
  if (!g_file_load_contents_finish (G_FILE (source), result, &contents, &length, NULL, &error))
    show_message (job->page, _("The text could not be copied: %s"), error->message);
  else
    set_clipboard (job, gdk_content_provider_new_typed (G_TYPE_STRING, contents));
}

static void
copy_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierGalleryPage *self = ATELIER_GALLERY_PAGE (widget);
  g_autoptr (GPtrArray) assets = selected_assets (self);
  g_autoptr (CopyJob) job = NULL;
  AtelierAsset *asset;

  if (assets->len == 0)
    return;
  job = g_new0 (CopyJob, 1);
  job->page = g_object_ref (self);
  job->files = files_for (self, NULL);
  asset = g_ptr_array_index (assets, 0);
  /* One image or text goes as its contents too, for editors that take no files. */
  if (assets->len == 1 && atelier_asset_get_kind (asset) == ATELIER_ASSET_IMAGE)
    atelier_texture_load_async (atelier_asset_get_path (asset), NULL, copy_texture_loaded,
                                g_steal_pointer (&job));
  else if (assets->len == 1 && atelier_asset_get_kind (asset) == ATELIER_ASSET_TEXT)
    {
      g_autoptr (GFile) file = g_file_new_for_path (atelier_asset_get_path (asset));

      g_file_load_contents_async (file, NULL, copy_text_loaded, g_steal_pointer (&job));
    }
  else
    set_clipboard (job, NULL);
}

/* --- delete ------------------------------------------------------------------------ */

static void
on_delete_toast_dismissed (AtelierGalleryPage *self, AdwToast *toast)
{
  if (self->delete_toast == toast)
    self->delete_toast = NULL;
}

static void
delete_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierGalleryPage *self = ATELIER_GALLERY_PAGE (widget);
  g_autoptr (GPtrArray) assets = selected_assets (self);
  g_autoptr (GError) error = NULL;
  g_autofree char *title = NULL;
  AdwToast *toast;

  if (assets->len == 0)
    return;
  g_clear_pointer (&self->trashed, g_ptr_array_unref);
  self->trashed = g_ptr_array_new_with_free_func (g_object_unref);
  for (guint i = 0; i < assets->len; i++)
    {
      AtelierAsset *asset = g_ptr_array_index (assets, i);

      if (!atelier_library_trash (self->library, asset, &error))
        {
          show_message (self, _("%s could not be deleted: %s"), atelier_asset_get_path (asset),
                        error->message);
          break;
        }
      g_ptr_array_add (self->trashed, g_object_ref (asset));
    }
  if (self->trashed->len == 0)
    return;
  if (self->delete_toast != NULL)
    adw_toast_dismiss (self->delete_toast);
  title = g_strdup_printf (ngettext ("%u item deleted", "%u items deleted", self->trashed->len),
                           self->trashed->len);
  toast = adw_toast_new (title);
  adw_toast_set_button_label (toast, _("_Undo"));
  adw_toast_set_action_name (toast, "gallery.undo-delete");
  adw_toast_set_priority (toast, ADW_TOAST_PRIORITY_HIGH);
  g_signal_connect_object (toast, "dismissed", G_CALLBACK (on_delete_toast_dismissed), self,
                           G_CONNECT_SWAPPED);
  self->delete_toast = toast;
  add_toast (self, toast);
  update_view (self);
}

static void
undo_delete_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierGalleryPage *self = ATELIER_GALLERY_PAGE (widget);
  g_autoptr (GPtrArray) trashed = g_steal_pointer (&self->trashed);
  g_autoptr (GError) error = NULL;

  if (trashed == NULL)
    return;
  for (guint i = 0; i < trashed->len; i++)
    if (!atelier_library_restore (self->library, g_ptr_array_index (trashed, i), &error))
      {
        show_message (self, _("The deleted items could not be restored: %s"), error->message);
        break;
      }
  if (self->delete_toast != NULL)
    adw_toast_dismiss (self->delete_toast);
  update_view (self);
}

static void
empty_trash (AtelierLibrary *library)
{
  g_autoptr (GError) error = NULL;

  if (!atelier_library_empty_trash (library, &error))
    g_warning ("%s", error->message);
}

static void
empty_trash_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierGalleryPage *self = ATELIER_GALLERY_PAGE (widget);
  g_autoptr (GError) error = NULL;

  if (self->library == NULL)
    return;
  /* What is emptied cannot come back: the last Undo goes with it. */
  g_clear_pointer (&self->trashed, g_ptr_array_unref);
  if (self->delete_toast != NULL)
    adw_toast_dismiss (self->delete_toast);
  if (!atelier_library_empty_trash (self->library, &error))
    show_message (self, _("The trash could not be emptied: %s"), error->message);
  update_actions (self);
}

/* --- reuse ------------------------------------------------------------------------- */

static void
reuse_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierGalleryPage *self = ATELIER_GALLERY_PAGE (widget);
  g_autoptr (AtelierAsset) asset = single_selected (self);

  if (asset != NULL)
    g_signal_emit (self, signals[SIGNAL_REUSE_ASSET], 0, asset,
                   g_str_equal (action_name, "gallery.use-as-init"));
}

/* --- export ------------------------------------------------------------------------ */

static void
export_progress (guint done, guint total, gpointer user_data)
{
  AtelierGalleryPage *self = user_data;

  if (!is_disposed (self))
    gtk_progress_bar_set_fraction (self->export_progress, (double)done / total);
}

static void
open_folder (AtelierGalleryPage *self, const char *folder)
{
  g_autoptr (GFile) file = g_file_new_for_path (folder);
  g_autofree char *uri = g_file_get_uri (file);

  gtk_show_uri (GTK_WINDOW (gtk_widget_get_root (GTK_WIDGET (self))), uri, GDK_CURRENT_TIME);
}

static void
open_project_folder_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  open_folder (ATELIER_GALLERY_PAGE (widget), g_variant_get_string (parameter, NULL));
}

static void
exported (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierGalleryPage) self = user_data;
  g_autoptr (GError) error = NULL;
  guint n = atelier_export_assets_finish (result, &error);
  g_autofree char *folder = NULL;
  g_autofree char *title = NULL;
  g_autofree char *markup = NULL;
  AdwToast *toast;

  self->exporting = FALSE;
  if (is_disposed (self))
    return;
  gtk_widget_set_visible (GTK_WIDGET (self->export_progress), FALSE);
  update_actions (self);
  if (error != NULL)
    {
      show_message (self, _("The export stopped: %s"), error->message);
      return;
    }
  folder = g_settings_get_string (self->settings, "project-folder");
  title = g_strdup_printf (ngettext ("%u item exported to %s", "%u items exported to %s", n), n,
                           folder);
  markup = g_markup_escape_text (title, -1);
  toast = adw_toast_new (markup);
  adw_toast_set_button_label (toast, _("_Open Folder"));
  adw_toast_set_action_name (toast, "gallery.open-project-folder");
  adw_toast_set_action_target_value (toast, g_variant_new_string (folder));
  add_toast (self, toast);
}

static void
start_export (AtelierGalleryPage *self)
{
  g_autoptr (GPtrArray) assets = selected_assets (self);
  g_autofree char *folder = g_settings_get_string (self->settings, "project-folder");
  g_autofree char *image = g_settings_get_string (self->settings, "export-image-format");
  g_autofree char *text = g_settings_get_string (self->settings, "export-text-format");
  g_autofree char *audio = g_settings_get_string (self->settings, "export-audio-format");
  AtelierExportFormats formats = { image, text, audio };

  if (assets->len == 0 || self->exporting)
    return;
  self->exporting = TRUE;
  gtk_progress_bar_set_fraction (self->export_progress, 0);
  gtk_widget_set_visible (GTK_WIDGET (self->export_progress), assets->len > 1);
  atelier_export_assets_async (assets, folder, &formats, self->cancellable, export_progress,
                               self, exported, g_object_ref (self));
  update_actions (self);
}

static void
on_folder_chosen (GtkNativeDialog *dialog, int response, gpointer user_data)
{
  g_autoptr (AtelierGalleryPage) self = user_data;
  g_autoptr (GFile) file = NULL;
  g_autofree char *path = NULL;
  gboolean then_export = GPOINTER_TO_INT (g_object_get_data (G_OBJECT (dialog), "then-export"));

  if (response == GTK_RESPONSE_ACCEPT && !is_disposed (self))
    {
      file = gtk_file_chooser_get_file (GTK_FILE_CHOOSER (dialog));
      path = file != NULL ? g_file_get_path (file) : NULL;
      if (path == NULL)
        show_message (self, _("Choose a folder on this computer for the project."));
      else
        {
          g_settings_set_string (self->settings, "project-folder", path);
          if (then_export)
            start_export (self);
        }
    }
  g_object_unref (dialog);
}

static void
choose_folder (AtelierGalleryPage *self, gboolean then_export)
{
  GtkFileChooserNative *dialog;
  g_autofree char *current = g_settings_get_string (self->settings, "project-folder");

  dialog = gtk_file_chooser_native_new (_("Choose the Project Folder"),
                                        GTK_WINDOW (gtk_widget_get_root (GTK_WIDGET (self))),
                                        GTK_FILE_CHOOSER_ACTION_SELECT_FOLDER, _("_Choose"),
                                        NULL);
  gtk_native_dialog_set_modal (GTK_NATIVE_DIALOG (dialog), TRUE);
  if (current[0] != '\0')
    {
      g_autoptr (GFile) file = g_file_new_for_path (current);

      gtk_file_chooser_set_current_folder (GTK_FILE_CHOOSER (dialog), file, NULL);
    }
  g_object_set_data (G_OBJECT (dialog), "then-export", GINT_TO_POINTER (then_export));
  g_signal_connect (dialog, "response", G_CALLBACK (on_folder_chosen), g_object_ref (self));
  gtk_native_dialog_show (GTK_NATIVE_DIALOG (dialog));
}

static void
choose_folder_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  choose_folder (ATELIER_GALLERY_PAGE (widget), FALSE);
}

static void
export_activated (GtkWidget *widget, const char *action_name, GVariant *parameter)
{
  AtelierGalleryPage *self = ATELIER_GALLERY_PAGE (widget);
  g_autofree char *folder = NULL;

  if (self->settings == NULL)
    return;
  folder = g_settings_get_string (self->settings, "project-folder");
  /* Asked once; asked again only when the folder went away. */
  if (folder[0] == '\0' || !g_file_test (folder, G_FILE_TEST_IS_DIR))
    choose_folder (self, TRUE);
  else
    start_export (self);
}

/* --- drop -------------------------------------------------------------------------- */

typedef struct
{
  char *source;
  char *target; /* in the library, from atelier_library_new_path */
  AtelierPngImport *import;
  GError *error;
} ImportItem;

static void
import_item_clear (ImportItem *item)
{
  g_free (item->source);
  g_free (item->target);
  g_clear_pointer (&item->import, atelier_png_import_free);
  g_clear_error (&item->error);
}

static void
import_thread (GTask *task, gpointer source_object, gpointer task_data,
               GCancellable *cancellable)
{
  GArray *items = task_data;

  for (guint i = 0; i < items->len; i++)
    {
      ImportItem *item = &g_array_index (items, ImportItem, i);

      item->import = atelier_png_import (item->source, item->target, &item->error);
    }
  g_task_return_boolean (task, TRUE);
}

static void
imported (GObject *source, GAsyncResult *result, gpointer user_data)
{
  g_autoptr (AtelierGalleryPage) self = user_data;
  GArray *items = g_task_get_task_data (G_TASK (result));
  g_autoptr (AtelierAsset) reuse = NULL;
  guint n_plain = 0;

  if (is_disposed (self) || self->library == NULL)
    return;
  for (guint i = 0; i < items->len; i++)
    {
      ImportItem *item = &g_array_index (items, ImportItem, i);
      g_autofree char *name = g_path_get_basename (item->source);
      g_autoptr (AtelierAsset) asset = NULL;
      g_autoptr (GError) error = NULL;
      AtelierAssetInfo info = { 0 };

      if (item->import == NULL)
        {
          show_message (self, _("%s could not be imported: %s"), name, item->error->message);
          continue;
        }
      info.prompt = item->import->prompt;
      info.parameters = item->import->parameters;
      info.model = item->import->model;
      info.seed = item->import->seed;
      asset = atelier_library_add (self->library, ATELIER_ASSET_IMAGE, item->import->path,
                                   &info, &error);
      if (asset == NULL)
        show_message (self, _("%s could not be imported: %s"), name, error->message);
      else if (item->import->parameters != NULL)
        g_set_object (&reuse, asset);
      else if (++n_plain == 1)
        show_message (self, _("%s has no generation parameters: it was added as a plain image"),
                      name);
    }
  update_view (self);
  /* The last dropped image with parameters is the one to continue from. */
  if (reuse != NULL)
    g_signal_emit (self, signals[SIGNAL_REUSE_ASSET], 0, reuse, FALSE);
}

static void
import_files (AtelierGalleryPage *self, GSList *files)
{
  g_autoptr (GTask) task = NULL;
  GArray *items = g_array_new (FALSE, TRUE, sizeof (ImportItem));

  g_array_set_clear_func (items, (GDestroyNotify)import_item_clear);
  for (GSList *l = files; l != NULL; l = l->next)
    {
      ImportItem item = { 0 };

      item.source = g_file_get_path (l->data);
      if (item.source == NULL)
        continue;
      item.target = atelier_library_new_path (self->library, ATELIER_ASSET_IMAGE, "png");
      g_array_append_val (items, item);
    }
  task = g_task_new (NULL, self->cancellable, imported, g_object_ref (self));
  g_task_set_task_data (task, items, (GDestroyNotify)g_array_unref);
  g_task_run_in_thread (task, import_thread);
}

static gboolean
on_drop (GtkDropTarget *target, const GValue *value, double x, double y,
         AtelierGalleryPage *self)
{
  GdkDrop *drop = gtk_drop_target_get_current_drop (target);
  g_autoptr (GSList) files = NULL;

  /* A drag that started in Atelier (a cell of this grid) brings nothing new. */
  if (self->library == NULL || (drop != NULL && gdk_drop_get_drag (drop) != NULL))
    return FALSE;
  files = gdk_file_list_get_files (g_value_get_boxed (value));
  import_files (self, files);
  return TRUE;
}

/* --- page -------------------------------------------------------------------------- */

static void
atelier_gallery_page_dispose (GObject *object)
{
  AtelierGalleryPage *self = ATELIER_GALLERY_PAGE (object);

  g_cancellable_cancel (self->cancellable);
  if (self->grid_view != NULL)
    gtk_grid_view_set_model (self->grid_view, NULL);
  g_clear_object (&self->selection);
  g_clear_object (&self->filtered);
  g_clear_object (&self->filter);
  g_clear_object (&self->thumbnails);
  g_clear_object (&self->settings);
  g_clear_object (&self->library);
  g_clear_pointer (&self->trashed, g_ptr_array_unref);
  g_clear_pointer (&self->search, g_free);
  gtk_widget_dispose_template (GTK_WIDGET (object), ATELIER_TYPE_GALLERY_PAGE);
  G_OBJECT_CLASS (atelier_gallery_page_parent_class)->dispose (object);
}

static void
atelier_gallery_page_finalize (GObject *object)
{
  g_clear_object (&ATELIER_GALLERY_PAGE (object)->cancellable);
  G_OBJECT_CLASS (atelier_gallery_page_parent_class)->finalize (object);
}

static void
atelier_gallery_page_class_init (AtelierGalleryPageClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_gallery_page_dispose;
  object_class->finalize = atelier_gallery_page_finalize;

  /**
   * AtelierGalleryPage::reuse-asset:
   * @asset: an image asset
   * @as_init_image: TRUE to start from the image itself (image to image), FALSE to
   *   restore only its generation parameters
   *
   * The user asked to continue from an image on the Image page.
   */
  signals[SIGNAL_REUSE_ASSET] =
    g_signal_new ("reuse-asset", G_TYPE_FROM_CLASS (klass), G_SIGNAL_RUN_LAST, 0, NULL, NULL,
                  NULL, G_TYPE_NONE, 2, ATELIER_TYPE_ASSET, G_TYPE_BOOLEAN);

  gtk_widget_class_set_template_from_resource (widget_class,
                                               "/org/atelier/Atelier/atelier-gallery-page.ui");
  gtk_widget_class_bind_template_child (widget_class, AtelierGalleryPage, all_button);
  gtk_widget_class_bind_template_child (widget_class, AtelierGalleryPage, images_button);
  gtk_widget_class_bind_template_child (widget_class, AtelierGalleryPage, texts_button);
  gtk_widget_class_bind_template_child (widget_class, AtelierGalleryPage, audio_button);
  gtk_widget_class_bind_template_child (widget_class, AtelierGalleryPage, favourites_button);
  gtk_widget_class_bind_template_child (widget_class, AtelierGalleryPage, search_entry);
  gtk_widget_class_bind_template_child (widget_class, AtelierGalleryPage, count_label);
  gtk_widget_class_bind_template_child (widget_class, AtelierGalleryPage, export_progress);
  gtk_widget_class_bind_template_child (widget_class, AtelierGalleryPage, content_stack);
  gtk_widget_class_bind_template_child (widget_class, AtelierGalleryPage, grid_view);
  gtk_widget_class_bind_template_child (widget_class, AtelierGalleryPage, error_page);
  gtk_widget_class_bind_template_callback (widget_class, on_kind_toggled);
  gtk_widget_class_bind_template_callback (widget_class, on_filter_changed);
  gtk_widget_class_bind_template_callback (widget_class, on_grid_activate);

  gtk_widget_class_install_action (widget_class, "gallery.open", NULL, open_activated);
  gtk_widget_class_install_action (widget_class, "gallery.copy", NULL, copy_activated);
  gtk_widget_class_install_action (widget_class, "gallery.delete", NULL, delete_activated);
  gtk_widget_class_install_action (widget_class, "gallery.undo-delete", NULL,
                                   undo_delete_activated);
  gtk_widget_class_install_action (widget_class, "gallery.empty-trash", NULL,
                                   empty_trash_activated);
  gtk_widget_class_install_action (widget_class, "gallery.reuse", NULL, reuse_activated);
  gtk_widget_class_install_action (widget_class, "gallery.use-as-init", NULL, reuse_activated);
  gtk_widget_class_install_action (widget_class, "gallery.export", NULL, export_activated);
  gtk_widget_class_install_action (widget_class, "gallery.choose-folder", NULL,
                                   choose_folder_activated);
  gtk_widget_class_install_action (widget_class, "gallery.open-project-folder", "s",
                                   open_project_folder_activated);
  gtk_widget_class_install_action (widget_class, "gallery.show-all", NULL, show_all_activated);

  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_Delete, 0, "gallery.delete", NULL);
  gtk_widget_class_add_binding_action (widget_class, GDK_KEY_c, GDK_CONTROL_MASK, "gallery.copy",
                                       NULL);
}

static void
load_style (void)
{
  static gboolean loaded;
  g_autoptr (GtkCssProvider) provider = NULL;
  GdkDisplay *display = gdk_display_get_default ();

  if (loaded || display == NULL)
    return;
  loaded = TRUE;
  provider = gtk_css_provider_new ();
  gtk_css_provider_load_from_resource (provider, "/org/atelier/Atelier/atelier-gallery-page.css");
  gtk_style_context_add_provider_for_display (display, GTK_STYLE_PROVIDER (provider),
                                              GTK_STYLE_PROVIDER_PRIORITY_APPLICATION);
}

static void
atelier_gallery_page_init (AtelierGalleryPage *self)
{
  GtkListItemFactory *factory = gtk_signal_list_item_factory_new ();
  GtkShortcutController *shortcuts;
  GtkDropTarget *drop;

  gtk_widget_init_template (GTK_WIDGET (self));
  load_style ();
  self->cancellable = g_cancellable_new ();
  self->thumbnails = atelier_thumbnails_new (THUMBNAIL_SIZE, THUMBNAIL_CACHE);

  g_signal_connect (factory, "setup", G_CALLBACK (setup_cell), self);
  g_signal_connect (factory, "bind", G_CALLBACK (bind_cell), self);
  g_signal_connect (factory, "unbind", G_CALLBACK (unbind_cell), self);
  gtk_grid_view_set_factory (self->grid_view, factory);
  g_object_unref (factory);

  /* Managed: Ctrl+E works anywhere in the window while the gallery is shown. */
  shortcuts = GTK_SHORTCUT_CONTROLLER (gtk_shortcut_controller_new ());
  gtk_shortcut_controller_set_scope (shortcuts, GTK_SHORTCUT_SCOPE_MANAGED);
  gtk_shortcut_controller_add_shortcut (shortcuts,
                                        gtk_shortcut_new (gtk_shortcut_trigger_parse_string ("<Control>e"),
                                                          gtk_named_action_new ("gallery.export")));
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (shortcuts));

  drop = gtk_drop_target_new (GDK_TYPE_FILE_LIST, GDK_ACTION_COPY);
  g_signal_connect (drop, "drop", G_CALLBACK (on_drop), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drop));

  update_actions (self);
}

void
atelier_gallery_page_set_application (AtelierGalleryPage *self, AtelierApplication *app)
{
  g_autoptr (GError) error = NULL;
  AtelierLibrary *library;
  g_autoptr (GSimpleActionGroup) formats = g_simple_action_group_new ();
  static const char *const format_keys[] = { "export-image-format", "export-text-format",
                                             "export-audio-format" };

  g_return_if_fail (ATELIER_IS_GALLERY_PAGE (self));
  self->app = app;
  self->settings = g_object_ref (atelier_application_get_settings (app));
  for (guint i = 0; i < G_N_ELEMENTS (format_keys); i++)
    {
      g_autoptr (GAction) action = g_settings_create_action (self->settings, format_keys[i]);

      g_action_map_add_action (G_ACTION_MAP (formats), action);
    }
  gtk_widget_insert_action_group (GTK_WIDGET (self), "export", G_ACTION_GROUP (formats));

  library = atelier_application_get_library (app, &error);
  if (library == NULL)
    {
      adw_status_page_set_description (self->error_page, error->message);
      gtk_stack_set_visible_child_name (self->content_stack, "error");
      gtk_widget_set_sensitive (GTK_WIDGET (self->all_button), FALSE);
      return;
    }
  self->library = g_object_ref (library);
  /* Deleted assets stay restorable until Atelier quits. Once per application. */
  if (g_object_get_data (G_OBJECT (app), "atelier-empties-trash") == NULL)
    {
      g_object_set_data (G_OBJECT (app), "atelier-empties-trash", GINT_TO_POINTER (TRUE));
      g_signal_connect_object (app, "shutdown", G_CALLBACK (empty_trash), library,
                               G_CONNECT_SWAPPED);
    }

  self->filter = gtk_custom_filter_new (asset_matches, self, NULL);
  self->filtered = gtk_filter_list_model_new (g_object_ref (G_LIST_MODEL (library)),
                                              g_object_ref (GTK_FILTER (self->filter)));
  self->selection = gtk_multi_selection_new (g_object_ref (G_LIST_MODEL (self->filtered)));
  g_signal_connect_object (self->selection, "selection-changed", G_CALLBACK (update_actions),
                           self, G_CONNECT_SWAPPED);
  g_signal_connect_object (self->filtered, "items-changed", G_CALLBACK (update_view), self,
                           G_CONNECT_SWAPPED);
  gtk_grid_view_set_model (self->grid_view, GTK_SELECTION_MODEL (self->selection));
  update_view (self);
}
