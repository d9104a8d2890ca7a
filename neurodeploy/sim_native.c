/* The simulator's CUBA rules compiled: a feed-forward network of binary spikes, sample by sample.

   sim_native.py builds this file with the system's C compiler and calls `run` from a thread a core;
   it holds the contract. The rules are those of fixed_point.py (update_current, update_voltage,
   decay, shift, wrap_bits), written again here in int32 arithmetic modulo 2**32, which is where
   fixed_point.py wraps; every sum is exact. A layer's spikes are held as bits. A convolution whose
   weights fit bytes is, where the CPU has AMX tiles and the system grants them, a product of its
   inputs as bytes and its weights (tile_sums). Other synaptic input is event-driven: each
   presynaptic spike adds its weight rows; where most presynaptic neurons spiked, the silent ones'
   rows are taken from the sum of all of them instead. */
#define _GNU_SOURCE /* syscall */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__)
#include <immintrin.h>
#endif
#if defined(__AMX_INT8__) && defined(__AVX512BW__) && defined(__AVX512VBMI2__) && defined(__linux__)
#define TILES 1 /* AMX: a convolution's sums as products of tiles of bytes */
#include <sys/syscall.h>
#include <unistd.h>
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#else
#define TILES 0
#endif

#define ACT_SHIFT 6
#define MAX_UV (1 << 23)
#define V_LIMIT (MAX_UV - 1)
#define LANES 16
#define TILE_GROUP 256 /* output positions whose inputs are laid out before their tiles are multiplied */

enum { INPUT_LAYER, DENSE, CONV };

typedef struct {
    int64_t kind;           /* INPUT_LAYER (no synapses), DENSE or CONV */
    int64_t n;              /* neurons, channels-last */
    int64_t n_in;           /* presynaptic neurons */
    int64_t row;            /* the layer's channels (dense: n) */
    int64_t channels_in;    /* conv: presynaptic channels */
    int64_t narrow;         /* conv: weights, sums and `ones` in int16 (every sum provably fits) */
    int64_t kernel_taps;    /* conv: kH * kW */
    int64_t stride;         /* conv: weights a presynaptic neuron and tap, the row padded (where narrow, to
                               whole 32-lane chunks, as the sums are held before they are compacted) */
    int64_t exp;            /* weight exponent, -31 .. 25: the sum is shifted by it */
    int64_t wrap24;         /* the shifted sum may leave 24 bits and wraps there (a convolution) */
    int64_t exact32;        /* u and v provably never wrap or saturate, and decay exactly in float32 */
    int64_t keep_u, keep_v; /* decay factors: 4096 - (du + 1) and 4096 - dv */
    int64_t threshold;      /* vth << 6 */
    int64_t bias_exp;       /* with bias_mant: the bias exponent */
    int64_t bias_channels;  /* with bias_mant: the channels of a (C, H, W) layer, else 1 */
    int64_t k_tiles, n_tiles; /* with tiles: 64-byte columns of inputs, columns of tile_width outputs */
    int64_t tile_width;     /* with tiles: outputs a tile of sums holds, at most 16 */
    int64_t runs, run_length; /* with tiles: an output's inputs, as runs of bytes of the image (run r to column
                                 r * run_length) */
    int64_t image_bytes;    /* with tiles: the input as bytes (H + 2 pad, W + 2 pad, C), its border zero */
    int64_t image_start, image_row, in_rows, row_bits; /* with tiles: where the input's first row starts in the
                                                          image, the image's row, the input's rows and bits a row */
    const int32_t *bias;      /* n: the effective bias, the same for every sample, or NULL */
    const void *weight;       /* dense: (n_in, n); conv: (kH * kW, channels_in, stride); 32 values of room */
    const void *ones;         /* n: the sum with every input spiking */
    const int32_t *tap_start; /* conv: an input position's first tap (positions + 1) */
    const int32_t *taps;      /* conv: (output offset, weight offset) a tap, in rows of `stride` */
    const int32_t *fan_out;   /* n_in: nonzero synapses a presynaptic spike is delivered over */
    const int16_t *subsets;   /* narrow conv of at most 4 input channels, or NULL: (kernel_taps + 1, 16, stride) the sum of
                                 the weights of each subset of the channels (bit c: channel c) at each tap, then
                                 zeros */
    const int32_t *reads;     /* with subsets: (output positions, taps) (first bit of the input position, offset
                                 of the tap's sums; of the zeros where the tap falls in the padding) */
    const int8_t *tiles;      /* conv of weights within int8 where the CPU multiplies tiles, or NULL: the weights
                                 (taps * channels_in, row) zero-padded to (64 k_tiles, tile_width n_tiles), in
                                 tiles (k_tiles, n_tiles, 16, tile_width, 4) of (K / 4, N, 4) */
    const int32_t *image_reads; /* with tiles: (output positions, runs) where each run of an output's inputs starts
                                   in the image */
    const int64_t *bias_mant; /* (batch, n) bias mantissas a sample in the netlist's order, or NULL (then `bias`,
                                 the effective bias of every sample, or none) */
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
typedef int16_t i16x32 __attribute__((vector_size(64)));
typedef int16_t i16x16 __attribute__((vector_size(32)));
typedef int16_t i16x32_mem __attribute__((vector_size(64), aligned(2)));
typedef int16_t i16x16_mem __attribute__((vector_size(32), aligned(2)));
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

static inline i32x16 all_lanes(void) { return (i32x16){0} == 0; }

/* The lanes of a row's last chunk that hold its values. */
static inline i32x16 tail_of(int64_t row) {
    i32x16 lane;
    for (int k = 0; k < LANES; k++) lane[k] = k;
    return lane < (int32_t)(row - (row - 1) / LANES * LANES);
}

/* 16 spikes into the records, past the caches where the target has streaming stores and the place
   is aligned: the records are not read again here (run fences the stores before it returns). */
static inline void record(uint8_t *s, u8x16 spikes) {
#if defined(__SSE2__)
    if (((uintptr_t)s & 15) == 0) {
        _mm_stream_si128((__m128i *)s, (__m128i)spikes);
        return;
    }
#endif
    *(u8x16_mem *)s = spikes;
}

/* Bit k set where lane k is. */
static inline uint16_t bitmask(i32x16 x) {
#if defined(__AVX512F__)
    return (uint16_t)_mm512_test_epi32_mask((__m512i)x, (__m512i)x);
#else
    uint16_t mask = 0;
    for (int k = 0; k < LANES; k++) mask |= (uint16_t)((x[k] != 0) << k);
    return mask;
#endif
}

typedef struct {
    i32x16 wraps, saturations, spiked;
} Tally;

/* A layer's constants, held by value so that stores through byte pointers need not reload them. */
typedef struct {
    int32_t exp, wrap24, threshold;
    uint32_t keep_u, keep_v;
    float cu, cv;
    const void *ones;
    int clear; /* acc is cleared after it is read (else the next step's input overwrites it whole) */
} Rule;

/* A layer's state in one sample: u, v and the synaptic input being summed (16 values of room
   each), and the bits of which neurons spiked on the last step. */
typedef struct {
    int32_t *u, *v, *acc;
    uint8_t *bits;
} State;

enum { NO_INPUT, SUM, SILENT_SUM, WHOLE = 4 }; /* WHOLE: with SUM, every sum was written, not added to */

/* One step of 16 neurons from index i: fixed_point.update_current and update_voltage, the
   threshold and the reset. `input` says what acc holds: nothing (then u is and stays 0: only
   input moves it), the summed weights, or the silent inputs' summed weights (int16 where
   `narrow`); acc is cleared.
   The spikes go to `bits` (16 from bit i) and to `s` as bytes where not NULL. `valid` marks the
   lanes that are neurons. */
static inline __attribute__((always_inline)) void lanes(const Rule r, int64_t i, int32_t *restrict u,
                                                        int32_t *restrict v, int32_t *restrict acc,
                                                        const int input, const int exact32, const int narrow,
                                                        const int32_t *restrict bias, uint8_t *restrict s,
                                                        uint8_t *restrict bits, int32_t *restrict own,
                                                        Tally *restrict tally, i32x16 valid) {
    i32x16 tu = {0};
    if (input != NO_INPUT) {
        u32x16 sum;
        if (narrow) {
            i16x16 held = *(const i16x16_mem *)((const int16_t *)acc + i);
            if (input == SILENT_SUM) held = *(const i16x16_mem *)((const int16_t *)r.ones + i) - held;
            sum = (u32x16)__builtin_convertvector(held, i32x16);
            if (r.clear) *(i16x16_mem *)((int16_t *)acc + i) = (i16x16){0};
        } else {
            sum = (u32x16)LOAD(acc + i);
            if (input == SILENT_SUM) sum = (u32x16)LOAD((const int32_t *)r.ones + i) - sum;
            if (r.clear) STORE(acc + i, (i32x16){0});
        }
        u32x16 a = r.exp >= 0 ? sum << r.exp : (u32x16)((i32x16)sum >> -r.exp);
        if (r.wrap24) a = ((a + (uint32_t)MAX_UV) & (uint32_t)(2 * MAX_UV - 1)) - (uint32_t)MAX_UV;
        const i32x16 kept = !r.keep_u ? (i32x16){0} : exact32 ? decay32(LOAD(u + i), r.cu) : decay(LOAD(u + i), r.keep_u);
        tu = (i32x16)((u32x16)kept + (a << ACT_SHIFT));
        if (!exact32) {
            const i32x16 high = tu > MAX_UV, low = tu <= -MAX_UV;
            tu += (low & (2 * MAX_UV)) - (high & (2 * MAX_UV));
            tally->wraps -= high | low;
        }
        if (r.keep_u) STORE(u + i, tu); /* else no step reads it */
    }
    const i32x16 kept = exact32 ? decay32(LOAD(v + i), r.cv) : decay(LOAD(v + i), r.keep_v);
    u32x16 sum = (u32x16)kept + (u32x16)tu;
    if (bias) sum += (u32x16)LOAD(bias + i);
    i32x16 tv = (i32x16)sum;
    if (!exact32) {
        const i32x16 above = tv > V_LIMIT, below = tv < -V_LIMIT;
        tally->saturations -= above | below;
        tv = (tv & ~(above | below)) | (above & V_LIMIT) | (below & -V_LIMIT);
    }
    const i32x16 fired = (tv > r.threshold) & valid;
    STORE(v + i, tv & ~fired);
    if (s) record(s + i, __builtin_convertvector(fired & 1, u8x16));
    const uint16_t mask = bitmask(fired);
    memcpy(bits + i / 8, &mask, 2);
    if (own) STORE(own + i, LOAD(own + i) - fired);
    tally->spiked -= fired;
}

static inline int64_t total(i32x16 x) {
    int64_t sum = 0;
    for (int k = 0; k < LANES; k++) sum += x[k];
    return sum;
}

/* One step of a layer's neurons (see `lanes`); the last n % 16 go through zero-padded copies. */
static inline __attribute__((always_inline)) void step(Layer *L, State *st, const int input, const int whole,
                                                       const int exact32, const int narrow, const int32_t *bias,
                                                       uint8_t *s, int32_t *own) {
    const int64_t n = L->n, body = n - n % LANES;
    Rule r = {(int32_t)L->exp,
              (int32_t)L->wrap24,
              (int32_t)L->threshold,
              (uint32_t)L->keep_u,
              (uint32_t)L->keep_v,
              (float)L->keep_u / 4096.0f,
              (float)L->keep_v / 4096.0f,
              L->ones,
              !whole};
    int32_t *u = st->u, *v = st->v, *acc = st->acc;
    Tally tally = {{0}, {0}, {0}};
    i32x16 index;
    for (int k = 0; k < LANES; k++) index[k] = k;
    for (int64_t i = 0; i < body; i += LANES)
        lanes(r, i, u, v, acc, input, exact32, narrow, bias, s, st->bits, own, &tally, all_lanes());
    if (body < n) { /* zeros neither wrap, saturate nor spike */
        const int64_t rest = n - body;
        const size_t bytes = sizeof(int32_t) * (size_t)rest;
        int32_t tu[LANES] = {0}, tv[LANES] = {0}, ta[LANES] = {0}, tb[LANES] = {0}, to[LANES] = {0};
        int32_t ones[LANES] = {0};
        uint8_t ts[LANES];
        const int64_t width = narrow ? 2 : 4; /* bytes of a value of acc and ones */
        int32_t *acc_rest = (int32_t *)((uint8_t *)acc + width * body);
        memcpy(tu, u + body, bytes), memcpy(tv, v + body, bytes);
        if (input != NO_INPUT) memcpy(ta, acc_rest, (size_t)(width * rest));
        if (input == SILENT_SUM) memcpy(ones, (const uint8_t *)r.ones + width * body, (size_t)(width * rest));
        if (bias) memcpy(tb, bias + body, bytes);
        if (own) memcpy(to, own + body, bytes);
        r.ones = ones;
        lanes(r, 0, tu, tv, ta, input, exact32, narrow, bias ? tb : NULL, ts, st->bits + body / 8, own ? to : NULL, &tally,
              index < (int32_t)rest);
        memcpy(u + body, tu, bytes), memcpy(v + body, tv, bytes);
        if (s) memcpy(s + body, ts, (size_t)rest);
        if (input != NO_INPUT) memcpy(acc_rest, ta, (size_t)(width * rest));
        if (own) memcpy(own + body, to, bytes);
    }
    L->wraps += total(tally.wraps);
    L->saturations += total(tally.saturations);
    L->spiked += total(tally.spiked);
}

static void neurons(Layer *L, State *st, int input, const int32_t *bias, uint8_t *s, int32_t *own) {
    const int whole = input & WHOLE;
    input &= ~WHOLE;
#define KIND(INPUT, EXACT)                                                                           \
    (L->narrow ? step(L, st, INPUT, whole, EXACT, 1, bias, s, own) : step(L, st, INPUT, whole, EXACT, 0, bias, s, own))
#define STEP(INPUT) (L->exact32 ? KIND(INPUT, 1) : KIND(INPUT, 0))
    if (input == NO_INPUT) STEP(NO_INPUT);
    else if (input == SUM) STEP(SUM);
    else STEP(SILENT_SUM);
#undef STEP
#undef KIND
}

static inline int64_t ones_in(const uint8_t *bits, int64_t n) {
    int64_t count = 0;
    for (int64_t i = 0; i < n / 8; i++) count += __builtin_popcount(bits[i]);
    for (int64_t i = n - n % 8; i < n; i++) count += (bits[i / 8] >> (i % 8)) & 1;
    return count;
}

/* x plus, in the lanes whose bit of mask is set, y (`lane`: each lane's index). */
static inline i32x16 add_where(i32x16 x, uint16_t mask, i32x16 y, i32x16 lane) {
#if defined(__AVX512F__)
    (void)lane;
    return (i32x16)_mm512_mask_add_epi32((__m512i)x, mask, (__m512i)x, (__m512i)y);
#else
    return x + (y & -((((i32x16){0} + mask) >> lane) & 1));
#endif
}

/* Append to idx, from position m, base plus the index of each set bit of mask; returns the new end
   (idx has room for 16 past it). */
static inline int64_t append(int32_t *idx, int64_t m, uint16_t mask, int64_t base) {
#if defined(__AVX512F__)
    const __m512i index = _mm512_add_epi32(_mm512_set1_epi32((int)base),
                                           _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
    _mm512_storeu_si512(idx + m, _mm512_maskz_compress_epi32(mask, index));
    return m + __builtin_popcount(mask);
#else
    for (unsigned word = mask; word; word &= word - 1) idx[m++] = (int32_t)(base + __builtin_ctz(word));
    return m;
#endif
}

typedef int64_t i64x16 __attribute__((vector_size(128)));

/* The synaptic events of a layer's input spikes over `steps` steps (their bits `stride` bytes
   apart): each spike is delivered over its neuron's nonzero synapses (fan_out). */
static int64_t delivered(const Layer *L, const uint8_t *bits, int64_t steps, int64_t stride) {
    const int64_t n_in = L->n_in;
    i32x16 lane, one = {0};
    i64x16 fan = {0};
    for (int k = 0; k < LANES; k++) lane[k] = k, one[k] = 1;
    int64_t i = 0, rest = 0;
    for (; i + LANES <= n_in; i += LANES) {
        i32x16 count = {0};
        for (int64_t t = 0; t < steps; t++) {
            uint16_t mask;
            memcpy(&mask, bits + t * stride + i / 8, 2);
            count = add_where(count, mask, one, lane);
        }
        fan += __builtin_convertvector(count, i64x16) * __builtin_convertvector(LOAD(L->fan_out + i), i64x16);
    }
    for (; i < n_in; i++)
        for (int64_t t = 0; t < steps; t++) rest += ((bits[t * stride + i / 8] >> (i % 8)) & 1) * (int64_t)L->fan_out[i];
    for (int k = 0; k < LANES; k++) rest += fan[k];
    return rest;
}

/* The indices of the n_in inputs whose bit is set, or where most are set, of those whose bit is
   clear (returns which: SUM or SILENT_SUM), into idx; m takes their number. */
static int events(const Layer *L, const uint8_t *bits, int32_t *idx, int64_t *m) {
    const int64_t n_in = L->n_in;
    const int flip = 2 * ones_in(bits, n_in) > n_in;
    int64_t i = 0, count = 0;
    for (; i + LANES <= n_in; i += LANES) {
        uint16_t mask;
        memcpy(&mask, bits + i / 8, 2);
        count = append(idx, count, flip ? (uint16_t)~mask : mask, i);
    }
    for (; i < n_in; i++)
        if ((int)((bits[i / 8] >> (i % 8)) & 1) != flip) idx[count++] = (int32_t)i;
    *m = count;
    return flip ? SILENT_SUM : SUM;
}

/* Sum the rows `w + idx[q] * row` for q < m into d, `chunks` chunks of each (16 int32 or 32 int16
   lanes); the last chunk's lanes past the row masked out by `tail`. */
#define ADD_ROWS(NAME, T, V, V_MEM)                                                                          \
    static inline __attribute__((always_inline)) void NAME(T *d, const T *w, const int32_t *idx, int64_t m, \
                                                           int64_t row, const int64_t chunks, V tail) {      \
        const int64_t lanes = (int64_t)(sizeof(V) / sizeof(T));                                              \
        V sum[4] = {{0}, {0}, {0}, {0}};                                                                     \
        for (int64_t q = 0; q < m; q++) {                                                                    \
            const T *line = w + (int64_t)idx[q] * row;                                                       \
            for (int64_t c = 0; c < chunks; c++) sum[c] += *(const V_MEM *)(line + c * lanes);               \
        }                                                                                                    \
        for (int64_t c = 0; c < chunks; c++)                                                                 \
            *(V_MEM *)(d + c * lanes) += c == chunks - 1 ? sum[c] & tail : sum[c];                           \
    }
ADD_ROWS(add_rows, int32_t, i32x16, i32x16_mem)

/* A dense layer's input from its input's bits (see `events`). */
static int dense_input(const Layer *L, const uint8_t *bits, int32_t *acc, int32_t *idx) {
    int64_t m;
    const int what = events(L, bits, idx, &m), row = (int)L->row;
    for (int64_t o = 0; o < row; o += 4 * LANES) {
        const int64_t chunks = (row - o + LANES - 1) / LANES < 4 ? (row - o + LANES - 1) / LANES : 4;
        add_rows(acc + o, (const int32_t *)L->weight + o, idx, m, row, chunks,
                 o + chunks * LANES >= row ? tail_of(row) : all_lanes());
    }
    return what;
}

/* Bits [at, at + width) of `bits`, width <= 56 (a step's bits have 8 bytes of room past their end). */
static inline uint64_t field(const uint8_t *bits, int64_t at, int64_t width) {
    uint64_t word;
    memcpy(&word, bits + at / 8, 8);
    return (word >> (at % 8)) & ((1ull << width) - 1);
}

/* d += the sum of the rows `w + r[0..3]` (chunks of 16 int32 or 32 int16 lanes; the last chunk's
   lanes past the row masked out by `tail`). */
#define ADD_FOUR(NAME, T, V, V_MEM)                                                                          \
    static inline __attribute__((always_inline)) void NAME(T *d, const T *w, const int64_t *r,             \
                                                           const int64_t chunks, V tail) {                  \
        const int64_t lanes = (int64_t)(sizeof(V) / sizeof(T));                                              \
        for (int64_t c = 0; c < chunks; c++) {                                                               \
            const T *at = w + c * lanes;                                                                     \
            const V sum = (*(const V_MEM *)(at + r[0]) + *(const V_MEM *)(at + r[1])) +                      \
                          (*(const V_MEM *)(at + r[2]) + *(const V_MEM *)(at + r[3]));                       \
            *(V_MEM *)(d + c * lanes) += c == chunks - 1 ? sum & tail : sum;                                 \
        }                                                                                                    \
    }
ADD_FOUR(add_four, int32_t, i32x16, i32x16_mem)
ADD_FOUR(add_four16, int16_t, i16x32, i16x32_mem)

/* A convolution's input from its input's bits, input position by input position: the channels of
   a position whose bit differs from `flip` are taken four at a time (a missing one reads each tap's
   zero row, channel ci), and their weight rows, summed in registers, are added at every tap the
   position reaches; in int32 or, where `narrow`, int16. */
#define CONV_SUMS(NAME, T, V, ADD)                                                                            \
    static inline __attribute__((always_inline)) void NAME(const Layer *L, const uint8_t *bits, int flip,    \
                                                              T *acc, const int64_t chunks, V tail) {          \
        const int64_t ci = L->channels_in, stride = L->stride, positions = L->n_in / ci;                       \
        const T *weight = (const T *)L->weight;                                                                \
        for (int64_t p = 0; p < positions; p++) {                                                              \
            const int32_t *first = L->taps + 2 * L->tap_start[p], *last = L->taps + 2 * L->tap_start[p + 1];   \
            for (int64_t c0 = 0; c0 < ci; c0 += 32) {                                                          \
                const int64_t width = ci - c0 < 32 ? ci - c0 : 32;                                             \
                uint32_t mask = (uint32_t)field(bits, p * ci + c0, width);                                     \
                if (flip) mask = ~mask & (uint32_t)((1ull << width) - 1);                                      \
                while (mask) {                                                                                 \
                    int64_t r[4];                                                                              \
                    for (int k = 0; k < 4; k++) {                                                              \
                        const int64_t c = mask ? c0 + __builtin_ctz(mask) : ci;                                \
                        r[k] = c * stride;                                                                     \
                        mask &= mask - 1;                                                                      \
                    }                                                                                          \
                    for (const int32_t *tap = first; tap < last; tap += 2)                                     \
                        ADD(acc + tap[0], weight + tap[1], r, chunks, tail);                                   \
                }                                                                                              \
            }                                                                                                  \
        }                                                                                                      \
    }
CONV_SUMS(conv_sums, int32_t, i32x16, add_four)
CONV_SUMS(conv_sums16, int16_t, i16x32, add_four16)

/* conv_sums with the row's chunk count known for the common row lengths. */
static __attribute__((noinline)) void conv_any(const Layer *L, const uint8_t *bits, int flip, void *acc) {
    const int64_t chunks = L->narrow ? L->stride / 32 : (L->row + LANES - 1) / LANES;
    const i16x32 all = (i16x32){0} == 0; /* narrow rows are padded with zeros: no lane masked */
    const i32x16 tail = tail_of(L->row);
#define SUMS(CHUNKS) (L->narrow ? conv_sums16(L, bits, flip, acc, CHUNKS, all) : conv_sums(L, bits, flip, acc, CHUNKS, tail))
    switch (chunks) {
    case 1: SUMS(1); break;
    case 2: SUMS(2); break;
    case 3: SUMS(3); break;
    case 4: SUMS(4); break;
    default: SUMS(chunks);
    }
#undef SUMS
}

/* A convolution of at most 4 input channels (see `subsets`): for each output position and tap,
   the input position's bits index the sums of their weights, the same work whatever spiked. */
static __attribute__((noinline)) void few_channels(const Layer *L, const uint8_t *bits, int16_t *acc) {
    const int64_t row = L->row, stride = L->stride, taps = L->kernel_taps, positions = L->n / row;
    for (int64_t o = 0; o < positions; o++) {
        const int32_t *read = L->reads + 2 * taps * o;
        for (int64_t c = 0; c < stride; c += 32) { /* ascending: a row's last chunk spills into the next's place */
            i16x32 sum = {0};
            for (int64_t t = 0; t < taps; t++)
                sum += *(const i16x32_mem *)(L->subsets + read[2 * t + 1] + field(bits, read[2 * t], L->channels_in) * stride + c);
            *(i16x32_mem *)(acc + o * row + c) = sum;
        }
    }
}

#if TILES
/* A step's input bits as bytes of 0 and 1, each row in its place in the image (the border is
   left as it is: zero). */
static __attribute__((noinline)) void to_image(const Layer *L, const uint8_t *bits, uint8_t *image) {
    const __m512i one = _mm512_set1_epi8(1);
    for (int64_t y = 0; y < L->in_rows; y++) {
        uint8_t *to = image + L->image_start + y * L->image_row;
        for (int64_t i = 0; i < L->row_bits; i += 56) {
            const int64_t width = L->row_bits - i < 56 ? L->row_bits - i : 56;
            const uint64_t spiked = field(bits, y * L->row_bits + i, width);
            _mm512_mask_storeu_epi8(to + i, (1ull << width) - 1, _mm512_maskz_mov_epi8(spiked, one));
        }
    }
}

/* Copy a run of bytes, and up to 63 past it, in the widest stores that the run needs (so that
   short runs seldom cross a cache line). */
static inline void copy_run(uint8_t *to, const uint8_t *from, int64_t length) {
    if (length <= 16) {
        _mm_storeu_si128((__m128i *)to, _mm_loadu_si128((const __m128i *)from));
    } else if (length <= 32) {
        _mm256_storeu_si256((__m256i *)to, _mm256_loadu_si256((const __m256i *)from));
    } else {
        for (int64_t j = 0; j < length; j += 64) _mm512_storeu_si512(to + j, _mm512_loadu_si512(from + j));
    }
}

/* A convolution's sums from its input image, TILE_GROUP output positions at a time: their inputs
   as rows of bytes (`a`: TILE_GROUP rows of 64 k_tiles, and 64 bytes of room; bytes past an
   output's runs meet zero weights), then for each 16 of them the products with the weight tiles,
   four output tiles at a time (tiles 0 to 3: sums; 4: inputs; 5 to 7: weights), stored straight
   into acc (the last, partial 16 through `c`: 16 rows and 16 values of room). A tile of
   tile_width columns may reach past its row into the next: those are stored first (the highest
   tiles first), and the next row's own sums then overwrite them. */
static __attribute__((noinline)) void tile_sums(const Layer *L, const uint8_t *image, uint8_t *a, int32_t *c, int32_t *acc) {
    const int64_t row = L->row, positions = L->n / row, runs = L->runs, length = L->run_length;
    const int64_t k_tiles = L->k_tiles, n_tiles = L->n_tiles, across = L->tile_width, width = 64 * k_tiles;
    const int64_t block = 64 * across; /* bytes of a weight tile */
    for (int64_t o = 0; o < positions; o += TILE_GROUP) {
        const int64_t rows = positions - o < TILE_GROUP ? positions - o : TILE_GROUP, padded = (rows + 15) / 16 * 16;
        if (runs * length <= 64) /* each row in one register, its runs expanded into their places */
            for (int64_t r = 0; r < rows; r++) {
                __m512i line = _mm512_setzero_si512();
                for (int64_t q = 0; q < runs; q++)
                    line = _mm512_mask_expandloadu_epi8(line, ((1ull << length) - 1) << (q * length),
                                                        image + L->image_reads[(o + r) * runs + q]);
                _mm512_store_si512(a + r * width, line);
            }
        else
            for (int64_t r = 0; r < rows; r++) /* ascending: each run's spill is overwritten by what follows it */
                for (int64_t q = 0; q < runs; q++)
                    copy_run(a + r * width + q * length, image + L->image_reads[(o + r) * runs + q], length);
        memset(a + rows * width, 0, (size_t)((padded - rows) * width));
        const int resident = k_tiles == 1 && n_tiles <= 3; /* the weights fit tiles 5 to 7: loaded once */
        if (resident) {
            _tile_loadd(5, L->tiles, 4 * across);
            if (n_tiles > 1) _tile_loadd(6, L->tiles + block, 4 * across);
            if (n_tiles > 2) _tile_loadd(7, L->tiles + 2 * block, 4 * across);
        }
        for (int64_t m = 0; m < padded; m += 16) {
            const int64_t first = o + m, partial = first + 16 > positions;
            int32_t *out = partial ? c : acc + first * row;
            for (int64_t g = (n_tiles - 1) / 4 * 4; g >= 0; g -= 4) {
                const int64_t here = n_tiles - g < 4 ? n_tiles - g : 4;
                const int8_t *b = L->tiles + g * block;
                const uint8_t *in = a + m * width;
                _tile_zero(0);
                if (here > 1) _tile_zero(1);
                if (here > 2) _tile_zero(2);
                if (here > 3) _tile_zero(3);
                for (int64_t k = 0; k < k_tiles; k++, b += n_tiles * block) {
                    _tile_loadd(4, in + 64 * k, width);
                    if (!resident) _tile_loadd(5, b, 4 * across);
                    _tile_dpbusd(0, 4, 5);
                    if (here > 1) {
                        if (!resident) _tile_loadd(6, b + block, 4 * across);
                        _tile_dpbusd(1, 4, 6);
                    }
                    if (here > 2) {
                        if (!resident) _tile_loadd(7, b + 2 * block, 4 * across);
                        _tile_dpbusd(2, 4, 7);
                    }
                    if (here > 3) {
                        _tile_loadd(5, b + 3 * block, 4 * across);
                        _tile_dpbusd(3, 4, 5);
                    }
                }
                int32_t *at = out + g * across;
                if (here > 3) _tile_stored(3, at + 3 * across, 4 * row);
                if (here > 2) _tile_stored(2, at + 2 * across, 4 * row);
                if (here > 1) _tile_stored(1, at + across, 4 * row);
                _tile_stored(0, at, 4 * row);
            }
            if (partial) memcpy(acc + first * row, c, sizeof(int32_t) * (size_t)((positions - first) * row));
        }
    }
}

/* This thread's tiles for a layer: 16 rows each; 64 bytes of inputs, and sums and weights of
   `across` columns. */
static void tiles_on(int64_t across) {
    struct {
        uint8_t palette, start, reserved[14];
        uint16_t columns[16];
        uint8_t rows[16];
    } config = {1, 0, {0}, {0}, {0}};
    for (int k = 0; k < 8; k++) config.columns[k] = (uint16_t)(k == 4 ? 64 : 4 * across), config.rows[k] = 16;
    _tile_loadconfig(&config);
}
#endif

/* Whether this build multiplies tiles and the system lets this process use them. */
int tiles_ready(void) {
#if TILES
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}

/* Scratch memory of a thread: event indices, narrow sums in padded rows, and with tiles the image
   of an input (zeroed once a layer), a block of input rows and a block of sums. */
typedef struct {
    int32_t *idx;
    int16_t *pad;
    uint8_t *image, *a;
    int32_t *c;
} Scratch;

/* A convolution's input (see tile_sums, few_channels, `events` and conv_sums). Narrow sums from
   events are formed in `pad`, one aligned padded row an output position (so that no two positions
   share a vector), then packed into acc and cleared. */
static int conv_input(const Layer *L, const uint8_t *bits, int32_t *acc, Scratch *w) {
#if TILES
    if (L->tiles) {
        to_image(L, bits, w->image);
        tile_sums(L, w->image, w->a, w->c, acc);
        return SUM | WHOLE;
    }
#endif
    if (L->subsets) {
        few_channels(L, bits, (int16_t *)acc);
        return SUM | WHOLE;
    }
    const int flip = 2 * ones_in(bits, L->n_in) > L->n_in;
    int16_t *pad = w->pad;
    conv_any(L, bits, flip, L->narrow ? (void *)pad : (void *)acc);
    if (!L->narrow) return flip ? SILENT_SUM : SUM;
    const int64_t row = L->row, stride = L->stride, positions = L->n / row;
    int16_t *dense = (int16_t *)acc;
    for (int64_t o = 0; o < positions; o++) /* ascending: each row's last chunk spills into the next's place */
        for (int64_t c = 0; c < stride; c += 32) {
            *(i16x32_mem *)(dense + o * row + c) = *(const i16x32 *)(pad + o * stride + c);
            *(i16x32 *)(pad + o * stride + c) = (i16x32){0};
        }
    return flip ? SILENT_SUM : SUM;
}

/* Sample b's effective bias (fixed_point.effective_bias: the mantissa shifted by its exponent,
   wrapped to 32 bits) in channels-last order, from its mantissas in the netlist's order. */
static void sample_bias(const Layer *L, int64_t b, int32_t *out) {
    const int64_t n = L->n, channels = L->bias_channels, positions = n / channels, exp = L->bias_exp;
    const int64_t *mant = L->bias_mant + b * n;
    for (int64_t c = 0; c < channels; c++)
        for (int64_t p = 0; p < positions; p++) {
            const int64_t m = mant[c * positions + p];
            out[p * channels + c] = (int32_t)(uint32_t)(exp >= 0 ? (uint64_t)m << exp : (uint64_t)(m >> -exp));
        }
}

/* Pack n bytes of 0 and 1 into bits. */
static void pack(const uint8_t *s, int64_t n, uint8_t *bits) {
    memset(bits, 0, (size_t)(n + 7) / 8);
    for (int64_t i = 0; i < n; i++) bits[i / 8] |= (uint8_t)(s[i] << (i % 8));
}

/* Run samples of a batch for `steps` steps through `nl` layers, each layer over all steps before the
   next (so that its state stays in cache), its spikes kept as bits for each step; the threads that
   call this together share `*next`, the next sample to take, so that each takes one while any
   remain. `input` (batch, steps, n_in of layer 0) holds binary spikes into layer 0, or is NULL. The last
   layer's spike counts a sample (batch, n) add into `out_counts`; its v after the last step goes
   to `out_v` (batch, n), `spike_v` where it spiked on that step. Returns 0, -1 where memory ran
   out, -2 where layers are in tiles and the system refuses them, or 1 where `*stop` was set (checked
   before each layer of each sample). */
int run(Layer *layers, int64_t nl, int64_t *next, int64_t batch, int64_t steps, const uint8_t *input,
        int32_t *out_counts, int32_t *out_v, int32_t spike_v, const volatile int32_t *stop) {
    int64_t words = 0, widest = layers[0].n_in + 64, room = 64, stride = 0, largest = 0;
    for (int64_t k = 0; k < nl; k++) {
        words = 3 * (layers[k].n + LANES) > words ? 3 * (layers[k].n + LANES) : words;
        largest = layers[k].n > largest ? layers[k].n : largest;
        widest = layers[k].n_in > widest ? layers[k].n_in : widest;
        room = layers[k].channels_in / 8 + 64 > room ? layers[k].channels_in / 8 + 64 : room;
    }
    stride = (widest > largest ? widest : largest) / 8 + room; /* bytes of one step's bits, of any layer or input */
    const int64_t bit_bytes = 2 * steps * stride;
    int64_t pad_size = 32, image_size = 0, a_size = 0, c_size = 16, tiled = 0;
    for (int64_t k = 0; k < nl; k++) {
        const Layer *L = &layers[k];
        if (L->narrow) pad_size = L->n / L->row * L->stride > pad_size ? L->n / L->row * L->stride : pad_size;
        image_size = L->tiles && L->image_bytes > image_size ? L->image_bytes : image_size;
        a_size = L->tiles && TILE_GROUP * 64 * L->k_tiles > a_size ? TILE_GROUP * 64 * L->k_tiles : a_size;
        c_size = L->tiles && 16 * L->row + 16 > c_size ? 16 * L->row + 16 : c_size;
        tiled |= L->tiles != NULL;
    }
    if (tiled && !tiles_ready()) return -2;
    Scratch w = {malloc(sizeof(int32_t) * (size_t)(widest + LANES)), aligned_alloc(64, sizeof(int16_t) * (size_t)(pad_size + 32)),
                 malloc((size_t)(image_size + 64)), aligned_alloc(64, (size_t)(a_size + 64)), aligned_alloc(64, sizeof(int32_t) * (size_t)c_size)};
    int32_t *memory = malloc(sizeof(int32_t) * (size_t)words);
    int32_t *sample = malloc(sizeof(int32_t) * (size_t)(largest + LANES)); /* a sample's bias */
    uint8_t *bit_memory = calloc((size_t)bit_bytes, 1); /* a layer's input's bits and its own, each step: a
                                                           step writes a layer's n bits, and only those are read */
    const int ok = memory && w.idx && bit_memory && w.pad && sample && w.image && w.a && w.c;
    if (ok) memset(w.pad, 0, sizeof(int16_t) * (size_t)(pad_size + 32)), memset(w.a, 0, (size_t)(a_size + 64));
    for (int64_t b; ok && (b = __atomic_fetch_add(next, 1, __ATOMIC_RELAXED)) < batch;) {
        uint8_t *pre = bit_memory, *own = bit_memory + steps * stride;
        if (input)
            for (int64_t t = 0; t < steps; t++) pack(input + (b * steps + t) * layers[0].n_in, layers[0].n_in, pre + t * stride);
        for (int64_t k = 0; k < nl && !*stop; k++) {
            Layer *L = &layers[k];
            const int64_t n = L->n + LANES;
            State st = {memory, memory + n, memory + 2 * n, NULL};
            const int fed = L->n_in && (k || input);
            memset(memory, 0, sizeof(int32_t) * (size_t)(3 * n));
            if (L->bias_mant) sample_bias(L, b, sample);
#if TILES
            if (L->tiles) memset(w.image, 0, (size_t)L->image_bytes), tiles_on(L->tile_width);
#endif
            const int32_t *bias = L->bias_mant ? sample : L->bias;
            for (int64_t t = 0; t < steps; t++) {
                if (L->resets[t]) {
                    memset(st.u, 0, sizeof(int32_t) * (size_t)L->n);
                    memset(st.v, 0, sizeof(int32_t) * (size_t)L->n);
                }
                int what = NO_INPUT;
                if (fed && t >= 1 && L->kind == DENSE) what = dense_input(L, pre + (t - 1) * stride, st.acc, w.idx);
                if (fed && t >= 1 && L->kind == CONV) what = conv_input(L, pre + (t - 1) * stride, st.acc, &w);
                st.bits = own + t * stride;
                neurons(L, &st, what, bias,
                        L->spikes ? L->spikes + (b * steps + t) * L->n : NULL, k == nl - 1 ? out_counts + b * L->n : NULL);
            }
            if (fed) L->events += delivered(L, pre, steps, stride); /* the last step's too, delivered to no step */
            if (k == nl - 1)
                for (int64_t i = 0; i < L->n; i++)
                    out_v[b * L->n + i] = steps && (st.bits[i / 8] >> (i % 8)) & 1 ? spike_v : st.v[i];
            uint8_t *swap = pre;
            pre = own, own = swap;
        }
    }
#if TILES
    if (ok && tiled) _tile_release();
#endif
    free(memory), free(bit_memory), free(sample);
    free(w.idx), free(w.pad), free(w.image), free(w.a), free(w.c);
#if defined(__SSE2__)
    _mm_sfence(); /* the streamed records, complete before the caller reads them */
#endif
    return !ok ? -1 : *stop ? 1 : 0;
}
