/* The simulator's CUBA rules compiled: a feed-forward network of binary spikes, sample by sample.

   sim_native.py builds this file with the system's C compiler and calls `run` on a range of samples;
   it holds the contract. The rules are those of fixed_point.py (update_current, update_voltage,
   decay, shift, wrap_bits), written again here in int32 arithmetic modulo 2**32, which is where
   fixed_point.py wraps. Synaptic input is event-driven: each presynaptic spike adds its weight
   rows; where most presynaptic neurons spiked, the silent ones are subtracted from the input of
   all of them spiking instead (integer sums, so exact). A dense layer is a convolution with one
   position and one tap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define ACT_SHIFT 6
#define MAX_UV (1 << 23)
#define V_LIMIT (MAX_UV - 1)
#define LANES 16

typedef struct {
    int64_t n;                /* neurons, channels-last */
    int64_t n_in;             /* presynaptic neurons; 0: none (an input layer) */
    int64_t channels_in;      /* presynaptic neurons a position (the innermost axis); dense: n_in */
    int64_t row;              /* weights a presynaptic neuron and tap (the layer's channels); dense: n */
    int64_t exp;              /* weight exponent, -31 .. 25: the sum is shifted by it */
    int64_t wrap24;           /* the shifted sum may leave 24 bits and wraps there (a convolution) */
    int64_t exact32;          /* u and v provably never wrap or saturate, and decay exactly in float32 */
    int64_t keep_u, keep_v;   /* decay factors: 4096 - (du + 1) and 4096 - dv */
    int64_t threshold;        /* vth << 6 */
    int64_t bias_stride;      /* 0: one bias for all samples; n: one a sample */
    const int32_t *bias;      /* effective bias, or NULL */
    const int32_t *weight;    /* [tap][presynaptic channel][row], and 16 values of room */
    const int32_t *ones;      /* n: the sum with every presynaptic neuron spiking */
    const int64_t *tap_start; /* a presynaptic position's first tap (positions + 1) */
    const int64_t *taps;      /* (output offset, weight offset) a tap */
    const int32_t *position;  /* a presynaptic neuron's position (its index over channels_in); NULL: 0 */
    const int32_t *fan_out;   /* n_in: nonzero synapses a presynaptic spike is delivered over */
    const uint8_t *resets;    /* steps: u and v zeroed before the step */
    uint8_t *spikes;          /* (batch, steps, n) spikes out, or NULL */
    int64_t events, wraps, saturations, spiked; /* counted over the call */
} Layer;

/* 16 lanes (GCC and Clang vector extensions: the widest SIMD the target has), and the same in
   memory at any alignment. */
typedef int32_t i32x16 __attribute__((vector_size(64)));
typedef uint32_t u32x16 __attribute__((vector_size(64)));
typedef float f32x16 __attribute__((vector_size(64)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));
typedef int32_t i32x16_mem __attribute__((vector_size(64), aligned(4)));
typedef uint8_t u8x16_mem __attribute__((vector_size(16), aligned(1)));
#define LOAD(p) (*(const i32x16_mem *)(p))
#define STORE(p, x) (*(i32x16_mem *)(p) = (x))

/* x * factor / 4096 toward zero (fixed_point.decay), for |x| < 2**31 and factor <= 4096: with
   |x| = hi * 4096 + lo, |x| * factor >> 12 is hi * factor + (lo * factor >> 12), each part
   within 32 bits. */
static inline i32x16 decay(i32x16 x, uint32_t factor) {
    const i32x16 negative = x < 0;
    const u32x16 magnitude = (u32x16)((x ^ negative) - negative);
    const u32x16 kept = (magnitude >> 12) * factor + (((magnitude & 4095) * factor) >> 12);
    return ((i32x16)kept ^ negative) - negative;
}

/* The same where |x| times factor's odd part is below 2**24: float32 holds the product exactly,
   and its conversion back truncates toward zero. */
static inline i32x16 decay32(i32x16 x, float factor) {
    return __builtin_convertvector(__builtin_convertvector(x, f32x16) * factor, i32x16);
}

typedef struct {
    i32x16 wraps, saturations, spiked;
} Tally;

/* A layer's constants, held by value so that stores through byte pointers need not reload them. */
typedef struct {
    int32_t exp, wrap24, threshold;
    uint32_t keep_u, keep_v;
    float cu, cv;
    const int32_t *ones;
} Rule;

enum { NO_INPUT, SUM, SILENT_SUM };

/* One step of 16 neurons from index i: fixed_point.update_current and update_voltage, the
   threshold and the reset. `input` says what acc holds: nothing (then u is and stays 0: only
   input moves it), the summed weights, or the silent inputs' summed weights; acc is cleared. */
static inline __attribute__((always_inline)) void lanes(const Rule r, int64_t i, int32_t *restrict u,
                                                        int32_t *restrict v, int32_t *restrict acc,
                                                        const int input, const int exact32,
                                                        const int32_t *restrict bias, uint8_t *restrict s,
                                                        int32_t *restrict own, Tally *restrict tally) {
    i32x16 tu = {0};
    if (input != NO_INPUT) {
        u32x16 sum = (u32x16)LOAD(acc + i);
        if (input == SILENT_SUM) sum = (u32x16)LOAD(r.ones + i) - sum;
        STORE(acc + i, (i32x16){0});
        u32x16 a = r.exp >= 0 ? sum << r.exp : (u32x16)((i32x16)sum >> -r.exp);
        if (r.wrap24) a = ((a + (uint32_t)MAX_UV) & (uint32_t)(2 * MAX_UV - 1)) - (uint32_t)MAX_UV;
        const i32x16 kept = exact32 ? decay32(LOAD(u + i), r.cu) : decay(LOAD(u + i), r.keep_u);
        tu = (i32x16)((u32x16)kept + (a << ACT_SHIFT));
        if (!exact32) {
            const i32x16 high = tu > MAX_UV, low = tu <= -MAX_UV;
            tu += (low & (2 * MAX_UV)) - (high & (2 * MAX_UV));
            tally->wraps -= high | low;
        }
        STORE(u + i, tu);
    }
    const i32x16 kept = exact32 ? decay32(LOAD(v + i), r.cv) : decay(LOAD(v + i), r.keep_v);
    u32x16 bits = (u32x16)kept + (u32x16)tu;
    if (bias) bits += (u32x16)LOAD(bias + i);
    i32x16 tv = (i32x16)bits;
    if (!exact32) {
        const i32x16 above = tv > V_LIMIT, below = tv < -V_LIMIT;
        tally->saturations -= above | below;
        tv = (tv & ~(above | below)) | (above & V_LIMIT) | (below & -V_LIMIT);
    }
    const i32x16 fired = tv > r.threshold;
    STORE(v + i, tv & ~fired);
    *(u8x16_mem *)(s + i) = __builtin_convertvector(fired & 1, u8x16);
    if (own) STORE(own + i, LOAD(own + i) - fired);
    tally->spiked -= fired;
}

static inline int64_t total(i32x16 x) {
    int64_t sum = 0;
    for (int k = 0; k < LANES; k++) sum += x[k];
    return sum;
}

/* One step of a layer's neurons (see `lanes`); the last n % 16 go through zero-padded copies. */
static inline __attribute__((always_inline)) void step(Layer *L, int32_t *u, int32_t *v, int32_t *acc,
                                                       const int input, const int exact32, const int32_t *bias,
                                                       uint8_t *s, int32_t *own) {
    const int64_t n = L->n, body = n - n % LANES;
    Rule r = {(int32_t)L->exp,
              (int32_t)L->wrap24,
              (int32_t)L->threshold,
              (uint32_t)L->keep_u,
              (uint32_t)L->keep_v,
              (float)L->keep_u / 4096.0f,
              (float)L->keep_v / 4096.0f,
              L->ones};
    Tally tally = {{0}, {0}, {0}};
    for (int64_t i = 0; i < body; i += LANES) lanes(r, i, u, v, acc, input, exact32, bias, s, own, &tally);
    if (body < n) { /* zeros neither wrap, saturate nor spike */
        const int64_t rest = n - body;
        const size_t bytes = sizeof(int32_t) * (size_t)rest;
        int32_t tu[LANES] = {0}, tv[LANES] = {0}, ta[LANES] = {0}, tb[LANES] = {0}, to[LANES] = {0};
        int32_t ones[LANES] = {0};
        uint8_t ts[LANES];
        memcpy(tu, u + body, bytes), memcpy(tv, v + body, bytes);
        if (input != NO_INPUT) memcpy(ta, acc + body, bytes), memcpy(ones, r.ones + body, bytes);
        if (bias) memcpy(tb, bias + body, bytes);
        if (own) memcpy(to, own + body, bytes);
        r.ones = ones;
        lanes(r, 0, tu, tv, ta, input, exact32, bias ? tb : NULL, ts, own ? to : NULL, &tally);
        memcpy(u + body, tu, bytes), memcpy(v + body, tv, bytes), memcpy(s + body, ts, (size_t)rest);
        if (input != NO_INPUT) memcpy(acc + body, ta, bytes);
        if (own) memcpy(own + body, to, bytes);
    }
    L->wraps += total(tally.wraps);
    L->saturations += total(tally.saturations);
    L->spiked += total(tally.spiked);
}

static void neurons(Layer *L, int32_t *u, int32_t *v, int32_t *acc, int input, const int32_t *bias, uint8_t *s,
                    int32_t *own) {
#define STEP(INPUT)                                                  \
    (L->exact32 ? step(L, u, v, acc, INPUT, 1, bias, s, own) : step(L, u, v, acc, INPUT, 0, bias, s, own))
    if (input == NO_INPUT) STEP(NO_INPUT);
    else if (input == SUM) STEP(SUM);
    else STEP(SILENT_SUM);
#undef STEP
}

/* The indices i < n where s[i] differs from `flip` (s holds 0 and 1), eight bytes at a time. */
static int64_t events(const uint8_t *restrict s, int64_t n, int flip, int32_t *restrict idx) {
    const uint64_t mask = flip ? UINT64_C(0x0101010101010101) : 0;
    int64_t m = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, s + i, 8);
        for (word ^= mask; word; word &= word - 1) idx[m++] = (int32_t)(i + (__builtin_ctzll(word) >> 3));
    }
    for (; i < n; i++)
        if (s[i] != flip) idx[m++] = (int32_t)i;
    return m;
}

/* The synaptic events of the spikes in `pre`. */
static int64_t delivered(const Layer *L, const uint8_t *restrict pre) {
    int64_t sum = 0;
    for (int64_t i = 0; i < L->n_in; i++) sum += pre[i] ? L->fan_out[i] : 0;
    return sum;
}

/* Add into acc the weight rows of the presynaptic spikes in `pre` (of which `count` are 1), or of
   the silent ones where most spiked, and count the synaptic events; returns what acc then holds.
   The rows are summed 16 at a time in registers over the events of one position, then added to
   its outputs; acc and the weights have 16 values of room past their ends, the lanes past a row
   masked out. */
static int accumulate(Layer *L, const uint8_t *pre, int64_t count, int64_t all_fan_out, int32_t *acc,
                      int32_t *idx) {
    const int flip = 2 * count > L->n_in;
    const int64_t m = events(pre, L->n_in, flip, idx), ci = L->channels_in, row = L->row;
    const int32_t *position = L->position;
    i32x16 lane;
    for (int k = 0; k < LANES; k++) lane[k] = k;
    int64_t fan = 0;
    for (int64_t q = 0; q < m; q++) fan += L->fan_out[idx[q]];
    L->events += flip ? all_fan_out - fan : fan;
    for (int64_t e = 0; e < m;) { /* the events of one position share its taps */
        const int64_t p = position ? position[idx[e]] : 0, first = e;
        while (e < m && (position ? position[idx[e]] : 0) == p) e++;
        for (int64_t j = L->tap_start[p]; j < L->tap_start[p + 1]; j++) {
            int32_t *d = acc + L->taps[2 * j];
            const int32_t *tap = L->weight + L->taps[2 * j + 1] - p * ci * row;
            for (int64_t o = 0; o < row; o += LANES) {
                i32x16 sum = {0};
                for (int64_t q = first; q < e; q++) sum += LOAD(tap + (int64_t)idx[q] * row + o);
                STORE(d + o, LOAD(d + o) + (sum & (lane < (int32_t)(row - o))));
            }
        }
    }
    return flip ? SILENT_SUM : SUM;
}

/* Run samples [b0, b1) of a batch for `steps` steps through `nl` layers. `input` (batch, steps,
   n_in of layer 0) holds binary spikes into layer 0, or is NULL. The last layer's spike counts
   a sample (batch, n) add into `out_counts`; its v after the last step goes to `out_v` (batch, n),
   `spike_v` where it spiked on that step. Returns 0, or -1 where memory ran out. */
int run(Layer *layers, int64_t nl, int64_t b0, int64_t b1, int64_t steps, const uint8_t *input, int32_t *out_counts,
        int32_t *out_v, int32_t spike_v) {
    int64_t widest = 1, total = 0;
    for (int64_t k = 0; k < nl; k++) {
        widest = layers[k].n_in > widest ? layers[k].n_in : widest;
        total += layers[k].n + LANES; /* room past each array: see accumulate */
    }
    int32_t *state = malloc(sizeof(int32_t) * 3 * (size_t)total), *idx = malloc(sizeof(int32_t) * (size_t)widest);
    uint8_t *scratch = malloc((size_t)total);
    int64_t *last_count = malloc(sizeof(int64_t) * (size_t)nl), *all_fan_out = malloc(sizeof(int64_t) * (size_t)nl);
    int32_t **u = malloc(sizeof(int32_t *) * 3 * (size_t)nl);
    uint8_t **own_s = malloc(sizeof(uint8_t *) * (size_t)nl);
    int ok = state && idx && scratch && last_count && all_fan_out && u && own_s;
    if (ok) {
        int32_t **v = u + nl, **acc = u + 2 * nl;
        for (int64_t k = 0, at = 0; k < nl; at += layers[k].n + LANES, k++) {
            u[k] = state + at, v[k] = state + total + at, acc[k] = state + 2 * total + at, own_s[k] = scratch + at;
            all_fan_out[k] = 0;
            for (int64_t i = 0; i < layers[k].n_in; i++) all_fan_out[k] += layers[k].fan_out[i];
        }
        const Layer *out = &layers[nl - 1];
        for (int64_t b = b0; b < b1; b++) {
            memset(state, 0, sizeof(int32_t) * 3 * (size_t)total);
            for (int64_t t = 0; t < steps; t++) {
                /* last layer first: each layer reads its input's spikes of step t - 1 before they change */
                for (int64_t k = nl - 1; k >= 0; k--) {
                    Layer *L = &layers[k];
                    const int64_t n = L->n;
                    uint8_t *s = L->spikes ? L->spikes + (b * steps + t) * n : own_s[k];
                    const Layer *P = k ? &layers[k - 1] : NULL;
                    const uint8_t *pre = NULL;
                    if (t >= 1) pre = P ? (P->spikes ? P->spikes + (b * steps + t - 1) * P->n : own_s[k - 1])
                                        : input ? input + (b * steps + t - 1) * L->n_in
                                                : NULL;
                    if (L->resets[t]) {
                        memset(u[k], 0, sizeof(int32_t) * (size_t)n);
                        memset(v[k], 0, sizeof(int32_t) * (size_t)n);
                    }
                    int what = NO_INPUT;
                    if (L->n_in && pre) {
                        int64_t count = 0;
                        if (P) count = last_count[k - 1];
                        else
                            for (int64_t i = 0; i < L->n_in; i++) count += pre[i];
                        what = accumulate(L, pre, count, all_fan_out[k], acc[k], idx);
                    }
                    const int64_t before = L->spiked;
                    neurons(L, u[k], v[k], acc[k], what, L->bias ? L->bias + b * L->bias_stride : NULL, s,
                            k == nl - 1 ? out_counts + b * n : NULL);
                    last_count[k] = L->spiked - before;
                }
            }
            for (int64_t k = 0; k < nl && steps; k++) { /* the last step's spikes, delivered to no step */
                const Layer *P = k ? &layers[k - 1] : NULL;
                const int64_t last = b * steps + steps - 1;
                const uint8_t *pre = P ? (P->spikes ? P->spikes + last * P->n : own_s[k - 1])
                                       : input ? input + last * layers[k].n_in
                                               : NULL;
                if (layers[k].n_in && pre) layers[k].events += delivered(&layers[k], pre);
            }
            const uint8_t *s = out->spikes ? out->spikes + (b * steps + steps - 1) * out->n : own_s[nl - 1];
            for (int64_t i = 0; i < out->n; i++) out_v[b * out->n + i] = steps && s[i] ? spike_v : v[nl - 1][i];
        }
    }
    free(state), free(idx), free(scratch), free(last_count), free(all_fan_out), free(u), free(own_s);
    return ok ? 0 : -1;
}
