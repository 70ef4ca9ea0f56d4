/* at-lora.h: kohya-style LoRA files (as AUTOMATIC1111 and ComfyUI load them) merged into
 * a Stable Diffusion checkpoint's weights.
 *
 * A LoRA holds modules named after the layer they change, each a pair of low-rank
 * factors: "<module>.lora_down.weight" [rank, in] (a LoCon conv: [rank, c_in, kh, kw]),
 * "<module>.lora_up.weight" [out, rank] (or [c_out, rank, 1, 1]) and an optional scalar
 * "<module>.alpha" (default: the rank). The layer's weight becomes
 * W + weight * (alpha / rank) * up · down.
 *
 * Module names are the layer's name with '.' written '_':
 *   lora_unet_input_blocks_1_1_proj_in              LDM UNet names
 *   lora_unet_down_blocks_0_attentions_0_..._to_q   diffusers UNet names, mapped onto the
 *                                                   LDM blocks as the checkpoint numbers
 *                                                   them (its own res blocks per level)
 *   lora_te_text_model_encoder_layers_0_self_attn_q_proj
 *                                                   HF CLIP names; for SD 2.x mapped onto
 *                                                   OpenCLIP's tensors (q, k, v: thirds of
 *                                                   attn.in_proj_weight; fc1: mlp.c_fc;
 *                                                   fc2: mlp.c_proj)
 *
 * Models upload their weights from AtSafetensorsTensor->data, so a LoRA is applied by
 * patching the checkpoint's tensors in memory (at_safetensors_set_tensor_data) before the
 * models are built; rebuild them after applying a new set.
 */
#pragma once

#include "formats/at-safetensors.h"
#include "image/at-sd-checkpoint.h"

G_BEGIN_DECLS

typedef struct _AtLora AtLora;

/* Reads and validates a LoRA: AT_ERROR_INVALID_FILE for a file that is not one (no
 * lora_down / lora_up pairs), a module missing a factor, or factors whose shapes or
 * ranks disagree; AT_ERROR_UNSUPPORTED for tensors of other network types (LoHa, LoKr,
 * DoRA scales, ...). */
AtLora *at_lora_open (const char *path, GError **error);
/* The same over bytes in memory; display_name stands for the file in messages. */
AtLora *at_lora_new_from_bytes (GBytes *bytes, const char *display_name, GError **error);
void at_lora_free (AtLora *lora);

/* The file's name as messages show it. */
const char *at_lora_get_name (AtLora *lora);
/* How many modules (layer patches) the LoRA holds. */
guint at_lora_get_n_modules (AtLora *lora);

/* Resets checkpoint to its file's bytes, then patches its weights with the n LoRAs, each
 * scaled by its weight: W' = W + sum of weight * (alpha / rank) * up · down over the
 * modules that target W, computed in double and rounded once to W's own dtype (so
 * applying a new set replaces the old one; n = 0 only resets). Modules of a LoRA with
 * weight 0 are matched and checked but change nothing. *n_patched (may be NULL) is the
 * number of tensors changed. Modules that match no tensor are listed in *unmatched (may
 * be NULL; NULL-terminated, free with g_strfreev) as "<LoRA name>: <module>", not an
 * error, as A1111 only warns. A module whose shape does not fit its tensor is an
 * AT_ERROR_INVALID_FILE naming both; on any error the checkpoint is left reset. */
gboolean at_lora_apply (AtSafetensors *checkpoint, const AtSdCheckpointInfo *info,
                        AtLora *const *loras, const float *weights, guint n, guint *n_patched,
                        char ***unmatched, GError **error);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtLora, at_lora_free)

G_END_DECLS
