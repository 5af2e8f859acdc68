/* The model's view of a cohort batch (src/train_batch.h). */
#include "src/train_batch.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"

void fm_train_batch_free(FmTrainBatch *tb) {
    if (!tb) return;
    fm_cohort_batch_free(&tb->full);
    fm_free(tb->label);
    fm_free(tb->label_mask);
    memset(tb, 0, sizeof *tb);
}

FmStatus fm_train_batch_alloc(FmTrainBatch *tb, const FmCohort *c, const FmTrainSpec *spec, int max_B,
                              FmError *err) {
    memset(tb, 0, sizeof *tb);
    FmStatus st = fm_cohort_batch_alloc(c, max_B, &tb->full, err);
    if (st != FM_OK) return st;
    size_t n = (size_t)max_B * (size_t)(spec->n_labels > 0 ? spec->n_labels : 1);
    tb->label = fm_malloc_array(n, sizeof *tb->label);
    tb->label_mask = fm_malloc(n);
    if (!tb->label || !tb->label_mask) {
        fm_train_batch_free(tb);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory allocating a batch of %d stays", max_B);
    }
    tb->cap = max_B;
    return FM_OK;
}

FmStatus fm_train_batch_make(FmTrainBatch *tb, const FmCohort *c, const FmTrainSpec *spec, int norm,
                             const int64_t *idx, int n, FmError *err) {
    FmStatus st = fm_cohort_make_batch(c, norm, idx, n, &tb->full, err);
    if (st != FM_OK) return st;
    const int M = spec->model.M, J = spec->n_labels;
    for (int m = 0; m < M; m++) tb->mod[m] = tb->full.mod[spec->cohort_mod[m]];
    for (int b = 0; b < n; b++)
        for (int j = 0; j < J; j++) {
            float y = NAN;
            int known = fm_train_spec_label(spec, c, idx[b], j, &y);
            tb->label[(size_t)b * J + j] = known ? y : NAN;
            tb->label_mask[(size_t)b * J + j] = (uint8_t)known;
        }
    tb->view = (FmBatch){.B = n,
                         .M = M,
                         .mod = tb->mod,
                         .n_labels = J,
                         .label = tb->label,
                         .label_mask = tb->label_mask,
                         .stay_id = tb->full.stay_id,
                         .cap_B = tb->cap};
    return FM_OK;
}

void fm_train_batch_shape(const FmCohort *c, const FmTrainSpec *spec, int max_B, FmModelShape *shape) {
    memset(shape, 0, sizeof *shape);
    shape->B = max_B;
    for (int m = 0; m < spec->model.M; m++) {
        const FmCohortModality *md = &c->mod[spec->cohort_mod[m]];
        shape->max_L[m] = md->kind == FM_MODALITY_STATIC ? 1 : (md->max_L > 0 ? md->max_L : 1);
    }
}
