/* Seeded, splittable pseudo-random numbers.
 *
 * Generator: xoshiro256** (Blackman and Vigna, "Scrambled linear pseudorandom number
 * generators", 2018), seeded through SplitMix64. Splitting derives an independent child stream
 * from a parent's state and a stream number without advancing the parent, so work can be
 * handed to any number of threads or processes (one stream per sample, per layer, per run) and
 * the numbers each piece of work sees never depend on how the work was scheduled. */
#ifndef FM_RNG_H
#define FM_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t s[4];
} FmRng;

/* Initialises `rng` from a 64-bit seed; the same seed gives the same sequence everywhere. */
void fm_rng_seed(FmRng *rng, uint64_t seed);

/* Returns the child stream number `stream` of `parent`. The parent is not advanced; different
 * stream numbers give statistically independent streams; splitting is itself deterministic. */
FmRng fm_rng_split(const FmRng *parent, uint64_t stream);

/* Next 64 random bits. */
uint64_t fm_rng_u64(FmRng *rng);

/* Uniform integer in [0, n), without modulo bias. n must be > 0. */
uint64_t fm_rng_below(FmRng *rng, uint64_t n);

/* Uniform double in [0, 1) with 53 random bits. */
double fm_rng_uniform(FmRng *rng);

/* Standard normal deviate (Box-Muller on two uniforms; one value per call, no cached state, so
 * a stream's n-th normal is the same whatever else was drawn from other streams). */
double fm_rng_normal(FmRng *rng);

/* Shuffles idx[0..n) in place (Fisher-Yates). */
void fm_rng_shuffle(FmRng *rng, size_t *idx, size_t n);

#endif
