/* atelier-audio-page.h: the Audio page — text to speech for drafts and voice-overs with
 * eSpeak NG, previewed in place (waveform and player), kept in the library, saved as WAV
 * or Ogg Vorbis. */
#pragma once

#include <adwaita.h>

#include "atelier-application.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_AUDIO_PAGE (atelier_audio_page_get_type ())
G_DECLARE_FINAL_TYPE (AtelierAudioPage, atelier_audio_page, ATELIER, AUDIO_PAGE, AdwBin)

/* Called once by the window: the page takes the settings and library from it. */
void atelier_audio_page_set_application (AtelierAudioPage *self, AtelierApplication *app);
/* Replaces the script with text, as one step that undo takes back. The page's "Use Write
 * Page Text" button activates "win.use-write-text": the window gives this function the
 * Write page's selection, or its whole draft. */
void atelier_audio_page_set_text (AtelierAudioPage *self, const char *text);
/* Saves the last voice-over at path: Ogg Vorbis for ".ogg", WAV otherwise; the page says
 * when it is done or what went wrong. */
void atelier_audio_page_export (AtelierAudioPage *self, const char *path);
/* TRUE while a script is spoken and written, or a voice-over is being saved. */
gboolean atelier_audio_page_is_busy (AtelierAudioPage *self);

G_END_DECLS
