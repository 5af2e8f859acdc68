/* Helpers shared by the model's suites (test_encoders, test_heads, test_model, test_model_file):
 * gradient checks over parameter tensors, workspace buffers from an FmLayout, and a small
 * hand-built batch with padding, masked channels and an absent modality. */
#ifndef FM_MODEL_SUPPORT_H
#define FM_MODEL_SUPPORT_H

#include <stddef.h>

#include "models/layout.h"
#include "preprocessing/batch.h"
#include "src/params.h"
#include "tests/support/testutil.h"

/* Central-difference check of every tensor of `p` whose name starts with `prefix` ("" for all)
 * against p->grad, which holds the analytic gradient of loss(). Fails naming the tensor when a
 * relative error exceeds tol. With FM_TEST_VERBOSE set, prints each tensor's worst error. */
void fm_test_gradcheck_params(FmParams *p, const char *prefix, FmLossFn loss, void *ctx, double h, double tol);

/* The same for one buffer x (n) with its analytic gradient. */
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

#endif
