/* atelier-waveform.h: a sound's waveform (the loudest and quietest sample under each
 * pixel column), with a playhead that follows a media stream; a click seeks there. */
#pragma once

#include <gtk/gtk.h>

G_BEGIN_DECLS

#define ATELIER_TYPE_WAVEFORM (atelier_waveform_get_type ())
G_DECLARE_FINAL_TYPE (AtelierWaveform, atelier_waveform, ATELIER, WAVEFORM, GtkWidget)

GtkWidget *atelier_waveform_new (void);

/* samples: 16-bit little-endian mono at sample_rate; NULL shows nothing. */
void atelier_waveform_set_samples (AtelierWaveform *self, GBytes *samples, guint sample_rate);
/* How long the samples last, in microseconds (GtkMediaStream's unit). */
gint64 atelier_waveform_get_duration (AtelierWaveform *self);
/* The stream playing the samples, whose timestamp places the playhead; may be NULL. */
void atelier_waveform_set_stream (AtelierWaveform *self, GtkMediaStream *stream);

G_END_DECLS
