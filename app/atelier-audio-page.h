/* atelier-audio-page.h: the Audio page — text to speech for drafts and voice-overs, previewed in place. */
#pragma once

#include <adwaita.h>

#include "atelier-application.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_AUDIO_PAGE (atelier_audio_page_get_type ())
G_DECLARE_FINAL_TYPE (AtelierAudioPage, atelier_audio_page, ATELIER, AUDIO_PAGE, AdwBin)

/* Called once by the window: the page takes the engine, settings and library from it. */
void atelier_audio_page_set_application (AtelierAudioPage *self, AtelierApplication *app);

G_END_DECLS
