/* Loops that torch runs as many small operations, in one pass each (elmo_lm/native.py compiles
 * this file on first use with cc -O3 -march=native).
 *
 * The LSTM cell's elementwise work of one step, both directions: elmo_lm/lstm.py calls it
 * between the step's matmuls, which stay in torch. Each torch operation of a step
 * reads and writes its whole (2, rows, 4H) or (2, rows, H) tensor; here each element is read
 * once, and the gates, cell, tanh and output of a unit are computed together.
 *
 * Layout: every tensor is (2, rows, width) float32 with rows contiguous (row stride = width);
 * the *_dir arguments are the distance in floats between direction 0 and direction 1.
 * Gate blocks of a row are i, j, f, o (the weights file's order); bias and forget bias are
 * already in the pre-activations.
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

/* Forward of one step. The gates' pre-activations are a + z: a (2, n, 4H) contiguous, the
 * recurrent product h @ W; z the inputs' part (with the biases), rows of 4H at z_fwd for the
 * forward direction and z_bwd for the backward one. c_prev: the cell before the step. Writes
 * the activated gates to acts, the (clipped) cell, its tanh, and m = o * tanh(cell). */
void elmo_lstm_forward(const float *a, const float *z_fwd, const float *z_bwd, const float *c_prev,
                       int64_t c_prev_dir, float *acts, int64_t acts_dir, float *cells,
                       float *tanh_cells, int64_t cells_dir, float *m, int64_t m_dir, int64_t n,
                       int64_t H, int has_clip, float cell_clip) {
    for (int64_t d = 0; d < 2; d++) {
        for (int64_t r = 0; r < n; r++) {
            const float *z = a + (d * n + r) * 4 * H;
            const float *x = (d ? z_bwd : z_fwd) + r * 4 * H;
            const float *cp = c_prev + d * c_prev_dir + r * H;
            float *g_out = acts + d * acts_dir + r * 4 * H;
            float *c_out = cells + d * cells_dir + r * H;
            float *t_out = tanh_cells + d * cells_dir + r * H;
            float *m_out = m + d * m_dir + r * H;
            VECTORIZE
            for (int64_t k = 0; k < H; k++) {
                float i = sigmoid_f(z[k] + x[k]);
                float j = tanh_f(z[H + k] + x[H + k]);
                float f = sigmoid_f(z[2 * H + k] + x[2 * H + k]);
                float o = sigmoid_f(z[3 * H + k] + x[3 * H + k]);
                float c = f * cp[k] + i * j;
                if (has_clip) c = clip_f(c, cell_clip);
                float tc = tanh_f(c);
                g_out[k] = i;
                g_out[H + k] = j;
                g_out[2 * H + k] = f;
                g_out[3 * H + k] = o;
                c_out[k] = c;
                t_out[k] = tc;
                m_out[k] = o * tc;
            }
        }
    }
}

/* dst = (d_out + d_h) * (|out| < clip) (without the mask when has_clip is 0): the gradient
 * reaching a step's output h, from the layer above and from the next step. */
void elmo_lstm_output_grad(const float *d_out, int64_t d_out_dir, const float *d_h,
                           int64_t d_h_dir, const float *out, int64_t out_dir, float *dst,
                           int64_t dst_dir, int64_t n, int64_t width,
                           int has_clip, float clip) {
    for (int64_t d = 0; d < 2; d++) {
        for (int64_t r = 0; r < n; r++) {
            const float *go = d_out + d * d_out_dir + r * width;
            const float *gh = d_h + d * d_h_dir + r * width;
            const float *h = out + d * out_dir + r * width;
            float *g = dst + d * dst_dir + r * width;
            VECTORIZE
            for (int64_t k = 0; k < width; k++) {
                float v = go[k] + gh[k];
                g[k] = (!has_clip || fabsf(h[k]) < clip) ? v : 0.0f;
            }
        }
    }
}

/* Backward of one step. dm: (2, n, H) contiguous gradient of m = o * tanh(cell). d_c: in, the
 * gradient reaching the cell from the next step; out, the gradient reaching the previous cell.
 * Writes the gate pre-activations' gradient to dz. */
void elmo_lstm_backward(const float *dm, float *d_c, int64_t d_c_dir, const float *acts,
                        int64_t acts_dir, const float *c_prev, int64_t c_prev_dir,
                        const float *cells, const float *tanh_cells, int64_t cells_dir,
                        float *dz, int64_t dz_dir, int64_t n, int64_t H,
                        int has_clip, float cell_clip) {
    for (int64_t d = 0; d < 2; d++) {
        for (int64_t r = 0; r < n; r++) {
            const float *gm = dm + (d * n + r) * H;
            float *gc = d_c + d * d_c_dir + r * H;
            const float *g = acts + d * acts_dir + r * 4 * H;
            const float *cp = c_prev + d * c_prev_dir + r * H;
            const float *c = cells + d * cells_dir + r * H;
            const float *tc = tanh_cells + d * cells_dir + r * H;
            float *out = dz + d * dz_dir + r * 4 * H;
            VECTORIZE
            for (int64_t k = 0; k < H; k++) {
                float i = g[k], j = g[H + k], f = g[2 * H + k], o = g[3 * H + k];
                float t = tc[k];
                float dc = gc[k] + gm[k] * o * (1.0f - t * t);
                if (has_clip && !(fabsf(c[k]) < cell_clip)) dc = 0.0f;
                out[k] = dc * j * i * (1.0f - i);
                out[H + k] = dc * i * (1.0f - j * j);
                out[2 * H + k] = dc * cp[k] * f * (1.0f - f);
                out[3 * H + k] = gm[k] * t * o * (1.0f - o);
                gc[k] = dc * f;
            }
        }
    }
}

/* The first num_sampled distinct values of draws[0..m) (ids in [0, range_max)), in order of
 * first draw, into ids; seen: range_max zeroed bytes. Returns the draws read to see them
 * (num_tries), or m when there are fewer; *found: the distinct values read (at most
 * num_sampled). The log-uniform sampler's stream, read as TF's unique sampler reads it
 * (elmo_lm/softmax.py). */
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
 * gradient's coalesce (elmo_lm/gradients.py). */
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

/* Adagrad on distinct rows: per element, sum += g * g; param -= clr * g / (sqrt(sum) + eps),
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
                       float *state_sum, float *param, float clr, float eps) {
    NO_CONTRACT
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
