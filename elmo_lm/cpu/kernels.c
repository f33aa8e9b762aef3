/* Loops that torch runs as many small operations, in one pass each. elmo_lm/cpu/native.py
 * compiles this file on first use (cc -O3 -march=native) and gives each function's argument
 * types; elmo_lm/cpu/kernels.py is the one caller, with the torch operations beside each call.
 *
 * elmo_lstm_steps_forward / _backward: an LSTM layer's recurrence, every step's two small
 * matrix products (the recurrent one and the projection) and its cell's elementwise work, one
 * direction per thread. In torch each step is a dozen operations, each reading and writing its
 * whole (2, rows, 4H) or (2, rows, H) tensor and the products split over threads for a few
 * microseconds of work each; here a step's data stays in the core's cache, and each element of
 * the cell is read once, its gates, cell, tanh and output computed together.
 * elmo_softmax_rows: the sampled softmax's row softmax in place, one pass per row in cache.
 * elmo_first_distinct: the log-uniform sampler's first distinct draws, one loop over the stream.
 * elmo_coalesce_rows: a sparse gradient's distinct rows and their sums, through a row table.
 * elmo_adagrad_rows: Adagrad's update of a sparse gradient's distinct rows.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

/* The loops below write outputs that overlap none of their inputs: let them be vectorised. */
#if defined(__clang__)
#define VECTORIZE _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define VECTORIZE _Pragma("GCC ivdep")
#else
#define VECTORIZE
#endif

/* exp(x) for float x: Cody-Waite range reduction and a degree-6 polynomial (the Cephes expf
 * coefficients), about 1 ulp; branch-free so that loops over it vectorise. */
static inline float exp_f(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    /* round to nearest: adding 1.5 * 2^23 drops the fraction (|x * log2 e| < 2^22) */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

/* exp(y) - 1 for y <= 0, accurate near 0 (Taylor terms to y^8 for |y| <= 0.5). */
static inline float expm1_neg(float y) {
    float series = y * (1.0f + y * (1.0f / 2 + y * (1.0f / 6 + y * (1.0f / 24 + y * (1.0f / 120
                   + y * (1.0f / 720 + y * (1.0f / 5040 + y * (1.0f / 40320))))))));
    return y < -0.5f ? exp_f(y) - 1.0f : series;
}

/* tanh(x) = -expm1(-2|x|) / (2 + expm1(-2|x|)), with the sign of x: a few ulp everywhere. */
static inline float tanh_f(float x) {
    float e = expm1_neg(-2.0f * fabsf(x));
    float t = -e / (2.0f + e);
    return x < 0.0f ? -t : t;
}

static inline float clip_f(float x, float clip) {
    return x > clip ? clip : (x < -clip ? -clip : x);  /* NaN passes, as torch.clamp */
}

/* c[m, n] = init[m, n] + a[m, k] @ b[k, n] (init NULL: 0), for row-major matrices with row
 * strides lda, ldb, ldi and ldc; init may be c. Tiles of MR x NR outputs stay in registers
 * while k runs (the compiler vectorises the NR columns), so each element of b is read once per
 * MR rows and each of a once per NR columns. */
#define MR 8
#define NR 32
static void gemm_f(const float *a, int64_t lda, const float *b, int64_t ldb, const float *init,
                   int64_t ldi, float *c, int64_t ldc, int64_t m, int64_t n, int64_t k) {
    for (int64_t j0 = 0; j0 < n; j0 += NR) {
        int64_t nr = n - j0 < NR ? n - j0 : NR;
        for (int64_t i0 = 0; i0 < m; i0 += MR) {
            int64_t mr = m - i0 < MR ? m - i0 : MR;
            const float *ap = a + i0 * lda;
            const float *bp = b + j0;
            float acc[MR][NR];
            if (mr == MR && nr == NR) {  /* a whole tile: fixed trip counts */
                for (int r = 0; r < MR; r++)
                    for (int j = 0; j < NR; j++)
                        acc[r][j] = init ? init[(i0 + r) * ldi + j0 + j] : 0.0f;
                for (int64_t p = 0; p < k; p++) {
                    const float *brow = bp + p * ldb;
                    for (int r = 0; r < MR; r++) {
                        float av = ap[r * lda + p];
                        for (int j = 0; j < NR; j++) acc[r][j] += av * brow[j];
                    }
                }
                for (int r = 0; r < MR; r++)
                    for (int j = 0; j < NR; j++) c[(i0 + r) * ldc + j0 + j] = acc[r][j];
            } else {  /* an edge tile */
                for (int64_t r = 0; r < mr; r++)
                    for (int64_t j = 0; j < nr; j++)
                        acc[r][j] = init ? init[(i0 + r) * ldi + j0 + j] : 0.0f;
                for (int64_t p = 0; p < k; p++) {
                    const float *brow = bp + p * ldb;
                    for (int64_t r = 0; r < mr; r++) {
                        float av = ap[r * lda + p];
                        for (int64_t j = 0; j < nr; j++) acc[r][j] += av * brow[j];
                    }
                }
                for (int64_t r = 0; r < mr; r++)
                    for (int64_t j = 0; j < nr; j++) c[(i0 + r) * ldc + j0 + j] = acc[r][j];
            }
        }
    }
}

/* One layer's recurrence in one direction. Rows are sorted by length, so the rows running at
 * a step are a prefix of the previous step's; step t's n = sizes[t] rows are rows start[t] ..
 * start[t] + n - 1 of the time-major packed (N, .) buffers. The cell's gate blocks are i, j, f,
 * o (biases, forget bias included, already in z). */
typedef struct {
    const float *z;      /* (N, 4H) the inputs' part of the gates' pre-activations */
    const float *h0;     /* (B, P) */
    const float *c0;     /* (B, H) */
    const float *w_rec;  /* (P, 4H), row stride w_rec_ld */
    int64_t w_rec_ld;
    const float *proj;   /* (H, P), NULL: no projection (P == H, out is m) */
    const float *w_rec_t;  /* backward: (4H, P) */
    const float *proj_t;   /* backward: (P, H) or NULL */
    float *acts;         /* (N, 4H) the gates after their activations */
    float *cells;        /* (N, H) the cell after each step (clipped) */
    float *tanh_cells;   /* (N, H) */
    float *m;            /* (N, H) o * tanh(cell), the projection's input (NULL: out) */
    float *out;          /* (N, P) the outputs h */
    const float *d_out;  /* backward: (N, P) the gradient of the outputs from above */
    float *d_h;          /* backward: (B, P) in, from after the last step; out, of h0 */
    float *d_c;          /* backward: (B, H) the same for the cell */
    float *dz;           /* backward: (N, 4H) the gates' pre-activations' gradient */
    float *d_hp;         /* backward: (N, P) the gradient of each step's projection output, or NULL */
    float *dm;           /* backward: (B, H) scratch */
    const int64_t *sizes;
    int64_t steps, H, P;
    int has_cell_clip, has_proj_clip;
    float cell_clip, proj_clip;
} lstm_dir;

static void lstm_dir_forward(const lstm_dir *x) {
    const int64_t H = x->H, P = x->P, G = 4 * H;
    const int has_clip = x->has_cell_clip;
    const float clip = x->cell_clip;
    float *m_buf = x->m ? x->m : x->out;
    int64_t start = 0, prev = 0;
    for (int64_t t = 0; t < x->steps; t++) {
        int64_t n = x->sizes[t];
        const float *h_prev = t ? x->out + prev * P : x->h0;
        const float *c_prev = t ? x->cells + prev * H : x->c0;
        float *acts = x->acts + start * G;
        gemm_f(h_prev, P, x->w_rec, x->w_rec_ld, x->z + start * G, G, acts, G, n, G, P);
        for (int64_t r = 0; r < n; r++) {
            float *g = acts + r * G;
            const float *cp = c_prev + r * H;
            float *c_out = x->cells + (start + r) * H;
            float *t_out = x->tanh_cells + (start + r) * H;
            float *m_out = m_buf + (start + r) * H;
            VECTORIZE
            for (int64_t k = 0; k < H; k++) {
                float i = sigmoid_f(g[k]);
                float j = tanh_f(g[H + k]);
                float f = sigmoid_f(g[2 * H + k]);
                float o = sigmoid_f(g[3 * H + k]);
                float c = f * cp[k] + i * j;
                if (has_clip) c = clip_f(c, clip);
                float tc = tanh_f(c);
                g[k] = i;
                g[H + k] = j;
                g[2 * H + k] = f;
                g[3 * H + k] = o;
                c_out[k] = c;
                t_out[k] = tc;
                m_out[k] = o * tc;
            }
        }
        if (x->proj) {
            float *h = x->out + start * P;
            gemm_f(m_buf + start * H, H, x->proj, P, NULL, 0, h, P, n, P, H);
            if (x->has_proj_clip) {
                const float proj_clip = x->proj_clip;
                for (int64_t e = 0; e < n * P; e++) h[e] = clip_f(h[e], proj_clip);
            }
        }
        prev = start;
        start += n;
    }
}

static void lstm_dir_backward(const lstm_dir *x) {
    const int64_t H = x->H, P = x->P, G = 4 * H;
    const int has_clip = x->has_cell_clip, has_proj_clip = x->has_proj_clip;
    const float clip = x->cell_clip, proj_clip = x->proj_clip;
    int64_t total = 0;
    for (int64_t t = 0; t < x->steps; t++) total += x->sizes[t];
    int64_t start = total;
    for (int64_t t = x->steps - 1; t >= 0; t--) {
        int64_t n = x->sizes[t];
        start -= n;
        int64_t prev = t ? start - x->sizes[t - 1] : 0;
        /* the gradient reaching the step's output h (through the projection's clip) */
        float *grad = x->proj_t ? x->d_hp + start * P : x->dm;
        for (int64_t r = 0; r < n; r++) {
            const float *go = x->d_out + (start + r) * P;
            const float *gh = x->d_h + r * P;
            const float *h = x->out + (start + r) * P;
            float *g = grad + r * P;
            VECTORIZE
            for (int64_t k = 0; k < P; k++) {
                float v = go[k] + gh[k];
                g[k] = (!has_proj_clip || fabsf(h[k]) < proj_clip) ? v : 0.0f;
            }
        }
        if (x->proj_t) gemm_f(grad, P, x->proj_t, H, NULL, 0, x->dm, H, n, H, P);
        const float *c_prev = t ? x->cells + prev * H : x->c0;
        for (int64_t r = 0; r < n; r++) {
            const float *gm = x->dm + r * H;
            float *gc = x->d_c + r * H;
            const float *g = x->acts + (start + r) * G;
            const float *cp = c_prev + r * H;
            const float *c = x->cells + (start + r) * H;
            const float *tc = x->tanh_cells + (start + r) * H;
            float *out = x->dz + (start + r) * G;
            VECTORIZE
            for (int64_t k = 0; k < H; k++) {
                float i = g[k], j = g[H + k], f = g[2 * H + k], o = g[3 * H + k];
                float th = tc[k];
                float dc = gc[k] + gm[k] * o * (1.0f - th * th);
                if (has_clip && !(fabsf(c[k]) < clip)) dc = 0.0f;
                out[k] = dc * j * i * (1.0f - i);
                out[H + k] = dc * i * (1.0f - j * j);
                out[2 * H + k] = dc * cp[k] * f * (1.0f - f);
                out[3 * H + k] = gm[k] * th * o * (1.0f - o);
                gc[k] = dc * f;
            }
        }
        gemm_f(x->dz + start * G, G, x->w_rec_t, P, NULL, 0, x->d_h, P, n, P, G);
    }
}

/* Both directions, on two threads of the OpenMP pool when threads > 1 (torch's own pool: the
 * library is loaded into torch's process, whose libgomp it shares). */
static void lstm_both(lstm_dir dirs[2], int backward, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int d = 0; d < 2; d++) {
        if (backward)
            lstm_dir_backward(&dirs[d]);
        else
            lstm_dir_forward(&dirs[d]);
    }
}

/* The fields both passes share: steps and sizes, widths and clips. */
static lstm_dir lstm_dir_shape(const int64_t *sizes, int64_t steps, int64_t H, int64_t P,
                               int has_cell_clip, float cell_clip, int has_proj_clip,
                               float proj_clip) {
    lstm_dir x = {0};
    x.sizes = sizes;
    x.steps = steps;
    x.H = H;
    x.P = P;
    x.has_cell_clip = has_cell_clip;
    x.cell_clip = cell_clip;
    x.has_proj_clip = has_proj_clip;
    x.proj_clip = proj_clip;
    return x;
}

/* A layer's steps, both directions (LstmSteps in elmo_lm/model/lstm.py). Buffers are (2, rows,
 * width) contiguous, direction 1 after direction 0; z_fwd and z_bwd (N, 4H) each; w_rec is
 * direction 0's (P, 4H) with rows 4H apart and direction 1's w_rec_dir floats further; proj
 * (2, H, P) or NULL (then m is NULL too). */
void elmo_lstm_steps_forward(const float *z_fwd, const float *z_bwd, const float *h0,
                             const float *c0, int64_t B, const float *w_rec, int64_t w_rec_dir,
                             const float *proj, const int64_t *sizes, int64_t steps, int64_t N,
                             int64_t H, int64_t P, float *acts, float *cells, float *tanh_cells,
                             float *m, float *out, int has_cell_clip, float cell_clip,
                             int has_proj_clip, float proj_clip, int threads) {
    lstm_dir dirs[2];
    for (int d = 0; d < 2; d++) {
        lstm_dir x = lstm_dir_shape(sizes, steps, H, P, has_cell_clip, cell_clip,
                                    proj && has_proj_clip, proj_clip);
        x.z = d ? z_bwd : z_fwd;
        x.h0 = h0 + d * B * P;
        x.c0 = c0 + d * B * H;
        x.w_rec = w_rec + d * w_rec_dir;
        x.w_rec_ld = 4 * H;
        x.proj = proj ? proj + d * H * P : NULL;
        x.acts = acts + d * N * 4 * H;
        x.cells = cells + d * N * H;
        x.tanh_cells = tanh_cells + d * N * H;
        x.m = m ? m + d * N * H : NULL;
        x.out = out + d * N * P;
        dirs[d] = x;
    }
    lstm_both(dirs, 0, threads);
}

/* The backward pass of elmo_lstm_steps_forward: d_out (2, N, P); d_h (2, B, P) and d_c
 * (2, B, H) in, the gradients after the last steps, out, those of h0 and c0; w_rec_t (2, 4H,
 * P) and proj_t (2, P, H) (or NULL) contiguous; writes dz (2, N, 4H) and, with a projection,
 * d_hp (2, N, P); dm: (2, B, H) scratch. */
void elmo_lstm_steps_backward(const float *d_out, float *d_h, float *d_c, int64_t B,
                              const float *w_rec_t, const float *proj_t, const float *c0,
                              const float *acts, const float *cells, const float *tanh_cells,
                              const float *out, const int64_t *sizes, int64_t steps, int64_t N,
                              int64_t H, int64_t P, float *dz, float *d_hp, float *dm,
                              int has_cell_clip, float cell_clip, int has_proj_clip,
                              float proj_clip, int threads) {
    lstm_dir dirs[2];
    for (int d = 0; d < 2; d++) {
        lstm_dir x = lstm_dir_shape(sizes, steps, H, P, has_cell_clip, cell_clip,
                                    proj_t && has_proj_clip, proj_clip);
        x.c0 = c0 + d * B * H;
        x.w_rec_t = w_rec_t + d * 4 * H * P;
        x.proj_t = proj_t ? proj_t + d * P * H : NULL;
        x.acts = (float *)acts + d * N * 4 * H;
        x.cells = (float *)cells + d * N * H;
        x.tanh_cells = (float *)tanh_cells + d * N * H;
        x.out = (float *)out + d * N * P;
        x.d_out = d_out + d * N * P;
        x.d_h = d_h + d * B * P;
        x.d_c = d_c + d * B * H;
        x.dz = dz + d * N * 4 * H;
        x.d_hp = d_hp ? d_hp + d * N * P : NULL;
        x.dm = dm + d * B * H;
        dirs[d] = x;
    }
    lstm_both(dirs, 1, threads);
}

/* A row of w floats replaced by its softmax, exp(x - max) / sum, in place; exp(-inf) is 0. */
#if defined(__AVX512F__)
#include <immintrin.h>

/* exp_f on 16 lanes (the same reduction and polynomial; 2^n applied by scalef). */
static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.0f)), _mm512_set1_ps(-87.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static void softmax_row(float *row, int64_t w) {
    int64_t w16 = w - w % 16;
    __m512 vmax = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < w16; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(row + j));
    float mx = _mm512_reduce_max_ps(vmax);
    for (int64_t j = w16; j < w; j++) mx = row[j] > mx ? row[j] : mx;
    __m512 vmx = _mm512_set1_ps(mx), vsum = _mm512_setzero_ps();
    const __m512 neg_inf = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < w16; j += 16) {
        __m512 v = _mm512_loadu_ps(row + j);
        __mmask16 finite = _mm512_cmp_ps_mask(v, neg_inf, _CMP_NEQ_UQ);
        __m512 e = _mm512_maskz_mov_ps(finite, exp16(_mm512_sub_ps(v, vmx)));
        _mm512_storeu_ps(row + j, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    float sum = _mm512_reduce_add_ps(vsum);
    for (int64_t j = w16; j < w; j++) {
        float e = row[j] == -INFINITY ? 0.0f : exp_f(row[j] - mx);
        row[j] = e;
        sum += e;
    }
    __m512 inv = _mm512_set1_ps(1.0f / sum);
    for (int64_t j = 0; j < w16; j += 16)
        _mm512_storeu_ps(row + j, _mm512_mul_ps(_mm512_loadu_ps(row + j), inv));
    for (int64_t j = w16; j < w; j++) row[j] *= 1.0f / sum;
}
#else
/* The max and the sum are kept in 16 lanes (the row's order within a lane). */
static void softmax_row(float *row, int64_t w) {
    float lane_max[16], lane_sum[16];
    int64_t w16 = w - w % 16;
    for (int k = 0; k < 16; k++) {
        lane_max[k] = -INFINITY;
        lane_sum[k] = 0.0f;
    }
    for (int64_t j = 0; j < w16; j += 16)
        for (int k = 0; k < 16; k++) lane_max[k] = row[j + k] > lane_max[k] ? row[j + k] : lane_max[k];
    for (int64_t j = w16; j < w; j++) lane_max[0] = row[j] > lane_max[0] ? row[j] : lane_max[0];
    float mx = lane_max[0];
    for (int k = 1; k < 16; k++) mx = lane_max[k] > mx ? lane_max[k] : mx;
    for (int64_t j = 0; j < w16; j += 16) {
        for (int k = 0; k < 16; k++) {
            float e = row[j + k] == -INFINITY ? 0.0f : exp_f(row[j + k] - mx);
            row[j + k] = e;
            lane_sum[k] += e;
        }
    }
    for (int64_t j = w16; j < w; j++) {
        float e = row[j] == -INFINITY ? 0.0f : exp_f(row[j] - mx);
        row[j] = e;
        lane_sum[0] += e;
    }
    float sum = 0.0f;
    for (int k = 0; k < 16; k++) sum += lane_sum[k];
    float inv = 1.0f / sum;
    VECTORIZE
    for (int64_t j = 0; j < w; j++) row[j] *= inv;
}
#endif

/* The softmax of each row of an (n, w) row-major matrix, in place, rows split over threads of
 * the OpenMP pool (the sampled softmax's probabilities, elmo_lm/model/softmax.py). */
void elmo_softmax_rows(float *x, int64_t n, int64_t w, int threads) {
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t r = 0; r < n; r++) softmax_row(x + r * w, w);
}

/* The first num_sampled distinct values of draws[0..m) (ids in [0, range_max)), in order of
 * first draw, into ids; seen: range_max zeroed bytes. Returns the draws read to see them
 * (num_tries), or m when there are fewer; *found: the distinct values read (at most
 * num_sampled). The log-uniform sampler's stream, read as TF's unique sampler reads it
 * (elmo_lm/model/softmax.py). */
int64_t elmo_first_distinct(const int64_t *draws, int64_t m, int64_t num_sampled,
                            uint8_t *seen, int64_t *ids, int64_t *found) {
    int64_t n = 0;
    for (int64_t i = 0; i < m; i++) {
        int64_t id = draws[i];
        if (seen[id]) continue;
        seen[id] = 1;
        ids[n++] = id;
        if (n == num_sampled) {
            *found = n;
            return i + 1;
        }
    }
    *found = n;
    return m;
}

/* The distinct rows among entries[0..n) (each in [0, n_rows)), in increasing order, into rows,
 * and each distinct row's sum of its entries' values (rows of width floats, summed in entry
 * order) into sums; slot: n_rows int64 scratch. Returns the number of distinct rows. A sparse
 * gradient's coalesce (elmo_lm/training/gradients.py). */
int64_t elmo_coalesce_rows(const int64_t *entries, const float *values, int64_t n,
                           int64_t width, int64_t n_rows, int64_t *slot, int64_t *rows,
                           float *sums) {
    memset(slot, 0, (size_t)n_rows * sizeof(int64_t));
    for (int64_t i = 0; i < n; i++) slot[entries[i]] = 1;
    int64_t k = 0;
    for (int64_t r = 0; r < n_rows; r++) {
        if (slot[r] == 1) {
            slot[r] = k;
            rows[k++] = r;
        } else {
            slot[r] = -1;
        }
    }
    memset(sums, 0, (size_t)(k * width) * sizeof(float));
    for (int64_t i = 0; i < n; i++) {
        float *dst = sums + slot[entries[i]] * width;
        const float *src = values + i * width;
        VECTORIZE
        for (int64_t j = 0; j < width; j++) dst[j] += src[j];
    }
    return k;
}

/* Adagrad on distinct rows (split over threads): per element, sum += g * g; param -= clr * g / (sqrt(sum) + eps),
 * rounded as torch's Adagrad rounds it (a product, then a sum; no fused multiply-add). */
#if defined(__clang__)
#define NO_CONTRACT _Pragma("clang fp contract(off)")
#define NO_CONTRACT_ATTR
#elif defined(__GNUC__)
#define NO_CONTRACT
#define NO_CONTRACT_ATTR __attribute__((optimize("fp-contract=off")))
#else
#define NO_CONTRACT
#define NO_CONTRACT_ATTR
#endif
NO_CONTRACT_ATTR
void elmo_adagrad_rows(const int64_t *rows, const float *grads, int64_t k, int64_t width,
                       float *state_sum, float *param, float clr, float eps, int threads) {
    NO_CONTRACT
#pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < k; i++) {
        const float *g = grads + i * width;
        float *s = state_sum + rows[i] * width;
        float *p = param + rows[i] * width;
        VECTORIZE
        for (int64_t j = 0; j < width; j++) {
            float sq = g[j] * g[j];
            float sum = s[j] + sq;
            s[j] = sum;
            float std = sqrtf(sum) + eps;
            p[j] = p[j] + (g[j] / std) * -clr;
        }
    }
}
