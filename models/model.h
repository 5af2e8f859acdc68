/* The FuseMoE model (BRIEF sections 2 to 4): per-modality encoders, token embeddings, the
 * fusion stack, pooling and task heads, forward and backward over an FmBatch.
 *
 * Tokens. Modality m gives T_m tokens per stay: Q for SERIES, EVENTS and IMAGES, and for STATIC
 * 1 (default) or Q (static_tokens). A stay's T = sum_m T_m tokens are its modalities' tokens in
 * the configuration's order. Token (m, r) of a stay is
 *     (modality present ? Z_m[r] : missing_m) + type_m + position_r
 * with Z_m the encoder's output, missing_m a learned vector per modality that stands in for an
 * absent modality, type_m a learned vector per modality and position_r a learned vector per
 * reference time (a single static token has no position). An absent modality's encoder never
 * runs for that stay, so nothing of it but missing_m reaches the output; the missing
 * embedding is how attention and routing tell an absent modality from a present one.
 *
 * Fusion. L layers (models/fusion.h) over each stay's T tokens: cross-modal self-attention
 * and a per-token MoE whose routers know each token's modality; then a final LayerNorm.
 *
 * Pooling and heads. Mean pooling (default): the mean of the final tokens of the stay's
 * present modalities (all tokens when none is present), width D. Last pooling (the paper's):
 * each modality's last token (its last reference time), concatenated, width M*D. Then the
 * residual MLP and task heads of models/heads.h.
 *
 * Loss = sum_t weight_t task_t + balance_coef * sum_layers balance + entropy_coef *
 * sum_layers entropy, the auxiliary terms from models/moe.h. On a training step where some
 * layers compete (CompeteSMoE, fm_model_set_competition) those layers' MoEs run in competition
 * mode and contribute router_coef L_R + diversity_coef L_div + balance_coef (competition) from
 * models/moe_compete.h instead of their balance and entropy terms.
 *
 * Parameter names (all in one FmParams, see the README for the table): "time2vec.w/b",
 * "encoder.<modality>.…", "embedding.type" (M, D), "embedding.missing" (M, D),
 * "embedding.position" (Q, D), "fusion.<l>.…", "fusion.norm.weight/bias", "head.…". */
#ifndef FM_MODEL_H
#define FM_MODEL_H

#include <stdint.h>

#include "models/encoder.h"
#include "models/fusion.h"
#include "models/heads.h"
#include "models/moe.h"
#include "models/moe_compete.h"
#include "models/moe_diagnostics.h"
#include "preprocessing/batch.h"
#include "src/error.h"
#include "src/params.h"
#include "src/rng.h"

#define FM_MODEL_MAX_MODALITIES FM_MOE_MAX_MODALITIES
#define FM_MODEL_MAX_LAYERS 16
#define FM_MODALITY_NAME_MAX 32

typedef enum { FM_POOL_MEAN, FM_POOL_LAST } FmPooling;

typedef struct {
    char name[FM_MODALITY_NAME_MAX]; /* [A-Za-z0-9_], unique; part of the parameter names */
    FmModalityKind kind;
    int C;          /* as FmBatchModality.C: channels, item width, or S*S pixels */
    int imputation; /* SERIES: UTDE branch and gate (default 1) */
    int patch;      /* IMAGES: patch side (default 8) */
    int patch_dim;  /* IMAGES: patch embedding width (default 64) */
    int patch_gelu; /* IMAGES: GELU after the patch projection (default 0: the brief's linear map) */
} FmModalityConfig;

typedef struct {
    int M;
    FmModalityConfig mod[FM_MODEL_MAX_MODALITIES];
    int D;             /* model width (128) */
    int Q;             /* reference times (48) */
    int H;             /* mTAND heads (8) */
    int DT;            /* time-embedding width (64) */
    int layers;        /* fusion layers (3) */
    int attn_heads;    /* self-attention heads (8) */
    int E, K, hidden;  /* experts (16), experts per token (4), expert hidden width (512) */
    FmGate gate;       /* FM_GATE_LAPLACE */
    FmRouter router;   /* FM_ROUTER_PER_MODALITY */
    int noisy;         /* noisy top-k in training (1) */
    float dropout;     /* fusion residuals, experts, head MLP (0.1) */
    float balance_coef; /* load-balancing loss (0.01) */
    float entropy_coef; /* per-modality entropy regulariser (0.01) */
    int static_tokens; /* tokens of a STATIC modality: 1 (default) or Q */
    FmPooling pooling; /* FM_POOL_MEAN */
    int head_hidden;   /* residual MLP hidden width (128) */
    int n_labels;      /* label columns of the batches */
    int n_tasks;
    FmTaskConfig task[FM_MAX_TASKS];
} FmModelConfig;

/* The defaults above, with no modality and no task yet. */
FmModelConfig fm_model_config_default(void);

/* Appends a modality (with its kind's defaults) or a task (weight 1, pos_weight 1, MSE).
 * FM_ERR_CONFIG when full or the name is bad. The returned pointer (may be NULL) lets the
 * caller adjust the new entry. */
FmStatus fm_model_config_add_modality(FmModelConfig *cfg, const char *name, FmModalityKind kind, int C,
                                      FmModalityConfig **added, FmError *err);
FmStatus fm_model_config_add_task(FmModelConfig *cfg, const char *name, FmTaskKind kind, int label0, int n,
                                  FmTaskConfig **added, FmError *err);

/* Checks every size and option (FM_ERR_CONFIG naming the bad one). */
FmStatus fm_model_config_check(const FmModelConfig *cfg, FmError *err);

/* Names of the options as configuration files and the model file spell them ("laplace",
 * "gaussian", "softmax"; "joint", "per_modality", "disjoint"; "binary", "regression",
 * "multilabel"; "mean", "last"), and their parsers, which return 0 on success and -1 for an
 * unknown name. Modality kinds: fm_modality_kind_name / _parse (preprocessing/modality.h). */
const char *fm_model_gate_name(FmGate gate);
const char *fm_model_router_name(FmRouter router);
const char *fm_model_task_kind_name(FmTaskKind kind);
const char *fm_model_pooling_name(FmPooling pooling);
int fm_model_gate_parse(const char *s, FmGate *gate);
int fm_model_router_parse(const char *s, FmRouter *router);
int fm_model_task_kind_parse(const char *s, FmTaskKind *kind);
int fm_model_pooling_parse(const char *s, FmPooling *pooling);

/* Tokens per stay and the first token of each modality. */
int fm_model_config_tokens(const FmModelConfig *cfg, int *first, int *count);

/* The model: its configuration, its parameters and the ids of its tensors. The fields are for
 * the model's own code and for inspection; build it with fm_model_create. */
typedef struct {
    FmModelConfig cfg;
    FmParams params;
    int T;                                /* tokens per stay */
    int tok_first[FM_MODEL_MAX_MODALITIES]; /* first token of each modality */
    int tok_count[FM_MODEL_MAX_MODALITIES]; /* tokens of each modality */
    int pooled;                           /* width of the pooled vector: D or M*D */
    int t2v_w, t2v_b;                     /* "time2vec.w", "time2vec.b" (DT) */
    FmEncoder enc[FM_MODEL_MAX_MODALITIES];
    int emb_type, emb_missing, emb_pos;
    FmFusionLayer layer[FM_MODEL_MAX_LAYERS];
    int norm_w, norm_b;
    FmHeads heads;
} FmModel;

/* Checks `cfg`, declares every tensor and allocates the parameter arenas (with Adam's when
 * with_optimizer != 0), all zero. *model is NULL on failure; nothing is leaked. */
FmStatus fm_model_create(FmModel **model, const FmModelConfig *cfg, int with_optimizer, FmError *err);

/* NULL is accepted. */
void fm_model_free(FmModel *model);

/* Initialises every parameter from `seed` (each part from its own split stream). */
void fm_model_init(FmModel *model, uint64_t seed);

/* The largest batch a workspace serves. */
typedef struct {
    int B;                              /* stays */
    int max_L[FM_MODEL_MAX_MODALITIES]; /* observations per stay of each modality (STATIC: 1) */
} FmModelShape;

/* Activations and scratch of forward and backward for batches up to `max`, allocated once
 * (so a training step allocates nothing). Owned by the caller; one per thread of work. */
typedef struct FmModelWorkspace FmModelWorkspace;

FmStatus fm_model_workspace_create(FmModelWorkspace **ws, const FmModel *model, const FmModelShape *max,
                                   FmError *err);
/* NULL is accepted. */
void fm_model_workspace_free(FmModelWorkspace *ws);

/* Loss values of the last forward. */
typedef struct {
    double total;            /* task + balance_coef * balance + entropy_coef * entropy */
    double task;             /* sum_t weight_t task_loss[t] */
    double task_loss[FM_MAX_TASKS];
    int task_known[FM_MAX_TASKS]; /* known labels per task in the batch */
    double balance;          /* sum over layers of the balance loss (unweighted) */
    double entropy;          /* sum over layers of the entropy regulariser (unweighted) */
    /* Competition (training forwards with fm_model_set_competition): the number of layers that
     * competed and the sums over them of their competition losses (unweighted); those layers
     * add nothing to balance and entropy above. total includes the weighted sums. */
    int competed;
    double compete_router, compete_diversity, compete_balance;
} FmModelLoss;

/* Runs the model on `batch`. training != 0: dropout and routing noise from streams split off
 * `rng` (same rng state, same result); training == 0 is deterministic (rng may be NULL; so may
 * it in training when the configuration has neither dropout nor noise).
 * With labels (batch->label and label_mask non-NULL) the losses are computed into `loss`
 * (may be NULL) and the backward may follow; without, only predictions. The forward copies
 * what the backward needs: the batch may change or go away afterwards.
 * Errors: FM_ERR_ARG for a batch that does not match the model or the workspace (naming the
 * modality and stay), FM_ERR_NUMERIC for a non-finite loss. */
FmStatus fm_model_forward(const FmModel *model, FmModelWorkspace *ws, const FmBatch *batch, int training,
                          FmRng *rng, FmModelLoss *loss, FmError *err);

/* Predictions of the last forward, (B, n_labels): probabilities for binary and multi-label
 * tasks, values for regression; NaN in columns no task uses. Owned by the workspace. */
const float *fm_model_predictions(const FmModelWorkspace *ws);

/* The pooled representation of the last forward, (B, model->pooled). */
const float *fm_model_pooled(const FmModelWorkspace *ws);

/* Accumulates (+=) into model->params.grad the gradient of the last forward's total loss.
 * Needs a forward with labels on this workspace just before. */
void fm_model_backward(FmModel *model, FmModelWorkspace *ws);

/* A workspace as fm_model_workspace_create's whose MoE caches can also compete
 * (fm_moe_cache_create_compete: about B T E_r D floats more per layer), for training with
 * fm_model_set_competition and for fm_model_probe_experts. */
FmStatus fm_model_workspace_create_compete(FmModelWorkspace **ws, const FmModel *model, const FmModelShape *max,
                                           FmError *err);

/* Which fusion layers run their MoE in competition mode in the following training forwards on
 * this workspace (until the next call): mask (model->cfg.layers) with 1 for a competing layer,
 * or NULL for none; settings (NULL: fm_compete_settings_default) give the losses' coefficients.
 * Evaluation forwards never compete. A trainer draws the mask per step from a
 * models/compete_schedule.h schedule. FM_ERR_ARG when a layer is set on a workspace that
 * cannot compete. */
FmStatus fm_model_set_competition(FmModelWorkspace *ws, const FmModel *model, const uint8_t *mask,
                                  const FmCompeteSettings *settings, FmError *err);

/* Collapse diagnostics of every fusion layer's MoE on a probe batch (labels not needed): an
 * evaluation forward of `batch`, then, per layer, every expert of each token's router on the
 * tokens that entered that layer's MoE (models/moe_diagnostics.h): probe[l].similarity (mean
 * pairwise cosine of the experts' outputs) and probe[l].agreement (router top K against
 * competition top K). Needs a workspace from fm_model_workspace_create_compete; replaces the
 * last forward (no backward may follow). Errors as fm_model_forward. */
FmStatus fm_model_probe_experts(const FmModel *model, FmModelWorkspace *ws, const FmBatch *batch, FmMoeProbe *probe,
                                FmError *err);

/* Tokens routed to each expert by layer `layer` in the last forward, per modality: (M, E),
 * row-major, owned by the workspace. Each row m sums to K times modality m's tokens in the
 * batch (disjoint routers: only the modality's own E/M experts are non-zero). */
const int *fm_model_expert_counts(const FmModelWorkspace *ws, int layer);

/* The tokens that entered layer `layer`'s MoE in the last forward on `ws` (the layer's second
 * LayerNorm of its tokens): (*n_tokens, model->cfg.D) floats, *n_tokens being the batch's stays
 * times model->T, and each token's modality in *modality (*n_tokens ints). Owned by the
 * workspace, valid until its next forward. For diagnostics that run a layer's experts on
 * those tokens in a MoE cache of their own (src/evaluate_experts.h), so the workspace needs
 * no competition-capable caches. */
const float *fm_model_moe_input(const FmModelWorkspace *ws, const FmModel *model, int layer, const int **modality,
                                int *n_tokens);

#endif
