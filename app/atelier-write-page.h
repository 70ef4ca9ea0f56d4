/* atelier-write-page.h: the Write page — a Markdown editor whose text a language model
 * continues at the cursor, streaming, stoppable, undone in one step; autosaved. */
#pragma once

#include <adwaita.h>

#include "atelier-engine.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_WRITE_PAGE (atelier_write_page_get_type ())
G_DECLARE_FINAL_TYPE (AtelierWritePage, atelier_write_page, ATELIER, WRITE_PAGE, AdwBin)

/* The engine that loads models; NULL when there is no usable GPU. */
void atelier_write_page_set_engine (AtelierWritePage *self, AtEngine *engine);
/* The models folder and its listing (AtelierModelFile); the GGUF files are offered. */
void atelier_write_page_set_model_files (AtelierWritePage *self, const char *folder,
                                         GPtrArray *files);
/* Where the draft is saved; NULL for the default in the user's data folder. Reloads it. */
void atelier_write_page_set_document_path (AtelierWritePage *self, const char *path);
/* TRUE while a model loads or text is generated. */
gboolean atelier_write_page_is_busy (AtelierWritePage *self);

G_END_DECLS
