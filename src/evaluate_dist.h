/* Running a model over a set of stays split among data-parallel ranks (src/dist.h), with the
 * result every rank needs: all predictions, in the order of the stays.
 *
 * The n stays are cut into batches of tb->cap stays, as fm_evaluate_predict cuts them, and
 * rank r evaluates the contiguous run of batches fm_dist_block_range gives it; so every stay
 * is predicted in the same batch, with the same companions, as one process would, and its
 * predictions are the same bits. The blocks are then gathered in rank order, which is stay
 * order. Expert counts (opt->usage) are summed over ranks exactly, the expert probe's sums
 * (opt->probe) in a fixed order (the same bits for the same number of ranks); task losses (opt->loss)
 * combine the ranks' means weighted by their known labels, so they may differ from one
 * process's in the last bits of a double. Only the rank's own block of stays needs its rows
 * loaded (preprocessing/cohort.h, fm_cohort_load_rows). */
#ifndef FM_EVALUATE_DIST_H
#define FM_EVALUATE_DIST_H

#include "src/dist.h"
#include "src/evaluate.h"

/* The stays [*begin, *end) of idx[0..n) that rank `rank` of `size` evaluates with batches of
 * `cap` stays. */
void fm_evaluate_dist_block(int64_t n, int cap, int rank, int size, int64_t *begin, int64_t *end);

/* As fm_evaluate_predict (same arguments and errors), the work split over the ranks of `d`
 * (NULL: one process, exactly fm_evaluate_predict). Collective; when one rank fails, every
 * rank returns that rank's error (fm_dist_agree). */
FmStatus fm_evaluate_predict_dist(FmDist *d, const FmModel *model, FmModelWorkspace *ws, FmTrainBatch *tb,
                                  const FmCohort *c, const FmTrainSpec *spec, int norm, const int64_t *idx,
                                  int64_t n, const FmEvaluateOptions *opt, FmPredictions *out, FmError *err);

#endif
