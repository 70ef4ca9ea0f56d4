/* atelier-engine.h: the engine's public API, the only engine header front ends include.
 * Asynchronous in GLib style: _async/_finish pairs, GCancellable, GError (AT_ERROR). */
#pragma once

#include "at-engine.h"
#include "at-error.h"
#include "image/at-image-model.h"
#include "text/at-language-model.h"

