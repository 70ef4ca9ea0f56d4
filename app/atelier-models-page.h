/* atelier-models-page.h: the Models page — the model files in the models folder. */
#pragma once

#include <adwaita.h>

#include "atelier-application.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_MODELS_PAGE (atelier_models_page_get_type ())
G_DECLARE_FINAL_TYPE (AtelierModelsPage, atelier_models_page, ATELIER, MODELS_PAGE, AdwBin)

/* Called once by the window: lists the models folder now and whenever the setting
 * changes. Each listing emits ::files-changed (folder, GPtrArray of AtelierModelFile),
 * which the other pages use to offer their models. */
void atelier_models_page_set_application (AtelierModelsPage *self, AtelierApplication *app);
/* Lists the folder again (after a model was added or removed). */
void atelier_models_page_refresh (AtelierModelsPage *self);
/* The models folder: the setting, or ~/.local/share/atelier/models when it is empty. */
char *atelier_models_folder (GSettings *settings);

G_END_DECLS
