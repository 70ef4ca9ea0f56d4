/* atelier-status.h: the header bar's device button — the GPU's name (a warning when it
 * is a CPU implementation), opening a popover with the GPU memory Atelier holds and the
 * loaded models, each with a button to unload it. */
#pragma once

#include <adwaita.h>

#include "atelier-application.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_STATUS (atelier_status_get_type ())
G_DECLARE_FINAL_TYPE (AtelierStatus, atelier_status, ATELIER, STATUS, AdwBin)

/* Shows app's engine (or why there is none) and follows its loaded models. */
void atelier_status_set_application (AtelierStatus *self, AtelierApplication *app);

G_END_DECLS
