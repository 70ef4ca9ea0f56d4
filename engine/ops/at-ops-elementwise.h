/* at-ops-elementwise.h: element-wise ops, copies with type conversion, concatenation,
 * upsampling and the timestep embedding, on activations. */
#pragma once

#include "ops/at-tensor.h"

G_BEGIN_DECLS

/* dst = a + b and dst = a * b; b broadcasts over a (each of its dimensions is a's or
 * 1). dst has a's shape; all three are F32 with any strides. dst may alias a. */
void at_op_add (AtBatch *batch, const AtTensor *a, const AtTensor *b, const AtTensor *dst);
void at_op_mul (AtBatch *batch, const AtTensor *a, const AtTensor *b, const AtTensor *dst);

/* --- Views (at-tensor-view.c) --- */

/* The same memory seen with dimension d of t moved to position axis_d (ggml_permute):
 * the axes are a permutation of 0..3. Copying the result to a contiguous tensor
 * (at_op_cpy) makes the permutation real. */
AtTensor at_tensor_permute (const AtTensor *t, int axis0, int axis1, int axis2, int axis3);

/* --- Copies --- */

/* Copies src into dst converting the element type: F32, F16 and BF16 in any
 * combination, and F32 to Q8_0 (dst rows of whole blocks). src and dst have the same
 * number of elements but any shapes and strides; element k of dst in its own row-major
 * order (ne[0] fastest) receives element k of src in src's order, so a permuted src view
 * copied into a contiguous dst is ggml's permute + cont. Conversions to F16 and BF16
 * round to nearest even, bit for bit as at_fp32_to_fp16 / at_fp32_to_bf16. Q8_0 blocks
 * are ggml's quantize_row_q8_0_ref's up to the device's division (Vulkan does not round
 * it correctly): a rare quant may differ by one step. */
void at_op_cpy (AtBatch *batch, const AtTensor *src, const AtTensor *dst);

/* dst = a and c joined along dimension dim (0..3): every other dimension of the three
 * agrees and dst->ne[dim] = a->ne[dim] + c->ne[dim]. All F32, or all F16 / BF16; any
 * strides. */
void at_op_concat (AtBatch *batch, const AtTensor *a, const AtTensor *c, const AtTensor *dst,
                   int dim);

/* Nearest-neighbour upsampling of the two inner dimensions by an integer factor:
 * x [w, h, c, n] to dst [w * factor, h * factor, c, n]; F32, any strides. */
void at_op_upscale_nearest (AtBatch *batch, const AtTensor *x, const AtTensor *dst,
                            int factor);

/* Nearest-neighbour resampling of the two inner dimensions to dst's size, as PyTorch's
 * F.interpolate (mode "nearest") with an output size: dst (i0, i1, c, n) = x (floor (i0 *
 * w / w_dst), floor (i1 * h / h_dst), c, n). The UNet's Upsample uses it to meet the
 * size of an odd skip tensor (5 to 9 rows); with an integer factor it is the op above. */
void at_op_upscale_nearest_to (AtBatch *batch, const AtTensor *x, const AtTensor *dst);

/* Sinusoidal timestep embedding (Stable Diffusion, ggml_timestep_embedding): for each
 * timestep t of timesteps [n] and j < half = dim / 2, with
 * freq = exp(-ln(max_period) * j / half), dst [dim, n] holds cos(t * freq) at j and
 * sin(t * freq) at half + j; an odd dim leaves a last element of 0. F32. */
void at_op_timestep_embedding (AtBatch *batch, const AtTensor *timesteps, const AtTensor *dst,
                               int dim, int max_period);

G_END_DECLS
