#include "src/rng.h"

#include <math.h>

#include "src/error.h"

/* SplitMix64 step (Steele, Lea, Flood 2014): used to expand seeds into full states. */
static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void fm_rng_seed(FmRng *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&x);
}

FmRng fm_rng_split(const FmRng *parent, uint64_t stream) {
    /* Fold the parent state and the stream number through SplitMix64 so that nearby stream
     * numbers and nearby parents still give unrelated children. */
    uint64_t x = stream * 0xd1342543de82ef95ULL + 0x2545f4914f6cdd1dULL;
    for (int i = 0; i < 4; i++) {
        x ^= parent->s[i];
        (void)splitmix64(&x);
    }
    FmRng child;
    for (int i = 0; i < 4; i++) child.s[i] = splitmix64(&x);
    if (!(child.s[0] | child.s[1] | child.s[2] | child.s[3])) child.s[0] = 1; /* all-zero is a fixed point */
    return child;
}

uint64_t fm_rng_u64(FmRng *rng) {
    uint64_t *s = rng->s;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t fm_rng_below(FmRng *rng, uint64_t n) {
    FM_ASSERT(n > 0);
    /* Rejection sampling on the largest multiple of n below 2^64. */
    uint64_t limit = UINT64_MAX - (UINT64_MAX % n);
    uint64_t r;
    do r = fm_rng_u64(rng);
    while (r >= limit);
    return r % n;
}

double fm_rng_uniform(FmRng *rng) { return (double)(fm_rng_u64(rng) >> 11) * 0x1.0p-53; }

double fm_rng_normal(FmRng *rng) {
    double u1 = 1.0 - fm_rng_uniform(rng); /* (0, 1]: log is finite */
    double u2 = fm_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void fm_rng_shuffle(FmRng *rng, size_t *idx, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)fm_rng_below(rng, i);
        size_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}
