/* at-sampler.h: picks the next token from a row of logits.
 *
 * llama.cpp's semantics and order: penalties -> top-k -> top-p -> min-p -> temperature
 * -> draw. Top-p measures mass with the softmax of the logits left by top-k at
 * temperature 1, min-p keeps the tokens with p >= min_p * p_max, and the temperature
 * divides the surviving logits before the final softmax.
 *
 * Deterministic: the random numbers come from the sampler's own generator (xoshiro256**
 * seeded through splitmix64), never rand(), and ties are broken by the lower token id,
 * so the same seed and the same sequence of logits give the same tokens on every run
 * and every machine.
 */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

typedef struct
{
  /* <= 0: greedy (argmax of the penalized logits, ties to the lowest id). */
  float temperature;
  /* <= 0: off. */
  int top_k;
  /* In (0, 1]; 1: off. */
  float top_p;
  /* In [0, 1]; 0: off. */
  float min_p;
  /* > 0; 1: off. A logit > 0 is divided by it, any other multiplied by it. */
  float repeat_penalty;
  /* How many of the last accepted tokens the penalties look at; 0: none, -1: all
   * since the last reset. */
  int repeat_last_n;
  /* A token seen count > 0 times in the window loses
   * presence_penalty + count * frequency_penalty from its logit. */
  float presence_penalty;
  float frequency_penalty;
  guint64 seed;
} AtSamplerParams;

/* llama.cpp's defaults: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05, no
 * penalties over a window of 64; seed 0. */
void at_sampler_params_init (AtSamplerParams *params);

typedef struct _AtSampler AtSampler;

/* Fails with AT_ERROR_INVALID_ARGUMENT for a parameter out of its range or NaN. */
AtSampler *at_sampler_new (const AtSamplerParams *params, GError **error);
void at_sampler_free (AtSampler *s);

/* The next token for n_vocab (> 0) logits. Does not accept it: call at_sampler_accept
 * with whatever token is kept. */
gint32 at_sampler_sample (AtSampler *s, const float *logits, gsize n_vocab);
/* Adds token to the history the penalties look at; prompt tokens count too. */
void at_sampler_accept (AtSampler *s, gint32 token);
/* Forgets the history and restarts the random numbers from the seed. */
void at_sampler_reset (AtSampler *s);

G_DEFINE_AUTOPTR_CLEANUP_FUNC (AtSampler, at_sampler_free)

G_END_DECLS
