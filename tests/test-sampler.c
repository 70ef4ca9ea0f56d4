/* The sampler (greedy, top-k, top-p, min-p, temperature, penalties, seeds) and the
 * stop-string matcher. Needs no GPU. Distributions are checked over many draws with a
 * fixed seed, so the outcome is the same on every run. */
#include "at-error.h"
#include "text/at-sampler.h"
#include "text/at-stop-matcher.h"

#include <math.h>
#include <string.h>

static AtSamplerParams
plain_params (float temperature)
{
  AtSamplerParams p;

  at_sampler_params_init (&p);
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 1234;
  return p;
}

static AtSampler *
sampler_new (const AtSamplerParams *p)
{
  g_autoptr (GError) error = NULL;
  AtSampler *s = at_sampler_new (p, &error);

  g_assert_no_error (error);
  return s;
}

static float *
random_logits (GRand *rand, gsize n, double lo, double hi)
{
  float *logits = g_new (float, n);

  for (gsize i = 0; i < n; i++)
    logits[i] = (float)g_rand_double_range (rand, lo, hi);
  return logits;
}

static gsize
argmax (const float *logits, gsize n)
{
  gsize best = 0;

  for (gsize i = 1; i < n; i++)
    if (logits[i] > logits[best])
      best = i;
  return best;
}

/* counts[id] over draws samples. */
static guint *
histogram (AtSampler *s, const float *logits, gsize n, guint draws)
{
  guint *counts = g_new0 (guint, n);

  for (guint i = 0; i < draws; i++)
    {
      gint32 id = at_sampler_sample (s, logits, n);
      g_assert_cmpint (id, >=, 0);
      g_assert_cmpint (id, <, (gint32)n);
      counts[id]++;
    }
  return counts;
}

/* The logits of probabilities, in a scrambled order so that the id order says nothing. */
static void
logits_of (const double *probs, const gsize *ids, gsize n, float *logits)
{
  for (gsize i = 0; i < n; i++)
    logits[ids[i]] = (float)log (probs[i]);
}

static void
assert_support (const guint *counts, gsize n, const gboolean *allowed)
{
  for (gsize i = 0; i < n; i++)
    {
      if (allowed[i])
        g_assert_cmpuint (counts[i], >, 0);
      else
        g_assert_cmpuint (counts[i], ==, 0);
    }
}

static void
test_greedy (void)
{
  const float logits[] = { 1.0f, 5.0f, 3.0f, 5.0f, -2.0f };
  g_autoptr (GRand) rand = g_rand_new_with_seed (7);

  for (int t = 0; t < 2; t++)
    {
      /* 0 and negative temperatures are both greedy. */
      AtSamplerParams p = plain_params (t == 0 ? 0.0f : -1.0f);
      g_autoptr (AtSampler) s = sampler_new (&p);

      g_assert_cmpint (at_sampler_sample (s, logits, G_N_ELEMENTS (logits)), ==, 1);
      for (int row = 0; row < 20; row++)
        {
          g_autofree float *l = random_logits (rand, 1000, -10, 10);
          g_assert_cmpint (at_sampler_sample (s, l, 1000), ==, (gint32)argmax (l, 1000));
        }
    }
}

static void
test_top_k_one (void)
{
  AtSamplerParams p = plain_params (1.5f);
  g_autoptr (GRand) rand = g_rand_new_with_seed (8);

  p.top_k = 1;
  g_autoptr (AtSampler) s = sampler_new (&p);
  for (int row = 0; row < 50; row++)
    {
      g_autofree float *l = random_logits (rand, 5000, -3, 3);
      g_assert_cmpint (at_sampler_sample (s, l, 5000), ==, (gint32)argmax (l, 5000));
    }
}

static int
compare_desc (gconstpointer a, gconstpointer b, gpointer data)
{
  const float *l = data;
  float x = l[*(const gsize *)a], y = l[*(const gsize *)b];

  return x > y ? -1 : x < y ? 1 : 0;
}

/* Ids in order of falling logit. */
static gsize *
ranking (const float *logits, gsize n)
{
  gsize *ids = g_new (gsize, n);

  for (gsize i = 0; i < n; i++)
    ids[i] = i;
  g_qsort_with_data (ids, n, sizeof *ids, compare_desc, (gpointer)logits);
  return ids;
}

static void
test_top_k (void)
{
  const gsize n = 1000, k = 10;
  g_autoptr (GRand) rand = g_rand_new_with_seed (9);
  g_autofree float *logits = random_logits (rand, n, 0, 2);
  g_autofree gsize *ids = ranking (logits, n);
  g_autofree gboolean *allowed = g_new0 (gboolean, n);
  AtSamplerParams p = plain_params (1.0f);

  p.top_k = k;
  g_autoptr (AtSampler) s = sampler_new (&p);
  for (gsize i = 0; i < k; i++)
    allowed[ids[i]] = TRUE;
  g_autofree guint *counts = histogram (s, logits, n, 10000);
  assert_support (counts, n, allowed);
}

static void
test_top_p (void)
{
  /* Cumulative 0.5, 0.7, 0.85, 0.95, 1: top-p 0.8 needs the first three. */
  const double probs[] = { 0.5, 0.2, 0.15, 0.1, 0.05 };
  const gsize ids[] = { 3, 0, 4, 1, 2 };
  float logits[5];
  gboolean allowed[5] = { FALSE };
  AtSamplerParams p = plain_params (1.0f);

  p.top_p = 0.8f;
  logits_of (probs, ids, 5, logits);
  for (gsize i = 0; i < 3; i++)
    allowed[ids[i]] = TRUE;
  g_autoptr (AtSampler) s = sampler_new (&p);
  g_autofree guint *counts = histogram (s, logits, 5, 10000);
  assert_support (counts, 5, allowed);
}

/* A large vocabulary without top-k, where the kept set is first larger than the
 * sampler's first guess and then the whole vocabulary. */
static void
test_top_p_large (void)
{
  const gsize n = 50000;
  g_autoptr (GRand) rand = g_rand_new_with_seed (10);
  const float top_ps[] = { 0.3f, 0.9f, 0.999f };

  for (gsize t = 0; t < G_N_ELEMENTS (top_ps); t++)
    {
      g_autofree float *logits = random_logits (rand, n, 0, 4);
      g_autofree gsize *ids = ranking (logits, n);
      g_autofree gboolean *allowed = g_new0 (gboolean, n);
      double max = logits[ids[0]], z = 0.0, mass = 0.0;
      gsize kept = 0;
      AtSamplerParams p = plain_params (1.0f);

      for (gsize i = 0; i < n; i++)
        z += exp (logits[i] - max);
      while (mass < top_ps[t])
        {
          allowed[ids[kept]] = TRUE;
          mass += exp (logits[ids[kept++]] - max) / z;
        }
      g_test_message ("top-p %g keeps %zu of %zu", top_ps[t], kept, n);
      p.top_p = top_ps[t];
      g_autoptr (AtSampler) s = sampler_new (&p);
      g_autofree guint *counts = histogram (s, logits, n, 500);
      for (gsize i = 0; i < n; i++)
        if (!allowed[i])
          g_assert_cmpuint (counts[i], ==, 0);
    }
}

static void
test_min_p (void)
{
  /* min-p 0.125 of p_max 0.4 is 0.05: 0.06 stays, 0.04 goes. */
  const double probs[] = { 0.4, 0.3, 0.2, 0.06, 0.04 };
  const gsize ids[] = { 2, 4, 0, 3, 1 };
  float logits[5];
  gboolean allowed[5] = { TRUE, TRUE, TRUE, TRUE, TRUE };
  AtSamplerParams p = plain_params (1.0f);

  p.min_p = 0.125f;
  logits_of (probs, ids, 5, logits);
  allowed[ids[4]] = FALSE;
  g_autoptr (AtSampler) s = sampler_new (&p);
  g_autofree guint *counts = histogram (s, logits, 5, 20000);
  assert_support (counts, 5, allowed);
}

/* The draws follow softmax(logits / T): Pearson's chi-square with 7 degrees of freedom
 * stays under 24.3 with probability 0.999 when they do. */
static void
test_temperature (void)
{
  const float logits[] = { 1.0f, 0.5f, 0.0f, -0.5f, 2.0f, 1.5f, -1.0f, 0.25f };
  const gsize n = G_N_ELEMENTS (logits);
  const guint draws = 20000;
  const float temps[] = { 0.5f, 1.0f, 2.0f };

  for (gsize t = 0; t < G_N_ELEMENTS (temps); t++)
    {
      AtSamplerParams p = plain_params (temps[t]);
      g_autoptr (AtSampler) s = sampler_new (&p);
      g_autofree guint *counts = histogram (s, logits, n, draws);
      double z = 0.0, chi2 = 0.0;

      for (gsize i = 0; i < n; i++)
        z += exp (logits[i] / temps[t]);
      for (gsize i = 0; i < n; i++)
        {
          double expected = draws * exp (logits[i] / temps[t]) / z;
          chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
        }
      g_test_message ("T %g: chi-square %.2f", temps[t], chi2);
      g_assert_cmpfloat (chi2, <, 24.3);
    }
}

/* The greedy pick after accepting history, to read the penalized logits off. */
static gint32
greedy_after (const AtSamplerParams *base, const float *logits, gsize n, const gint32 *history,
              gsize n_history)
{
  AtSamplerParams p = *base;

  p.temperature = 0.0f;
  g_autoptr (AtSampler) s = sampler_new (&p);
  for (gsize i = 0; i < n_history; i++)
    at_sampler_accept (s, history[i]);
  return at_sampler_sample (s, logits, n);
}

static void
test_repeat_penalty (void)
{
  AtSamplerParams p = plain_params (0.0f);
  const gint32 seen0[] = { 0 };
  const gint32 seen0_then_others[] = { 0, 5, 6 };

  p.repeat_last_n = 2;
  /* A positive logit is divided: 2 / 1.5 = 1.33 < 1.5, 2 / 1.2 = 1.67 > 1.5. */
  const float positive[] = { 2.0f, 1.5f, 0, 0, 0, 0, 0 };
  p.repeat_penalty = 1.5f;
  g_assert_cmpint (greedy_after (&p, positive, 7, seen0, 1), ==, 1);
  p.repeat_penalty = 1.2f;
  g_assert_cmpint (greedy_after (&p, positive, 7, seen0, 1), ==, 0);

  /* Any other is multiplied: -1 * 1.5 = -1.5 < -1.3, -1 * 1.2 = -1.2 > -1.3. */
  const float negative[] = { -1.0f, -1.3f, -9, -9, -9, -9, -9 };
  p.repeat_penalty = 1.5f;
  g_assert_cmpint (greedy_after (&p, negative, 7, seen0, 1), ==, 1);
  p.repeat_penalty = 1.2f;
  g_assert_cmpint (greedy_after (&p, negative, 7, seen0, 1), ==, 0);

  /* Only the last repeat_last_n tokens count. */
  p.repeat_penalty = 1.5f;
  g_assert_cmpint (greedy_after (&p, positive, 7, seen0_then_others, 3), ==, 0);
  p.repeat_last_n = 3;
  g_assert_cmpint (greedy_after (&p, positive, 7, seen0_then_others, 3), ==, 1);
  p.repeat_last_n = -1;
  g_assert_cmpint (greedy_after (&p, positive, 7, seen0_then_others, 3), ==, 1);
  p.repeat_last_n = 0;
  g_assert_cmpint (greedy_after (&p, positive, 7, seen0_then_others, 3), ==, 0);
}

static void
test_presence_frequency (void)
{
  AtSamplerParams p = plain_params (0.0f);
  const float logits[] = { 3.0f, 2.0f, 1.6f };
  const gint32 once[] = { 0 }, twice[] = { 0, 0 };

  /* 3 - 0.5 - 1 * 0.3 = 2.2 > 2, 3 - 0.5 - 2 * 0.3 = 1.9 < 2. */
  p.presence_penalty = 0.5f;
  p.frequency_penalty = 0.3f;
  g_assert_cmpint (greedy_after (&p, logits, 3, once, 1), ==, 0);
  g_assert_cmpint (greedy_after (&p, logits, 3, twice, 2), ==, 1);
  /* Presence counts once however often: 3 - 0.9 = 2.1 > 2 both times. */
  p.presence_penalty = 0.9f;
  p.frequency_penalty = 0.0f;
  g_assert_cmpint (greedy_after (&p, logits, 3, twice, 2), ==, 0);
  p.presence_penalty = 1.1f;
  g_assert_cmpint (greedy_after (&p, logits, 3, once, 1), ==, 1);
  /* The repeat penalty comes first: 3 / 1.25 - 0.5 = 1.9 < 2, not (3 - 0.5) / 1.25 = 2. */
  p.repeat_penalty = 1.25f;
  p.presence_penalty = 0.5f;
  const float tie_breaker[] = { 3.0f, 1.95f, 0.0f };
  g_assert_cmpint (greedy_after (&p, tie_breaker, 3, once, 1), ==, 1);
}

/* Logits that depend only on the step, the same everywhere. */
static void
fill_step (float *logits, gsize n, int step)
{
  for (gsize i = 0; i < n; i++)
    logits[i] = (float)(4.0 * sin (0.37 * (double)i + 1.3 * step) + 0.001 * (double)(i % 97));
}

static void
run_steps (AtSampler *s, float *logits, gsize n, gint32 *out, int steps)
{
  for (int t = 0; t < steps; t++)
    {
      fill_step (logits, n, t);
      out[t] = at_sampler_sample (s, logits, n);
      at_sampler_accept (s, out[t]);
    }
}

static void
test_determinism (void)
{
  const gsize n = 32000;
  const int steps = 16;
  g_autofree float *logits = g_new (float, n);
  gint32 a[16], b[16], c[16];
  AtSamplerParams p;

  at_sampler_params_init (&p);
  p.seed = 42;
  p.repeat_penalty = 1.1f;
  g_autoptr (AtSampler) s1 = sampler_new (&p);
  g_autoptr (AtSampler) s2 = sampler_new (&p);
  run_steps (s1, logits, n, a, steps);
  run_steps (s2, logits, n, b, steps);
  g_assert_cmpmem (a, sizeof a, b, sizeof b);
  at_sampler_reset (s1);
  run_steps (s1, logits, n, c, steps);
  g_assert_cmpmem (a, sizeof a, c, sizeof c);

  /* The same on every machine: xoshiro256** and the candidate order are fixed. */
  GString *seq = g_string_new (NULL);
  for (int t = 0; t < steps; t++)
    g_string_append_printf (seq, "%d ", a[t]);
  g_test_message ("seed 42: %s", seq->str);
  g_string_free (seq, TRUE);

  p.seed = 43;
  g_autoptr (AtSampler) s3 = sampler_new (&p);
  run_steps (s3, logits, n, c, steps);
  g_assert_true (memcmp (a, c, sizeof a) != 0);
}

/* A vocabulary the size of Qwen2's through the default chain and a top-p-only chain. */
static void
test_large_vocab (void)
{
  const gsize n = 152064;
  g_autoptr (GRand) rand = g_rand_new_with_seed (11);
  g_autofree float *logits = random_logits (rand, n, -8, 8);
  AtSamplerParams p;

  at_sampler_params_init (&p);
  for (int chain = 0; chain < 2; chain++)
    {
      p.top_k = chain == 0 ? 40 : 0;
      g_autoptr (AtSampler) s = sampler_new (&p);
      gint64 start = g_get_monotonic_time ();
      for (int i = 0; i < 50; i++)
        {
          gint32 id = at_sampler_sample (s, logits, n);
          g_assert_cmpint (id, >=, 0);
          at_sampler_accept (s, id);
        }
      g_test_message ("vocab %zu, top-k %d: %.3f ms per token", n, p.top_k,
                      (g_get_monotonic_time () - start) / 50e3);
    }
}

static void
test_bad_params (void)
{
  static const struct
  {
    const char *what;
    AtSamplerParams p;
  } cases[] = {
    { "top_p 0", { .top_p = 0.0f, .repeat_penalty = 1 } },
    { "top_p 1.5", { .top_p = 1.5f, .repeat_penalty = 1 } },
    { "top_p NaN", { .top_p = NAN, .repeat_penalty = 1 } },
    { "min_p -0.1", { .top_p = 1, .min_p = -0.1f, .repeat_penalty = 1 } },
    { "min_p 1.1", { .top_p = 1, .min_p = 1.1f, .repeat_penalty = 1 } },
    { "repeat_penalty 0", { .top_p = 1, .repeat_penalty = 0 } },
    { "repeat_penalty -1", { .top_p = 1, .repeat_penalty = -1 } },
    { "repeat_last_n -2", { .top_p = 1, .repeat_penalty = 1, .repeat_last_n = -2 } },
    { "temperature NaN", { .temperature = NAN, .top_p = 1, .repeat_penalty = 1 } },
    { "presence inf", { .top_p = 1, .repeat_penalty = 1, .presence_penalty = INFINITY } },
    { "frequency NaN", { .top_p = 1, .repeat_penalty = 1, .frequency_penalty = NAN } },
  };

  for (gsize i = 0; i < G_N_ELEMENTS (cases); i++)
    {
      g_autoptr (GError) error = NULL;
      g_autoptr (AtSampler) s = at_sampler_new (&cases[i].p, &error);

      g_test_message ("%s: %s", cases[i].what, error ? error->message : "accepted");
      g_assert_null (s);
      g_assert_error (error, AT_ERROR, AT_ERROR_INVALID_ARGUMENT);
    }
  AtSamplerParams ok = { .temperature = -1, .top_p = 1, .repeat_penalty = 1 };
  g_autoptr (AtSampler) s = sampler_new (&ok);
  g_assert_nonnull (s);
}

/* A piece pushed, and what must come out. */
typedef struct
{
  const char *piece, *out;
  gboolean stopped;
} Push;

static void
run_pushes (const char *const *stops, const Push *pushes, gsize n, const char *stop,
            const char *flushed)
{
  g_autoptr (AtStopMatcher) m = at_stop_matcher_new (stops);

  for (gsize i = 0; i < n; i++)
    {
      gboolean stopped = !pushes[i].stopped;
      g_autofree char *out = at_stop_matcher_push (m, pushes[i].piece, &stopped);

      g_assert_cmpstr (out, ==, pushes[i].out);
      g_assert_cmpint (stopped, ==, pushes[i].stopped);
      g_assert_true (g_utf8_validate (out, -1, NULL));
    }
  g_assert_cmpstr (at_stop_matcher_get_stop (m), ==, stop);
  g_autofree char *rest = at_stop_matcher_flush (m);
  g_assert_cmpstr (rest, ==, flushed);
}

static void
test_stop_spanning (void)
{
  const char *stops[] = { "</s>", NULL };
  const Push spanning[] = {
    { "Hello <", "Hello ", FALSE },
    { "/", "", FALSE },
    { "s> and more", "", TRUE },
    { "ignored", "", TRUE },
  };
  const Push broken[] = {
    { "a <", "a ", FALSE },
    { "/b>", "</b>", FALSE },
    { "x</", "x", FALSE },
  };
  const Push inside[] = { { "one</s>two", "one", TRUE } };
  const Push plain[] = { { "a <", "a <", FALSE }, { "/s>", "/s>", FALSE } };

  run_pushes (stops, spanning, G_N_ELEMENTS (spanning), "</s>", "");
  run_pushes (stops, broken, G_N_ELEMENTS (broken), NULL, "</");
  run_pushes (stops, inside, G_N_ELEMENTS (inside), "</s>", "");
  run_pushes (NULL, plain, G_N_ELEMENTS (plain), NULL, "");
}

static void
test_stop_several (void)
{
  const char *stops[] = { "\n\nUser:", "###", "", NULL };
  const Push pushes[] = {
    { "abc\n\nUs", "abc", FALSE }, { "e", "", FALSE }, { "d it", "\n\nUsed it", FALSE },
    { "x##", "x", FALSE },         { "#y", "", TRUE },
  };
  /* The stop string that starts first wins, whatever the list order. */
  const char *overlapping[] = { "bcd", "abx", "ab", NULL };
  const Push first[] = { { "zabcd", "z", TRUE } };

  run_pushes (stops, pushes, G_N_ELEMENTS (pushes), "###", "");
  run_pushes (overlapping, first, 1, "ab", "");
}

static void
test_stop_utf8 (void)
{
  const char *stops[] = { "終わり", "é!", NULL };
  const Push pushes[] = {
    { "こんにちは終", "こんにちは", FALSE },
    { "わ", "", FALSE },
    { "る", "終わる", FALSE },
    { "café", "caf", FALSE },
    { "?", "é?", FALSE },
    { "né", "n", FALSE },
    { "!", "", TRUE },
  };

  run_pushes (stops, pushes, G_N_ELEMENTS (pushes), "é!", "");
}

/* Random texts cut at random places: what comes out, plus the flush when nothing stops,
 * is the text up to the first stop string. */
static void
test_stop_random (void)
{
  const char *stops[] = { "abc", "cab", "bb", "aaaa", NULL };
  g_autoptr (GRand) rand = g_rand_new_with_seed (12);

  for (int round = 0; round < 2000; round++)
    {
      char text[41];
      int len = g_rand_int_range (rand, 0, 40);
      for (int i = 0; i < len; i++)
        text[i] = "abc"[g_rand_int_range (rand, 0, 3)];
      text[len] = '\0';

      gsize end = len;
      for (gsize j = 0; stops[j] != NULL; j++)
        {
          const char *at = strstr (text, stops[j]);
          if (at != NULL)
            end = MIN (end, (gsize)(at - text));
        }

      g_autoptr (AtStopMatcher) m = at_stop_matcher_new (stops);
      g_autoptr (GString) got = g_string_new (NULL);
      gboolean stopped = FALSE;
      for (int i = 0; i < len && !stopped;)
        {
          int piece = MIN (len - i, g_rand_int_range (rand, 1, 5));
          g_autofree char *chunk = g_strndup (text + i, piece);
          g_autofree char *out = at_stop_matcher_push (m, chunk, &stopped);
          g_string_append (got, out);
          i += piece;
        }
      g_autofree char *rest = at_stop_matcher_flush (m);
      g_string_append (got, rest);
      g_assert_cmpint (stopped, ==, end < (gsize)len);
      g_assert_cmpuint (got->len, ==, end);
      g_assert_cmpmem (got->str, got->len, text, end);
    }
}

int
main (int argc, char **argv)
{
  g_test_init (&argc, &argv, NULL);
  g_test_add_func ("/text/sampler/greedy", test_greedy);
  g_test_add_func ("/text/sampler/top-k-one", test_top_k_one);
  g_test_add_func ("/text/sampler/top-k", test_top_k);
  g_test_add_func ("/text/sampler/top-p", test_top_p);
  g_test_add_func ("/text/sampler/top-p-large", test_top_p_large);
  g_test_add_func ("/text/sampler/min-p", test_min_p);
  g_test_add_func ("/text/sampler/temperature", test_temperature);
  g_test_add_func ("/text/sampler/repeat-penalty", test_repeat_penalty);
  g_test_add_func ("/text/sampler/presence-frequency", test_presence_frequency);
  g_test_add_func ("/text/sampler/determinism", test_determinism);
  g_test_add_func ("/text/sampler/large-vocab", test_large_vocab);
  g_test_add_func ("/text/sampler/bad-params", test_bad_params);
  g_test_add_func ("/text/stop/spanning", test_stop_spanning);
  g_test_add_func ("/text/stop/several", test_stop_several);
  g_test_add_func ("/text/stop/utf8", test_stop_utf8);
  g_test_add_func ("/text/stop/random", test_stop_random);
  return g_test_run ();
}
