/* Prediction heads and task losses (BRIEF section 4).
 *
 * From the pooled representation h0 (B, P): a residual MLP
 *   h1 = h0 + W2 Dropout(GELU(W1 h0 + b1)) + b2,   W1 (hidden, P), W2 (P, hidden)
 * then one linear head per task, z_t = W_t h1 + b_t (n_t logits), written into the task's label
 * columns. Per task, over the (stay, label) entries whose label_mask is 1, mean reduction:
 *   binary, multi-label  BCE with logits, pos_weight w+ on positives (PyTorch's convention):
 *                        l = w+ y softplus(-z) + (1 - y) softplus(z); prediction sigmoid(z)
 *   regression           MSE (z - y)^2, or Huber with delta d (0.5 e^2 if |e| < d, else
 *                        d (|e| - d/2)); prediction z
 * The task loss is sum_t weight_t loss_t; a task with no known label in the batch adds 0.
 * Tensors: head.mlp.fc1.weight/bias, head.mlp.fc2.weight/bias, head.<task>.weight (n_t, P),
 * head.<task>.bias (n_t). */
#ifndef FM_HEADS_H
#define FM_HEADS_H

#include <stdint.h>

#include "models/layout.h"
#include "src/error.h"
#include "src/params.h"
#include "src/rng.h"

#define FM_MAX_TASKS 8
#define FM_TASK_NAME_MAX 32

typedef enum { FM_TASK_BINARY, FM_TASK_REGRESSION, FM_TASK_MULTILABEL } FmTaskKind;

typedef struct {
    char name[FM_TASK_NAME_MAX]; /* [A-Za-z0-9_], unique; part of the parameter names */
    FmTaskKind kind;
    int label0;        /* first label column */
    int n;             /* label columns (1 for binary and regression) */
    float weight;      /* in the multi-task loss */
    float pos_weight;  /* binary, multi-label: weight of positive targets (1 = none) */
    float huber_delta; /* regression: 0 = MSE, > 0 = Huber with this delta */
} FmTaskConfig;

typedef struct {
    int P, hidden, n_labels, n_tasks;
    float dropout;
    FmTaskConfig task[FM_MAX_TASKS];
    int fc1_w, fc1_b, fc2_w, fc2_b;
    int out_w[FM_MAX_TASKS], out_b[FM_MAX_TASKS];
} FmHeads;

typedef struct {
    float *a1;      /* (B, hidden) W1 h0 + b1 */
    float *g1;      /* (B, hidden) Dropout(GELU(a1)) */
    uint8_t *keep;  /* (B * hidden) */
    int dropped;
    float *h1;      /* (B, P) */
    float *logits;  /* (B, n_labels); columns of no task are 0 */
    float *pred;    /* (B, n_labels); columns of no task are NaN */
    float *dlogits; /* (B, n_labels) d(task loss)/d logits, filled by fm_heads_loss */
    /* scratch */
    float *dh1, *dg1, *da1; /* (B, P), (B, hidden), (B, hidden) */
} FmHeadsBuffers;

/* Per-task loss values of the last fm_heads_loss. */
typedef struct {
    double total;              /* sum_t weight_t loss[t] */
    double loss[FM_MAX_TASKS]; /* unweighted, mean over known labels (0 when none) */
    int known[FM_MAX_TASKS];   /* known labels of each task in the batch */
} FmTaskLosses;

/* Checks the tasks with FM_ERR_CONFIG naming the task: 1 to FM_MAX_TASKS tasks, unique names
 * of letters, digits and _ (not "mlp"), known kinds, columns inside [0, n_labels) and disjoint,
 * n = 1 for binary and regression, weight >= 0, pos_weight > 0, huber_delta >= 0. */
FmStatus fm_heads_check_tasks(int n_labels, int n_tasks, const FmTaskConfig *tasks, FmError *err);

/* Checks the sizes and the tasks (FM_ERR_CONFIG) and declares the tensors. */
FmStatus fm_heads_declare(FmHeads *heads, int P, int hidden, float dropout, int n_labels, int n_tasks,
                          const FmTaskConfig *tasks, FmParams *params, FmError *err);
void fm_heads_init(const FmHeads *heads, FmParams *params, FmRng *rng);
void fm_heads_layout(FmHeadsBuffers *buf, FmLayout *l, const FmHeads *heads, int max_B);

/* Logits and predictions of h0 (B, P). training != 0 applies dropout from `rng`. */
void fm_heads_forward(const FmHeads *heads, const FmParams *params, FmHeadsBuffers *buf, const float *h0, int B,
                      int training, FmRng *rng);

/* The task losses of the last forward against label (B, n_labels) where label_mask is 1, and
 * buf->dlogits, the gradient of losses->total. */
void fm_heads_loss(const FmHeads *heads, FmHeadsBuffers *buf, const float *label, const uint8_t *label_mask,
                   int B, FmTaskLosses *losses);

/* Accumulates params->grad and dh0 (B, P) from buf->dlogits. */
void fm_heads_backward(const FmHeads *heads, FmParams *params, FmHeadsBuffers *buf, float *dh0, const float *h0,
                       int B);

#endif
