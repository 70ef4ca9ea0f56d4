/* atelier-window.h: the studio's main window — a sidebar of pages and the GPU in use. */
#pragma once

#include "atelier-application.h"

G_BEGIN_DECLS

#define ATELIER_TYPE_WINDOW (atelier_window_get_type ())
G_DECLARE_FINAL_TYPE (AtelierWindow, atelier_window, ATELIER, WINDOW, AdwApplicationWindow)

AtelierWindow *atelier_window_new (AtelierApplication *app);

G_END_DECLS
