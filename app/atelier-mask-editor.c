/* atelier-mask-editor.c: AtelierMaskEditor (see the header).
 *
 * The mask is a cairo A8 surface at the image's own size, painted without antialiasing
 * so that every pixel is either repainted or kept, as the engine reads it (> 127). */
#include "config.h"

#include "atelier-mask-editor.h"

/* Translucent enough to judge the picture under it. */
#define MASK_RED 0.93, 0.2, 0.2, 0.5

struct _AtelierMaskEditor
{
  GtkWidget parent_instance;

  GdkTexture *image;
  cairo_surface_t *mask; /* A8, the image's size */
  gboolean has_mask;
  gboolean editing;
  double brush_size;

  /* The stroke in progress, in the image's pixels. */
  gboolean erasing;
  double last_x, last_y;
  /* The pointer, in the widget's pixels, for the brush outline; < 0 outside. */
  double pointer_x, pointer_y;
};

G_DEFINE_FINAL_TYPE (AtelierMaskEditor, atelier_mask_editor, GTK_TYPE_WIDGET)

enum { PROP_0, PROP_EDITING, PROP_BRUSH_SIZE, PROP_HAS_MASK, N_PROPS };
static GParamSpec *props[N_PROPS];

/* Where the image lies in the widget: fitted whole, centred. */
static gboolean
image_rect (AtelierMaskEditor *self, graphene_rect_t *rect, double *scale)
{
  double width = gtk_widget_get_width (GTK_WIDGET (self));
  double height = gtk_widget_get_height (GTK_WIDGET (self));
  double image_width, image_height;

  if (self->image == NULL || width <= 0 || height <= 0)
    return FALSE;
  image_width = gdk_texture_get_width (self->image);
  image_height = gdk_texture_get_height (self->image);
  *scale = MIN (width / image_width, height / image_height);
  graphene_rect_init (rect, (width - image_width * *scale) / 2,
                      (height - image_height * *scale) / 2, image_width * *scale,
                      image_height * *scale);
  return TRUE;
}

static void
set_has_mask (AtelierMaskEditor *self, gboolean has_mask)
{
  if (self->has_mask == has_mask)
    return;
  self->has_mask = has_mask;
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_HAS_MASK]);
}

static gboolean
mask_is_painted (AtelierMaskEditor *self)
{
  const guint8 *data;
  int stride, width, height;

  cairo_surface_flush (self->mask);
  data = cairo_image_surface_get_data (self->mask);
  stride = cairo_image_surface_get_stride (self->mask);
  width = cairo_image_surface_get_width (self->mask);
  height = cairo_image_surface_get_height (self->mask);
  for (int y = 0; y < height; y++)
    for (int x = 0; x < width; x++)
      if (data[y * stride + x] != 0)
        return TRUE;
  return FALSE;
}

void
atelier_mask_editor_paint (AtelierMaskEditor *self, double x0, double y0, double x1, double y1,
                           double diameter, gboolean erase)
{
  cairo_t *cr;

  g_return_if_fail (ATELIER_IS_MASK_EDITOR (self));
  if (self->mask == NULL)
    return;
  cr = cairo_create (self->mask);
  cairo_set_antialias (cr, CAIRO_ANTIALIAS_NONE);
  cairo_set_operator (cr, erase ? CAIRO_OPERATOR_CLEAR : CAIRO_OPERATOR_SOURCE);
  cairo_set_source_rgba (cr, 0, 0, 0, 1);
  cairo_set_line_width (cr, diameter);
  cairo_set_line_cap (cr, CAIRO_LINE_CAP_ROUND);
  cairo_move_to (cr, x0, y0);
  cairo_line_to (cr, x1, y1);
  cairo_stroke (cr);
  cairo_destroy (cr);
  cairo_surface_mark_dirty (self->mask);
  if (!erase)
    set_has_mask (self, TRUE);
  else if (self->has_mask)
    set_has_mask (self, mask_is_painted (self));
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

/* A pointer position in the image's pixels. */
static gboolean
to_image (AtelierMaskEditor *self, double x, double y, double *image_x, double *image_y,
          double *scale)
{
  graphene_rect_t rect;

  if (!image_rect (self, &rect, scale))
    return FALSE;
  *image_x = (x - rect.origin.x) / *scale;
  *image_y = (y - rect.origin.y) / *scale;
  return TRUE;
}

static void
stroke_to (AtelierMaskEditor *self, double x, double y)
{
  double image_x, image_y, scale;

  if (!to_image (self, x, y, &image_x, &image_y, &scale))
    return;
  atelier_mask_editor_paint (self, self->last_x, self->last_y, image_x, image_y,
                             self->brush_size / scale, self->erasing);
  self->last_x = image_x;
  self->last_y = image_y;
}

static void
on_drag_begin (GtkGestureDrag *gesture, double x, double y, AtelierMaskEditor *self)
{
  guint button = gtk_gesture_single_get_current_button (GTK_GESTURE_SINGLE (gesture));
  double scale;

  if (!self->editing || !to_image (self, x, y, &self->last_x, &self->last_y, &scale))
    {
      gtk_gesture_set_state (GTK_GESTURE (gesture), GTK_EVENT_SEQUENCE_DENIED);
      return;
    }
  gtk_gesture_set_state (GTK_GESTURE (gesture), GTK_EVENT_SEQUENCE_CLAIMED);
  self->erasing = button == GDK_BUTTON_SECONDARY;
  stroke_to (self, x, y);
}

static void
on_drag_update (GtkGestureDrag *gesture, double dx, double dy, AtelierMaskEditor *self)
{
  double x, y;

  gtk_gesture_drag_get_start_point (gesture, &x, &y);
  self->pointer_x = x + dx;
  self->pointer_y = y + dy;
  stroke_to (self, x + dx, y + dy);
}

static void
on_motion (GtkEventControllerMotion *motion, double x, double y, AtelierMaskEditor *self)
{
  self->pointer_x = x;
  self->pointer_y = y;
  if (self->editing)
    gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
on_leave (GtkEventControllerMotion *motion, AtelierMaskEditor *self)
{
  self->pointer_x = self->pointer_y = -1;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
atelier_mask_editor_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  AtelierMaskEditor *self = ATELIER_MASK_EDITOR (widget);
  graphene_rect_t rect;
  double scale;
  cairo_t *cr;

  if (!image_rect (self, &rect, &scale))
    return;
  gtk_snapshot_append_texture (snapshot, self->image, &rect);
  if (!self->has_mask && !self->editing)
    return;

  cr = gtk_snapshot_append_cairo (snapshot,
                                  &GRAPHENE_RECT_INIT (0, 0, gtk_widget_get_width (widget),
                                                       gtk_widget_get_height (widget)));
  if (self->has_mask)
    {
      cairo_save (cr);
      cairo_translate (cr, rect.origin.x, rect.origin.y);
      cairo_scale (cr, scale, scale);
      cairo_set_source_rgba (cr, MASK_RED);
      cairo_mask_surface (cr, self->mask, 0, 0);
      cairo_restore (cr);
    }
  if (self->editing && self->pointer_x >= 0)
    {
      /* The brush outline, light on dark and dark on light pictures alike. */
      cairo_arc (cr, self->pointer_x, self->pointer_y, self->brush_size / 2, 0, 2 * G_PI);
      cairo_set_line_width (cr, 3);
      cairo_set_source_rgba (cr, 0, 0, 0, 0.6);
      cairo_stroke_preserve (cr);
      cairo_set_line_width (cr, 1.5);
      cairo_set_source_rgba (cr, 1, 1, 1, 0.9);
      cairo_stroke (cr);
    }
  cairo_destroy (cr);
}

static void
atelier_mask_editor_measure (GtkWidget *widget, GtkOrientation orientation, int for_size,
                             int *minimum, int *natural, int *minimum_baseline,
                             int *natural_baseline)
{
  /* Any size: the image is fitted into what the layout gives. */
  *minimum = 64;
  *natural = 512;
}

void
atelier_mask_editor_set_image (AtelierMaskEditor *self, GdkTexture *image)
{
  g_return_if_fail (ATELIER_IS_MASK_EDITOR (self));

  g_set_object (&self->image, image);
  g_clear_pointer (&self->mask, cairo_surface_destroy);
  if (image != NULL)
    self->mask = cairo_image_surface_create (CAIRO_FORMAT_A8, gdk_texture_get_width (image),
                                             gdk_texture_get_height (image));
  set_has_mask (self, FALSE);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

GdkTexture *
atelier_mask_editor_get_image (AtelierMaskEditor *self)
{
  g_return_val_if_fail (ATELIER_IS_MASK_EDITOR (self), NULL);
  return self->image;
}

void
atelier_mask_editor_set_editing (AtelierMaskEditor *self, gboolean editing)
{
  g_return_if_fail (ATELIER_IS_MASK_EDITOR (self));

  editing = !!editing;
  if (self->editing == editing)
    return;
  self->editing = editing;
  gtk_widget_set_cursor_from_name (GTK_WIDGET (self), editing ? "crosshair" : NULL);
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_EDITING]);
}

gboolean
atelier_mask_editor_get_editing (AtelierMaskEditor *self)
{
  g_return_val_if_fail (ATELIER_IS_MASK_EDITOR (self), FALSE);
  return self->editing;
}

void
atelier_mask_editor_set_brush_size (AtelierMaskEditor *self, double size)
{
  g_return_if_fail (ATELIER_IS_MASK_EDITOR (self));

  if (self->brush_size == size)
    return;
  self->brush_size = size;
  gtk_widget_queue_draw (GTK_WIDGET (self));
  g_object_notify_by_pspec (G_OBJECT (self), props[PROP_BRUSH_SIZE]);
}

double
atelier_mask_editor_get_brush_size (AtelierMaskEditor *self)
{
  g_return_val_if_fail (ATELIER_IS_MASK_EDITOR (self), 0);
  return self->brush_size;
}

void
atelier_mask_editor_clear_mask (AtelierMaskEditor *self)
{
  cairo_t *cr;

  g_return_if_fail (ATELIER_IS_MASK_EDITOR (self));
  if (self->mask == NULL)
    return;
  cr = cairo_create (self->mask);
  cairo_set_operator (cr, CAIRO_OPERATOR_CLEAR);
  cairo_paint (cr);
  cairo_destroy (cr);
  set_has_mask (self, FALSE);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

gboolean
atelier_mask_editor_has_mask (AtelierMaskEditor *self)
{
  g_return_val_if_fail (ATELIER_IS_MASK_EDITOR (self), FALSE);
  return self->has_mask;
}

/* Paints source scaled to fill target, smoothly, without darkening the edges. */
static void
paint_scaled (cairo_surface_t *target, cairo_surface_t *source)
{
  cairo_t *cr = cairo_create (target);

  cairo_scale (cr,
               (double) cairo_image_surface_get_width (target)
               / cairo_image_surface_get_width (source),
               (double) cairo_image_surface_get_height (target)
               / cairo_image_surface_get_height (source));
  cairo_set_source_surface (cr, source, 0, 0);
  cairo_pattern_set_filter (cairo_get_source (cr), CAIRO_FILTER_GOOD);
  cairo_pattern_set_extend (cairo_get_source (cr), CAIRO_EXTEND_PAD);
  cairo_paint (cr);
  cairo_destroy (cr);
  cairo_surface_flush (target);
}

guint8 *
atelier_mask_editor_render_image (AtelierMaskEditor *self, guint width, guint height)
{
  cairo_surface_t *source, *target;
  const guint8 *data;
  guint8 *rgb;
  int stride;

  g_return_val_if_fail (ATELIER_IS_MASK_EDITOR (self), NULL);
  if (self->image == NULL)
    return NULL;

  /* GDK downloads in cairo's ARGB32 layout. */
  source = cairo_image_surface_create (CAIRO_FORMAT_ARGB32, gdk_texture_get_width (self->image),
                                       gdk_texture_get_height (self->image));
  gdk_texture_download (self->image, cairo_image_surface_get_data (source),
                        cairo_image_surface_get_stride (source));
  cairo_surface_mark_dirty (source);
  target = cairo_image_surface_create (CAIRO_FORMAT_RGB24, width, height);
  /* Transparent parts of a source become white, as on paper. */
  {
    cairo_t *cr = cairo_create (target);

    cairo_set_source_rgb (cr, 1, 1, 1);
    cairo_paint (cr);
    cairo_destroy (cr);
  }
  paint_scaled (target, source);

  data = cairo_image_surface_get_data (target);
  stride = cairo_image_surface_get_stride (target);
  rgb = g_malloc ((gsize) width * height * 3);
  for (guint y = 0; y < height; y++)
    for (guint x = 0; x < width; x++)
      {
        guint32 pixel = *(const guint32 *) (data + y * stride + x * 4);
        guint8 *out = rgb + ((gsize) y * width + x) * 3;

        out[0] = (pixel >> 16) & 0xff;
        out[1] = (pixel >> 8) & 0xff;
        out[2] = pixel & 0xff;
      }
  cairo_surface_destroy (target);
  cairo_surface_destroy (source);
  return rgb;
}

guint8 *
atelier_mask_editor_render_mask (AtelierMaskEditor *self, guint width, guint height)
{
  cairo_surface_t *target;
  const guint8 *data;
  guint8 *mask;
  int stride;

  g_return_val_if_fail (ATELIER_IS_MASK_EDITOR (self), NULL);
  if (self->mask == NULL)
    return NULL;

  target = cairo_image_surface_create (CAIRO_FORMAT_A8, width, height);
  paint_scaled (target, self->mask);
  data = cairo_image_surface_get_data (target);
  stride = cairo_image_surface_get_stride (target);
  mask = g_malloc ((gsize) width * height);
  for (guint y = 0; y < height; y++)
    for (guint x = 0; x < width; x++)
      mask[(gsize) y * width + x] = data[y * stride + x] > 127 ? 255 : 0;
  cairo_surface_destroy (target);
  return mask;
}

static void
atelier_mask_editor_get_property (GObject *object, guint prop_id, GValue *value,
                                  GParamSpec *pspec)
{
  AtelierMaskEditor *self = ATELIER_MASK_EDITOR (object);

  switch (prop_id)
    {
    case PROP_EDITING:
      g_value_set_boolean (value, self->editing);
      break;
    case PROP_BRUSH_SIZE:
      g_value_set_double (value, self->brush_size);
      break;
    case PROP_HAS_MASK:
      g_value_set_boolean (value, self->has_mask);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
atelier_mask_editor_set_property (GObject *object, guint prop_id, const GValue *value,
                                  GParamSpec *pspec)
{
  AtelierMaskEditor *self = ATELIER_MASK_EDITOR (object);

  switch (prop_id)
    {
    case PROP_EDITING:
      atelier_mask_editor_set_editing (self, g_value_get_boolean (value));
      break;
    case PROP_BRUSH_SIZE:
      atelier_mask_editor_set_brush_size (self, g_value_get_double (value));
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID (object, prop_id, pspec);
    }
}

static void
atelier_mask_editor_finalize (GObject *object)
{
  AtelierMaskEditor *self = ATELIER_MASK_EDITOR (object);

  g_clear_object (&self->image);
  g_clear_pointer (&self->mask, cairo_surface_destroy);
  G_OBJECT_CLASS (atelier_mask_editor_parent_class)->finalize (object);
}

static void
atelier_mask_editor_class_init (AtelierMaskEditorClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->get_property = atelier_mask_editor_get_property;
  object_class->set_property = atelier_mask_editor_set_property;
  object_class->finalize = atelier_mask_editor_finalize;
  widget_class->snapshot = atelier_mask_editor_snapshot;
  widget_class->measure = atelier_mask_editor_measure;

  props[PROP_EDITING] =
    g_param_spec_boolean ("editing", NULL, NULL, FALSE,
                          G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  props[PROP_BRUSH_SIZE] =
    g_param_spec_double ("brush-size", NULL, NULL, 1, 512, 40,
                         G_PARAM_READWRITE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  props[PROP_HAS_MASK] =
    g_param_spec_boolean ("has-mask", NULL, NULL, FALSE,
                          G_PARAM_READABLE | G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
  g_object_class_install_properties (object_class, N_PROPS, props);
  gtk_widget_class_set_css_name (widget_class, "atelier-mask-editor");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
atelier_mask_editor_init (AtelierMaskEditor *self)
{
  GtkGesture *drag = gtk_gesture_drag_new ();
  GtkEventController *motion = gtk_event_controller_motion_new ();

  self->brush_size = 40;
  self->pointer_x = self->pointer_y = -1;
  gtk_widget_set_hexpand (GTK_WIDGET (self), TRUE);
  gtk_widget_set_vexpand (GTK_WIDGET (self), TRUE);

  gtk_gesture_single_set_button (GTK_GESTURE_SINGLE (drag), 0);
  g_signal_connect (drag, "drag-begin", G_CALLBACK (on_drag_begin), self);
  g_signal_connect (drag, "drag-update", G_CALLBACK (on_drag_update), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (drag));
  g_signal_connect (motion, "motion", G_CALLBACK (on_motion), self);
  g_signal_connect (motion, "leave", G_CALLBACK (on_leave), self);
  gtk_widget_add_controller (GTK_WIDGET (self), motion);
}

GtkWidget *
atelier_mask_editor_new (void)
{
  return g_object_new (ATELIER_TYPE_MASK_EDITOR, NULL);
}
