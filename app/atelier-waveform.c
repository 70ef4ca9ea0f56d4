/* atelier-waveform.c: AtelierWaveform, drawn with cairo from peaks per pixel column. */
#include "config.h"

#include "atelier-waveform.h"

/* Quieter sounds are scaled up to fill the height, but near-silence is not blown up
 * into a wall of noise. */
#define MIN_PEAK 0.05
#define PLAYHEAD_WIDTH 2.0

struct _AtelierWaveform
{
  GtkWidget parent_instance;

  GBytes *samples;
  guint sample_rate;
  GtkMediaStream *stream;
  gulong timestamp_handler;

  /* The lowest and highest sample under each column, in [-1, 1], for peaks_width. */
  float *low, *high;
  int peaks_width;
};

G_DEFINE_FINAL_TYPE (AtelierWaveform, atelier_waveform, GTK_TYPE_WIDGET)

static gsize
n_samples (AtelierWaveform *self)
{
  return self->samples != NULL ? g_bytes_get_size (self->samples) / 2 : 0;
}

static void
compute_peaks (AtelierWaveform *self, int width)
{
  const gint16 *data = self->samples != NULL ? g_bytes_get_data (self->samples, NULL) : NULL;
  gsize n = n_samples (self);
  int loudest = 0;
  double scale;

  g_free (self->low);
  g_free (self->high);
  self->low = g_new0 (float, width);
  self->high = g_new0 (float, width);
  self->peaks_width = width;
  for (gsize i = 0; i < n; i++)
    loudest = MAX (loudest, ABS ((int) GINT16_FROM_LE (data[i])));
  scale = 1.0 / MAX (loudest / 32768.0, MIN_PEAK) / 32768.0;

  for (int column = 0; column < width && n > 0; column++)
    {
      gsize start = (gsize) column * n / width;
      gsize end = MAX ((gsize) (column + 1) * n / width, start + 1);
      int low = G_MAXINT, high = G_MININT;

      for (gsize i = start; i < end && i < n; i++)
        {
          int sample = GINT16_FROM_LE (data[i]);

          low = MIN (low, sample);
          high = MAX (high, sample);
        }
      self->low[column] = (float) CLAMP (low * scale, -1.0, 1.0);
      self->high[column] = (float) CLAMP (high * scale, -1.0, 1.0);
    }
}

gint64
atelier_waveform_get_duration (AtelierWaveform *self)
{
  g_return_val_if_fail (ATELIER_IS_WAVEFORM (self), 0);
  if (self->sample_rate == 0)
    return 0;
  return (gint64) n_samples (self) * G_USEC_PER_SEC / self->sample_rate;
}

/* Where the playhead is, from 0 to 1. */
static double
played_fraction (AtelierWaveform *self)
{
  gint64 duration;

  if (self->stream == NULL)
    return 0;
  duration = gtk_media_stream_get_duration (self->stream);
  if (duration <= 0)
    duration = atelier_waveform_get_duration (self);
  if (duration <= 0)
    return 0;
  return CLAMP ((double) gtk_media_stream_get_timestamp (self->stream) / duration, 0.0, 1.0);
}

static void
draw_columns (AtelierWaveform *self, cairo_t *cr, int from, int to, double height)
{
  double middle = height / 2;

  for (int column = from; column < to; column++)
    {
      double top = middle - self->high[column] * middle;
      double bottom = middle - self->low[column] * middle;

      /* Silence still shows as a thin line, so the sound's extent is visible. */
      if (bottom - top < 1)
        {
          top = middle - 0.5;
          bottom = middle + 0.5;
        }
      cairo_rectangle (cr, column, top, 1, bottom - top);
    }
  cairo_fill (cr);
}

static void
atelier_waveform_snapshot (GtkWidget *widget, GtkSnapshot *snapshot)
{
  AtelierWaveform *self = ATELIER_WAVEFORM (widget);
  int width = gtk_widget_get_width (widget);
  int height = gtk_widget_get_height (widget);
  GtkStyleContext *style;
  GdkRGBA foreground, accent;
  int played;
  cairo_t *cr;

  if (self->samples == NULL || width <= 0 || height <= 0)
    return;
  if (self->peaks_width != width)
    compute_peaks (self, width);

  /* GTK 4.8 has no other way to read the theme's colours. */
  G_GNUC_BEGIN_IGNORE_DEPRECATIONS
  style = gtk_widget_get_style_context (widget);
  gtk_style_context_get_color (style, &foreground);
  if (!gtk_style_context_lookup_color (style, "accent_color", &accent))
    accent = foreground;
  G_GNUC_END_IGNORE_DEPRECATIONS

  played = (int) (played_fraction (self) * width + 0.5);
  cr = gtk_snapshot_append_cairo (snapshot, &GRAPHENE_RECT_INIT (0, 0, width, height));
  gdk_cairo_set_source_rgba (cr, &accent);
  draw_columns (self, cr, 0, played, height);
  foreground.alpha *= 0.4f;
  gdk_cairo_set_source_rgba (cr, &foreground);
  draw_columns (self, cr, played, width, height);
  if (self->stream != NULL && played > 0)
    {
      gdk_cairo_set_source_rgba (cr, &accent);
      cairo_rectangle (cr, MIN (played, width - PLAYHEAD_WIDTH), 0, PLAYHEAD_WIDTH, height);
      cairo_fill (cr);
    }
  cairo_destroy (cr);
}

static void
atelier_waveform_measure (GtkWidget *widget, GtkOrientation orientation, int for_size,
                          int *minimum, int *natural, int *minimum_baseline,
                          int *natural_baseline)
{
  if (orientation == GTK_ORIENTATION_HORIZONTAL)
    {
      *minimum = 64;
      *natural = 480;
    }
  else
    {
      *minimum = 48;
      *natural = 96;
    }
}

static void
on_pressed (GtkGestureClick *gesture, int n_press, double x, double y, gpointer user_data)
{
  AtelierWaveform *self = ATELIER_WAVEFORM (user_data);
  int width = gtk_widget_get_width (GTK_WIDGET (self));
  gint64 duration;

  if (self->stream == NULL || width <= 0 || !gtk_media_stream_is_seekable (self->stream))
    return;
  duration = gtk_media_stream_get_duration (self->stream);
  if (duration <= 0)
    duration = atelier_waveform_get_duration (self);
  gtk_media_stream_seek (self->stream, (gint64) (CLAMP (x / width, 0.0, 1.0) * duration));
}

void
atelier_waveform_set_samples (AtelierWaveform *self, GBytes *samples, guint sample_rate)
{
  g_return_if_fail (ATELIER_IS_WAVEFORM (self));

  g_clear_pointer (&self->samples, g_bytes_unref);
  if (samples != NULL)
    self->samples = g_bytes_ref (samples);
  self->sample_rate = sample_rate;
  self->peaks_width = 0;
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

void
atelier_waveform_set_stream (AtelierWaveform *self, GtkMediaStream *stream)
{
  g_return_if_fail (ATELIER_IS_WAVEFORM (self));

  if (self->stream != NULL)
    g_clear_signal_handler (&self->timestamp_handler, self->stream);
  g_set_object (&self->stream, stream);
  if (stream != NULL)
    self->timestamp_handler = g_signal_connect_object (stream, "notify::timestamp",
                                                       G_CALLBACK (gtk_widget_queue_draw),
                                                       self, G_CONNECT_SWAPPED);
  gtk_widget_queue_draw (GTK_WIDGET (self));
}

static void
atelier_waveform_dispose (GObject *object)
{
  AtelierWaveform *self = ATELIER_WAVEFORM (object);

  atelier_waveform_set_stream (self, NULL);
  g_clear_pointer (&self->samples, g_bytes_unref);
  G_OBJECT_CLASS (atelier_waveform_parent_class)->dispose (object);
}

static void
atelier_waveform_finalize (GObject *object)
{
  AtelierWaveform *self = ATELIER_WAVEFORM (object);

  g_free (self->low);
  g_free (self->high);
  G_OBJECT_CLASS (atelier_waveform_parent_class)->finalize (object);
}

static void
atelier_waveform_class_init (AtelierWaveformClass *klass)
{
  GObjectClass *object_class = G_OBJECT_CLASS (klass);
  GtkWidgetClass *widget_class = GTK_WIDGET_CLASS (klass);

  object_class->dispose = atelier_waveform_dispose;
  object_class->finalize = atelier_waveform_finalize;
  widget_class->snapshot = atelier_waveform_snapshot;
  widget_class->measure = atelier_waveform_measure;
  gtk_widget_class_set_css_name (widget_class, "waveform");
  gtk_widget_class_set_accessible_role (widget_class, GTK_ACCESSIBLE_ROLE_IMG);
}

static void
atelier_waveform_init (AtelierWaveform *self)
{
  GtkGesture *click = gtk_gesture_click_new ();

  g_signal_connect (click, "pressed", G_CALLBACK (on_pressed), self);
  gtk_widget_add_controller (GTK_WIDGET (self), GTK_EVENT_CONTROLLER (click));
}

GtkWidget *
atelier_waveform_new (void)
{
  return g_object_new (ATELIER_TYPE_WAVEFORM, NULL);
}
