#include "ref/at-ref-attention.h"

#include <math.h>

void
at_ref_flash_attn (const AtRefAttnShape *s, const float *q, const float *k, const float *v,
                   const float *mask, float *dst)
{
  const gint64 d_k = s->head_dim;
  g_autofree double *score = g_new (double, s->n_kv);
  g_autofree double *out = g_new (double, d_k);

  for (gint64 h = 0; h < s->n_head; h++)
    {
      const gint64 hk = h / (s->n_head / s->n_head_kv);
      const float *k_head = k + hk * s->n_kv * d_k;
      const float *v_head = v + hk * s->n_kv * d_k;

      for (gint64 i = 0; i < s->n_q; i++)
        {
          const float *q_row = q + (h * s->n_q + i) * d_k;
          float *dst_row = dst + (i * s->n_head + h) * d_k;
          double max = -INFINITY, sum = 0;

          for (gint64 j = 0; j < s->n_kv; j++)
            {
              double dot = 0;
              for (gint64 d = 0; d < d_k; d++)
                dot += (double) q_row[d] * k_head[j * d_k + d];
              score[j] = dot * s->scale + (mask ? mask[i * s->n_kv + j] : 0.0);
              if (s->causal && j > i + s->causal_offset)
                score[j] = -INFINITY;
              max = MAX (max, score[j]);
            }
          for (gint64 d = 0; d < d_k; d++)
            out[d] = 0;
          if (max == -INFINITY)
            {
              for (gint64 d = 0; d < d_k; d++)
                dst_row[d] = 0;
              continue;
            }
          for (gint64 j = 0; j < s->n_kv; j++)
            {
              double p = exp (score[j] - max);
              sum += p;
              for (gint64 d = 0; d < d_k; d++)
                out[d] += p * v_head[j * d_k + d];
            }
          for (gint64 d = 0; d < d_k; d++)
            dst_row[d] = (float) (out[d] / sum);
        }
    }
}
