/* When MoE layers compete (CompeteSMoE, BRIEF section 5): no competition during a warm-up, then
 * on each step each of the model's MoE layers competes with probability omega, at most
 * max_layers of them on one step.
 *
 * The draw for a step depends only on the schedule's seed and the step number: the stream of
 * step n is fm_rng_split(root, n), where root is stream FM_COMPETE_SCHEDULE_STREAM of a generator
 * seeded with the seed, so it is independent of every other use of that seed, of the order in
 * which steps are asked for, and of anything else the trainer draws. Layer l draws
 * u_l ~ U[0, 1) (in layer order) and competes when u_l < omega. When more than max_layers layers
 * are drawn, the max_layers with the smallest u compete (ties: the lower layer index): since the
 * u are independent and identically distributed, that keeps a uniformly random subset of the
 * drawn layers, so no layer is favoured. */
#ifndef FM_COMPETE_SCHEDULE_H
#define FM_COMPETE_SCHEDULE_H

#include <stdint.h>

#include "src/error.h"
#include "src/rng.h"

/* Most MoE layers a schedule draws for. */
#define FM_COMPETE_MAX_LAYERS 64
/* The stream of the seed's generator that the schedule uses ("compete" in ASCII). */
#define FM_COMPETE_SCHEDULE_STREAM 0x636f6d70657465ULL

typedef struct {
    double warmup_fraction; /* in [0, 1] */
    double omega;           /* in [0, 1] */
    int max_layers;         /* >= 1 */
    long total_steps;       /* >= 1 */
    long warmup_steps;      /* ceil(warmup_fraction * total_steps): steps 0 .. warmup_steps - 1 never
                             * compete */
    FmRng root;
} FmCompeteSchedule;

/* Checks the values (FM_ERR_CONFIG naming competition.warmup_fraction, competition.omega,
 * competition.max_layers, or FM_ERR_ARG for total_steps < 1) and fills *s. */
FmStatus fm_compete_schedule_init(FmCompeteSchedule *s, double warmup_fraction, double omega, int max_layers,
                                  long total_steps, uint64_t seed, FmError *err);

/* Which of n_layers (0 .. FM_COMPETE_MAX_LAYERS) MoE layers compete on `step` (0-based; steps
 * past total_steps are drawn the same way): mask[l] = 1 for a competing layer, else 0. Returns
 * how many compete (at most max_layers; 0 during the warm-up). Pure: the same arguments always
 * give the same mask. */
int fm_compete_schedule_draw(const FmCompeteSchedule *s, long step, int n_layers, uint8_t *mask);

#endif
