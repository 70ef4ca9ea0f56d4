/* at-sampler.c: penalties, top-k, top-p, min-p, temperature and the draw, in
 * llama.cpp's order, on a candidate array the sampler keeps between tokens. */
#include "at-sampler.h"

#include "at-error.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>

typedef struct
{
  float logit;
  gint32 id;
} Candidate;

struct _AtSampler
{
  AtSamplerParams p;
  guint64 rng[4];
  /* The penalty window: a ring of repeat_last_n tokens starting at window_start, or
   * every token since the reset when repeat_last_n is -1. */
  GArray *window;
  gsize window_start;
  GHashTable *counts; /* token -> occurrences in the window */
  Candidate *cand;    /* n_cand of them */
  float *weight;      /* n_cand, for top-p */
  gsize n_cand;
};

void
at_sampler_params_init (AtSamplerParams *params)
{
  *params = (AtSamplerParams){
    .temperature = 0.8f,
    .top_k = 40,
    .top_p = 0.95f,
    .min_p = 0.05f,
    .repeat_penalty = 1.0f,
    .repeat_last_n = 64,
    .presence_penalty = 0.0f,
    .frequency_penalty = 0.0f,
    .seed = 0,
  };
}

/* splitmix64 spreads any seed (0 included) over the whole xoshiro state. */
static guint64
splitmix64 (guint64 *x)
{
  guint64 z = (*x += 0x9e3779b97f4a7c15ull);

  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static guint64
rotl (guint64 x, int k)
{
  return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static guint64
rng_next (guint64 *s)
{
  guint64 result = rotl (s[1] * 5, 7) * 9;
  guint64 t = s[1] << 17;

  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl (s[3], 45);
  return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double
rng_uniform (guint64 *s)
{
  return (double)(rng_next (s) >> 11) * 0x1.0p-53;
}

static gboolean
check_param (gboolean ok, const char *name, double value, const char *range, GError **error)
{
  if (!ok)
    g_set_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT, "sampler: %s = %g is not %s", name,
                 value, range);
  return ok;
}

AtSampler *
at_sampler_new (const AtSamplerParams *params, GError **error)
{
  const AtSamplerParams *p = params;

  if (!check_param (!isnan (p->temperature), "temperature", p->temperature, "a number", error)
      || !check_param (p->top_p > 0.0f && p->top_p <= 1.0f, "top_p", p->top_p, "in (0, 1]", error)
      || !check_param (p->min_p >= 0.0f && p->min_p <= 1.0f, "min_p", p->min_p, "in [0, 1]", error)
      || !check_param (p->repeat_penalty > 0.0f && isfinite (p->repeat_penalty), "repeat_penalty",
                       p->repeat_penalty, "positive", error)
      || !check_param (p->repeat_last_n >= -1, "repeat_last_n", p->repeat_last_n, ">= -1", error)
      || !check_param (isfinite (p->presence_penalty), "presence_penalty", p->presence_penalty,
                       "finite", error)
      || !check_param (isfinite (p->frequency_penalty), "frequency_penalty", p->frequency_penalty,
                       "finite", error))
    return NULL;

  AtSampler *s = g_new0 (AtSampler, 1);
  s->p = *p;
  s->window = g_array_new (FALSE, FALSE, sizeof (gint32));
  s->counts = g_hash_table_new (g_direct_hash, g_direct_equal);
  at_sampler_reset (s);
  return s;
}

void
at_sampler_free (AtSampler *s)
{
  if (s == NULL)
    return;
  g_array_unref (s->window);
  g_hash_table_unref (s->counts);
  g_free (s->cand);
  g_free (s->weight);
  g_free (s);
}

void
at_sampler_reset (AtSampler *s)
{
  guint64 x = s->p.seed;

  for (int i = 0; i < 4; i++)
    s->rng[i] = splitmix64 (&x);
  g_array_set_size (s->window, 0);
  s->window_start = 0;
  g_hash_table_remove_all (s->counts);
}

static void
count_add (GHashTable *counts, gint32 token, int delta)
{
  gpointer key = GINT_TO_POINTER (token);
  int n = GPOINTER_TO_INT (g_hash_table_lookup (counts, key)) + delta;

  if (n > 0)
    g_hash_table_insert (counts, key, GINT_TO_POINTER (n));
  else
    g_hash_table_remove (counts, key);
}

void
at_sampler_accept (AtSampler *s, gint32 token)
{
  int last_n = s->p.repeat_last_n;

  if (last_n == 0)
    return;
  if (last_n > 0 && s->window->len == (guint)last_n)
    {
      gint32 *oldest = &g_array_index (s->window, gint32, s->window_start);
      count_add (s->counts, *oldest, -1);
      *oldest = token;
      s->window_start = (s->window_start + 1) % last_n;
    }
  else
    g_array_append_val (s->window, token);
  count_add (s->counts, token, 1);
}

static gboolean
before (const Candidate *a, const Candidate *b)
{
  return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static int
compare_candidates (const void *a, const void *b)
{
  return before (a, b) ? -1 : before (b, a) ? 1 : 0;
}

static void
swap (Candidate *a, Candidate *b)
{
  Candidate t = *a;
  *a = *b;
  *b = t;
}

/* Partitions c[lo..hi) around a median-of-three pivot: better ones before it, worse
 * ones after; returns where the pivot lands. The order is total, so the result does
 * not depend on anything but the input. */
static gsize
partition (Candidate *c, gsize lo, gsize hi)
{
  gsize mid = lo + (hi - lo) / 2, last = hi - 1, store = lo;

  if (before (&c[mid], &c[lo]))
    swap (&c[mid], &c[lo]);
  if (before (&c[last], &c[lo]))
    swap (&c[last], &c[lo]);
  if (before (&c[mid], &c[last]))
    swap (&c[mid], &c[last]);
  for (gsize i = lo; i < last; i++)
    if (before (&c[i], &c[last]))
      swap (&c[i], &c[store++]);
  swap (&c[store], &c[last]);
  return store;
}

/* Restores the heap order of h[0..k) below i: every parent worse than its children. */
static void
sift_down (Candidate *h, gsize k, gsize i)
{
  for (;;)
    {
      gsize worst = i, l = 2 * i + 1, r = l + 1;

      if (l < k && before (&h[worst], &h[l]))
        worst = l;
      if (r < k && before (&h[worst], &h[r]))
        worst = r;
      if (worst == i)
        return;
      swap (&h[i], &h[worst]);
      i = worst;
    }
}

/* Moves the k best of c[0..n) to c[0..k), best first. A heap of the best so far with
 * the worst of them on top turns most of a vocabulary away with one comparison, and
 * only the k survivors are sorted. */
static void
take_best (Candidate *c, gsize n, gsize k)
{
  for (gsize i = k / 2; i-- > 0;)
    sift_down (c, k, i);
  for (gsize i = k; i < n; i++)
    if (before (&c[i], &c[0]))
      {
        swap (&c[0], &c[i]);
        sift_down (c, k, 0);
      }
  qsort (c, k, sizeof *c, compare_candidates);
}

static float
max_logit (const Candidate *c, gsize n, gboolean sorted)
{
  float m = c[0].logit;

  if (!sorted)
    for (gsize i = 1; i < n; i++)
      m = MAX (m, c[i].logit);
  return m;
}

static void
apply_penalties (AtSampler *s, Candidate *c, gsize n_vocab)
{
  const AtSamplerParams *p = &s->p;
  GHashTableIter iter;
  gpointer key, value;

  if (p->repeat_penalty == 1.0f && p->presence_penalty == 0.0f && p->frequency_penalty == 0.0f)
    return;
  g_hash_table_iter_init (&iter, s->counts);
  while (g_hash_table_iter_next (&iter, &key, &value))
    {
      gint32 id = GPOINTER_TO_INT (key);
      int count = GPOINTER_TO_INT (value);

      if (id < 0 || (gsize)id >= n_vocab)
        continue;
      float l = c[id].logit;
      l = l > 0.0f ? l / p->repeat_penalty : l * p->repeat_penalty;
      c[id].logit = l - (float)count * p->frequency_penalty - p->presence_penalty;
    }
}

/* How many of the best of c[0..n) make up a probability mass of at least top_p; they
 * end up in c[0..count), sorted only if c was. Without sorting, a quickselect that
 * follows the mass finds them in linear time, like a median search. weight is room
 * for n_vocab floats, indexed by id, so that each exp is taken once. */
static gsize
top_p_count (Candidate *c, gsize n, gboolean sorted, double top_p, float *weight)
{
  double max = max_logit (c, n, sorted), z = 0.0, mass = 0.0;
  gsize lo = 0, hi = n;

  for (gsize i = 0; i < n; i++)
    {
      weight[c[i].id] = (float)exp ((double)c[i].logit - max);
      z += weight[c[i].id];
    }
  top_p *= z;
  if (sorted)
    {
      for (gsize i = 0; i < n; i++)
        {
          mass += weight[c[i].id];
          if (mass >= top_p)
            return i + 1;
        }
      return n;
    }
  /* c[0..lo) are better than the rest and weigh mass < top_p; the count is in (lo, hi]. */
  while (hi - lo > 1)
    {
      gsize pivot = partition (c, lo, hi);
      double better = 0.0;

      for (gsize i = lo; i < pivot; i++)
        better += weight[c[i].id];
      if (mass + better >= top_p)
        hi = pivot;
      else
        {
          mass += better + weight[c[pivot].id];
          if (mass >= top_p)
            return pivot + 1;
          lo = pivot + 1;
        }
    }
  return hi;
}

gint32
at_sampler_sample (AtSampler *s, const float *logits, gsize n_vocab)
{
  const AtSamplerParams *p = &s->p;
  gsize n = n_vocab;
  gboolean sorted = FALSE;

  g_return_val_if_fail (n_vocab > 0 && n_vocab <= G_MAXINT32, -1);
  if (s->n_cand < n_vocab)
    {
      g_free (s->cand);
      g_free (s->weight);
      s->cand = g_new (Candidate, n_vocab);
      s->weight = g_new (float, n_vocab);
      s->n_cand = n_vocab;
    }
  Candidate *c = s->cand;
  /* NaN can never win, and +inf would turn the softmax into NaN. */
  for (gsize i = 0; i < n; i++)
    c[i] = (Candidate){ isnan (logits[i]) ? -INFINITY : MIN (logits[i], FLT_MAX), (gint32)i };
  apply_penalties (s, c, n_vocab);

  float max = max_logit (c, n, FALSE);
  if (p->temperature <= 0.0f || max == -INFINITY)
    {
      for (gsize i = 0; i < n; i++)
        if (c[i].logit == max)
          return c[i].id;
    }

  if (p->top_k > 0 && (gsize)p->top_k < n)
    {
      take_best (c, n, p->top_k);
      n = p->top_k;
      sorted = TRUE;
    }
  if (p->top_p < 1.0f)
    n = top_p_count (c, n, sorted, p->top_p, s->weight);
  if (p->min_p > 0.0f)
    {
      double threshold = (double)max_logit (c, n, sorted) + log (p->min_p);
      gsize kept = 0;
      for (gsize i = 0; i < n; i++)
        if ((double)c[i].logit >= threshold)
          c[kept++] = c[i];
      n = kept;
    }

  /* Temperature, softmax and the draw, in the order the candidates are in now; the
   * logits are done with, so they make room for the weights. */
  double inv_t = 1.0 / p->temperature, total = 0.0;
  max = max_logit (c, n, sorted);
  for (gsize i = 0; i < n; i++)
    {
      c[i].logit = (float)exp (((double)c[i].logit - max) * inv_t);
      total += c[i].logit;
    }
  double u = rng_uniform (s->rng) * total;
  gsize last = 0;
  for (gsize i = 0; i < n; i++)
    {
      u -= c[i].logit;
      if (u < 0.0)
        return c[i].id;
      if (c[i].logit > 0.0f)
        last = i;
    }
  /* Rounding left u at the very end: the last token that could be drawn. */
  return c[last].id;
}
