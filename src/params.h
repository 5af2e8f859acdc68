/* Parameters, gradients and Adam state: one arena each, all with the same layout.
 *
 * A model declares its named tensors first (fm_params_declare), then allocates once
 * (fm_params_allocate). Tensor i then lives at the same offset in `data`, `grad`, `adam_m` and
 * `adam_v`, so the optimiser, gradient clipping and zeroing are flat loops, and a checkpoint is
 * the table plus the buffers. Offsets are rounded up to 16 floats (64 bytes). */
#ifndef FM_PARAMS_H
#define FM_PARAMS_H

#include <stddef.h>

#include "src/error.h"

#define FM_PARAM_NAME_MAX 96
#define FM_PARAM_MAX_DIMS 4

typedef struct {
    char name[FM_PARAM_NAME_MAX]; /* unique, e.g. "fusion.0.moe.expert.3.fc1.weight" */
    int ndim;
    int shape[FM_PARAM_MAX_DIMS];
    size_t offset; /* in floats, into each arena */
    size_t count;  /* product of shape */
    int decay;     /* 1: weight decay applies (matrices); 0: biases, norms, embeddings */
} FmTensorInfo;

typedef struct {
    FmTensorInfo *tensors;
    int n_tensors;
    int capacity;
    size_t total; /* floats in each arena, padding included */
    float *data;  /* NULL until fm_params_allocate */
    float *grad;
    float *adam_m;
    float *adam_v;
} FmParams;

/* An empty table with no arena. */
void fm_params_init(FmParams *p);

/* Declares tensor `name` of the given shape (1 to 4 positive dims) and returns its index in
 * *id. `decay` marks whether weight decay applies. Only before fm_params_allocate. Fails with
 * FM_ERR_ARG on a duplicate or overlong name or a bad shape, FM_ERR_NOMEM on allocation. */
FmStatus fm_params_declare(FmParams *p, const char *name, int ndim, const int *shape, int decay,
                           int *id, FmError *err);

/* Allocates the zeroed arenas for every declared tensor: data and grad always, Adam's m and v
 * when with_optimizer != 0. On failure nothing is left allocated. */
FmStatus fm_params_allocate(FmParams *p, int with_optimizer, FmError *err);

/* Index of the tensor called `name`, or -1. */
int fm_params_find(const FmParams *p, const char *name);

/* Pointers to tensor `id` in each arena (after allocation; NULL arena gives NULL). */
float *fm_params_data(const FmParams *p, int id);
float *fm_params_grad(const FmParams *p, int id);

/* Sets every gradient to zero. */
void fm_params_zero_grad(FmParams *p);

/* Number of real (unpadded) parameters. */
size_t fm_params_count(const FmParams *p);

/* Frees the table and the arenas; the struct is left empty. NULL is accepted. */
void fm_params_free(FmParams *p);

/* Adam with decoupled weight decay (AdamW, Loshchilov and Hutter 2019), the update PyTorch's
 * torch.optim.AdamW makes:
 *   w <- w - lr * wd * w   (only tensors marked decay)
 *   m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
 *   w <- w - lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * weight_decay = 0 is plain Adam. */
typedef struct {
    float lr;
    float beta1;
    float beta2;
    float eps;
    float weight_decay;
} FmAdamConfig;

/* The defaults: lr 4e-4, betas (0.9, 0.999), eps 1e-8, no weight decay (BRIEF section 4). */
FmAdamConfig fm_adam_default(void);

/* One Adam step over the whole arena. `step` counts from 1. Needs the optimiser arenas. */
void fm_adam_step(FmParams *p, const FmAdamConfig *cfg, long step);

/* The L2 norm of all gradients, accumulated in double. */
double fm_params_grad_norm(const FmParams *p);

/* If the gradient norm exceeds max_norm (> 0), scales all gradients to have norm max_norm.
 * Returns the norm before clipping. */
double fm_params_clip_grad(FmParams *p, double max_norm);

#endif
