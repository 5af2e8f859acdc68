/* Missing-modality injection at evaluation (src/evaluate_missing.h). */
#include "src/evaluate_missing.h"

#include "src/rng.h"

/* The stream of the injection under the seed ("MISS"), kept apart from every other use. */
#define INJECTION_STREAM 0x4d495353u

int64_t fm_evaluate_drop_modalities(FmBatch *batch, double p, uint64_t seed) {
    if (!(p > 0.0)) return 0;
    FmRng root, base;
    fm_rng_seed(&root, seed);
    base = fm_rng_split(&root, INJECTION_STREAM);
    int64_t dropped = 0;
    for (int b = 0; b < batch->B; b++) {
        FmRng r = fm_rng_split(&base, (uint64_t)batch->stay_id[b]);
        int have = 0, drop[64] = {0};
        for (int m = 0; m < batch->M && m < 64; m++) {
            double u = fm_rng_uniform(&r); /* drawn for every modality, so the streams line up */
            if (!batch->mod[m].present[b]) continue;
            have++;
            drop[m] = u < p;
        }
        int n_drop = 0;
        for (int m = 0; m < batch->M && m < 64; m++) n_drop += drop[m];
        if (have > 0 && n_drop == have) {
            /* Keep the k-th present modality, k uniform among them. */
            int k = (int)fm_rng_below(&r, (uint64_t)have);
            for (int m = 0; m < batch->M && m < 64; m++)
                if (batch->mod[m].present[b] && k-- == 0) drop[m] = 0;
        }
        for (int m = 0; m < batch->M && m < 64; m++)
            if (drop[m]) {
                batch->mod[m].present[b] = 0;
                dropped++;
            }
    }
    return dropped;
}
