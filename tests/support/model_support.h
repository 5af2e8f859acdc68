/* Helpers shared by the model's suites (test_encoders, test_heads, test_model, test_model_file):
 * gradient checks over parameter tensors, workspace buffers from an FmLayout, and a small
 * hand-built batch with padding, masked channels and an absent modality. */
#ifndef FM_MODEL_SUPPORT_H
#define FM_MODEL_SUPPORT_H

#include <stddef.h>

#include "models/layout.h"
#include "models/model.h"
#include "preprocessing/batch.h"
#include "src/params.h"
#include "tests/support/testutil.h"

/* Central-difference check of every tensor of `p` whose name starts with `prefix` ("" for all)
 * against p->grad, which holds the analytic gradient of loss(). Fails naming the tensor when a
 * relative error exceeds tol. With FM_TEST_VERBOSE set, prints each tensor's worst error. */
void fm_test_gradcheck_params(FmParams *p, const char *prefix, FmLossFn loss, void *ctx, double h, double tol);

/* Whether the last loss evaluation stayed in the regime of the point being checked (for the
 * model: every token routed to the same experts), so that the function is smooth between the
 * evaluations compared. */
typedef int (*FmRegimeFn)(void *ctx);

typedef struct {
    size_t checked;    /* elements compared */
    size_t smaller;    /* elements that passed only at a smaller step */
    size_t skipped;    /* elements whose every step left the regime */
    double worst;      /* largest relative error among the elements that passed at step h */
} FmTestGradStats;

/* Central differences for every tensor of `p` whose name starts with `prefix`, against p->grad,
 * for a loss that is smooth only piecewise (top-k routing, ReLU, column maxima). Relative error
 * |a - n| / max(|a|, |n|, floor) must be <= tol. An element that fails at step h, or whose
 * evaluations left the regime (`same`, may be NULL), is measured again at h/3 and h/10 (with
 * the tolerance scaled by h/step, as the rounding noise of a numeric gradient is): a kink or a
 * routing boundary within the larger step explains a failure that a smaller step does not
 * show. An element whose every step left the regime is skipped. Fails the test when
 * an element fails at every step, or when more than max_frac of the elements needed a smaller
 * step or were skipped. Returns the counts (printed with FM_TEST_VERBOSE). */
FmTestGradStats fm_test_gradcheck_piecewise(FmParams *p, const char *prefix, FmLossFn loss, FmRegimeFn same,
                                            void *ctx, double h, double tol, double floor, double max_frac);

/* The same for one buffer x (n) and its analytic gradient. */
FmTestGradStats fm_test_gradcheck_piecewise_buffer(const char *name, float *x, const float *analytic, size_t n,
                                                   FmLossFn loss, FmRegimeFn same, void *ctx, double h, double tol,
                                                   double floor, double max_frac);

/* The plain check (fm_assert_gradcheck) of one buffer x (n) with its analytic gradient. */
void fm_test_gradcheck(FmLossFn loss, void *ctx, float *x, const float *analytic, size_t n, double h, double tol,
                       const char *what);

/* Asserts closeness like fm_assert_close, printing the worst error with FM_TEST_VERBOSE. */
void fm_test_expect_close(const float *got, const float *want, size_t n, double atol, double rtol, const char *what);

/* Runs `layout` twice over one malloc'ed arena (sizing, then binding) and returns the arena
 * (free with free()). `layout` fills the caller's buffer structs from the FmLayout. */
typedef void (*FmTestLayoutFn)(FmLayout *l, void *ctx);
void *fm_test_layout_alloc(FmTestLayoutFn layout, void *ctx);

/* A batch built in plain malloc'ed memory by the model tests. */
typedef struct {
    FmBatch batch;
    FmBatchModality mod[8];
} FmTestBatch;

/* Allocates modality m's arrays for B stays and max_L observations (all zero, present = 1). */
void fm_test_batch_modality(FmTestBatch *tb, int m, FmModalityKind kind, int C, int max_L);
/* Allocates the labels (B, n_labels), all unknown. */
void fm_test_batch_labels(FmTestBatch *tb, int n_labels);
void fm_test_batch_free(FmTestBatch *tb);

/* Fills modality m of stay b with `count` observations at sorted random times in [0, 1]:
 * SERIES/STATIC values in [-2, 2] observed with probability p_obs (channels listed in
 * `never` stay unobserved, -1 terminated, may be NULL); EVENTS/IMAGES every item real with
 * values in [-1, 1] (IMAGES in [0, 1]). */
void fm_test_batch_fill(FmTestBatch *tb, int m, int b, int count, double p_obs, const int *never, FmRng *rng);

/* A small model for the suites: vitals (SERIES, 3 channels), notes (EVENTS, width 5), static
 * (STATIC, 2 channels), and with images != 0 a fourth, images (IMAGES, 4 x 4 pixels, 2 x 2
 * patches); D 8, Q 4, mTAND heads 2, DT 4, 2 layers, 2 attention heads, E 6, K 2, hidden 8,
 * head_hidden 6, dropout 0.2; tasks mortality (binary, column 0, pos_weight 2), los
 * (regression, column 1), phenotype (multi-label, columns 2..3, weight 0.5). */
void fm_test_small_config(FmModelConfig *cfg, int images);

/* A batch of 3 stays for that model, seeded: stay 0 has everything; stay 1 lacks notes and
 * its vitals have padding; stay 2 lacks static, has vitals without any observation and one
 * padded note inside its count. Every label known except phenotype of stay 2. */
void fm_test_small_batch(FmTestBatch *tb, const FmModelConfig *cfg, uint64_t seed);

#endif
