#include "models/compete_schedule.h"

#include <math.h>
#include <string.h>

FmStatus fm_compete_schedule_init(FmCompeteSchedule *s, double warmup_fraction, double omega, int max_layers,
                                  long total_steps, uint64_t seed, FmError *err) {
    if (!(warmup_fraction >= 0.0 && warmup_fraction <= 1.0))
        return FM_FAIL(err, FM_ERR_CONFIG, "competition.warmup_fraction", "must be in [0, 1], got %g",
                       warmup_fraction);
    if (!(omega >= 0.0 && omega <= 1.0))
        return FM_FAIL(err, FM_ERR_CONFIG, "competition.omega", "must be in [0, 1], got %g", omega);
    if (max_layers < 1)
        return FM_FAIL(err, FM_ERR_CONFIG, "competition.max_layers", "must be >= 1, got %d", max_layers);
    if (total_steps < 1)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "competition schedule: total steps must be >= 1, got %ld",
                       total_steps);
    memset(s, 0, sizeof *s);
    s->warmup_fraction = warmup_fraction;
    s->omega = omega;
    s->max_layers = max_layers;
    s->total_steps = total_steps;
    /* ceil, with a little slack so that a product that is an integer up to rounding (0.05 *
     * 1000) is not pushed to the next step */
    s->warmup_steps = (long)ceil(warmup_fraction * (double)total_steps - 1e-9);
    FmRng base;
    fm_rng_seed(&base, seed);
    s->root = fm_rng_split(&base, FM_COMPETE_SCHEDULE_STREAM);
    return FM_OK;
}

int fm_compete_schedule_draw(const FmCompeteSchedule *s, long step, int n_layers, uint8_t *mask) {
    FM_ASSERT(n_layers >= 0 && n_layers <= FM_COMPETE_MAX_LAYERS && step >= 0);
    memset(mask, 0, (size_t)n_layers);
    if (step < s->warmup_steps) return 0;
    FmRng r = fm_rng_split(&s->root, (uint64_t)step);
    double u[FM_COMPETE_MAX_LAYERS];
    int drawn = 0;
    for (int l = 0; l < n_layers; l++) {
        u[l] = fm_rng_uniform(&r);
        if (u[l] < s->omega) {
            mask[l] = 1;
            drawn++;
        }
    }
    /* Too many: drop the drawn layer with the largest u (ties: the higher index) until
     * max_layers remain. */
    while (drawn > s->max_layers) {
        int worst = -1;
        for (int l = 0; l < n_layers; l++)
            if (mask[l] && (worst < 0 || u[l] >= u[worst])) worst = l;
        mask[worst] = 0;
        drawn--;
    }
    return drawn;
}
