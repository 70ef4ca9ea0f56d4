/* atelier-write-page.h: the Write page — a Markdown editor with a language model beside
 * it: Continue at the cursor, and AI actions (rewrite, shorten, expand, change tone,
 * summarise, translate) on the selection or the paragraph at the cursor. Replies stream
 * into the text, stoppable, undone in one step, and are kept in the library; the draft
 * is autosaved. */
#pragma once

#include <adwaita.h>

#include "atelier-application.h"
#include "atelier-engine.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_WRITE_PAGE (atelier_write_page_get_type ())
G_DECLARE_FINAL_TYPE (AtelierWritePage, atelier_write_page, ATELIER, WRITE_PAGE, AdwBin)

/* The engine that loads models; NULL when there is no usable GPU. */
void atelier_write_page_set_engine (AtelierWritePage *self, AtEngine *engine);
/* The application whose registry shares the loaded language model (a model loaded here
 * is set there; unloaded there, the page lets it go) and whose library keeps every
 * generated text. */
void atelier_write_page_set_application (AtelierWritePage *self, AtelierApplication *app);
/* The models folder and its listing (AtelierModelFile); the GGUF files are offered. */
void atelier_write_page_set_model_files (AtelierWritePage *self, const char *folder,
                                         GPtrArray *files);
/* TRUE while a model loads or text is generated. */
gboolean atelier_write_page_is_busy (AtelierWritePage *self);
/* The selected text, or the whole document when nothing is selected (for voice-overs). */
char *atelier_write_page_get_text (AtelierWritePage *self);

G_END_DECLS
