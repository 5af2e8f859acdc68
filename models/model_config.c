/* FmModelConfig: defaults, builders and validation. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/model.h"

FmModelConfig fm_model_config_default(void) {
    FmModelConfig c;
    memset(&c, 0, sizeof c);
    c.D = 128;
    c.Q = 48;
    c.H = 8;
    c.DT = 64;
    c.layers = 3;
    c.attn_heads = 8;
    c.E = 16;
    c.K = 4;
    c.hidden = 512;
    c.gate = FM_GATE_LAPLACE;
    c.router = FM_ROUTER_PER_MODALITY;
    c.noisy = 1;
    c.dropout = 0.1f;
    c.balance_coef = 0.01f;
    c.entropy_coef = 0.01f;
    c.static_tokens = 1;
    c.pooling = FM_POOL_MEAN;
    c.head_hidden = 128;
    return c;
}

static const char *const GATE_NAMES[] = {"laplace", "gaussian", "softmax"};
static const char *const ROUTER_NAMES[] = {"joint", "per_modality", "disjoint"};
static const char *const TASK_NAMES[] = {"binary", "regression", "multilabel"};
static const char *const POOLING_NAMES[] = {"mean", "last"};

#define NAME_OF(table, v) ((int)(v) >= 0 && (size_t)(v) < sizeof table / sizeof *table ? table[(int)(v)] : "unknown")

static int parse(const char *const *table, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(table[i], s) == 0) return i;
    return -1;
}

#define PARSE(table, s, out, type)                                          \
    do {                                                                    \
        int i = parse(table, (int)(sizeof table / sizeof *table), s);       \
        if (i < 0) return -1;                                               \
        *(out) = (type)i;                                                   \
        return 0;                                                           \
    } while (0)

const char *fm_model_gate_name(FmGate gate) { return NAME_OF(GATE_NAMES, gate); }
const char *fm_model_router_name(FmRouter router) { return NAME_OF(ROUTER_NAMES, router); }
const char *fm_model_task_kind_name(FmTaskKind kind) { return NAME_OF(TASK_NAMES, kind); }
const char *fm_model_pooling_name(FmPooling pooling) { return NAME_OF(POOLING_NAMES, pooling); }
int fm_model_gate_parse(const char *s, FmGate *gate) { PARSE(GATE_NAMES, s, gate, FmGate); }
int fm_model_router_parse(const char *s, FmRouter *router) { PARSE(ROUTER_NAMES, s, router, FmRouter); }
int fm_model_task_kind_parse(const char *s, FmTaskKind *kind) { PARSE(TASK_NAMES, s, kind, FmTaskKind); }
int fm_model_pooling_parse(const char *s, FmPooling *pooling) { PARSE(POOLING_NAMES, s, pooling, FmPooling); }

static int valid_name(const char *s, size_t cap) {
    size_t n = strnlen(s, cap);
    if (n == 0 || n >= cap) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') || *s == '_')) return 0;
    return 1;
}

FmStatus fm_model_config_add_modality(FmModelConfig *cfg, const char *name, FmModalityKind kind, int C,
                                      FmModalityConfig **added, FmError *err) {
    if (cfg->M >= FM_MODEL_MAX_MODALITIES)
        return FM_FAIL(err, FM_ERR_CONFIG, name, "more than %d modalities", FM_MODEL_MAX_MODALITIES);
    if (!valid_name(name, FM_MODALITY_NAME_MAX))
        return FM_FAIL(err, FM_ERR_CONFIG, NULL, "modality name \"%s\" must be 1 to %d letters, digits or _", name,
                       FM_MODALITY_NAME_MAX - 1);
    FmModalityConfig *m = &cfg->mod[cfg->M++];
    memset(m, 0, sizeof *m);
    snprintf(m->name, sizeof m->name, "%s", name);
    m->kind = kind;
    m->C = C;
    m->imputation = 1;
    m->patch = 8;
    m->patch_dim = 64;
    m->patch_gelu = 0;
    if (added) *added = m;
    return FM_OK;
}

FmStatus fm_model_config_add_task(FmModelConfig *cfg, const char *name, FmTaskKind kind, int label0, int n,
                                  FmTaskConfig **added, FmError *err) {
    if (cfg->n_tasks >= FM_MAX_TASKS) return FM_FAIL(err, FM_ERR_CONFIG, name, "more than %d tasks", FM_MAX_TASKS);
    if (!valid_name(name, FM_TASK_NAME_MAX))
        return FM_FAIL(err, FM_ERR_CONFIG, NULL, "task name \"%s\" must be 1 to %d letters, digits or _", name,
                       FM_TASK_NAME_MAX - 1);
    FmTaskConfig *t = &cfg->task[cfg->n_tasks++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->kind = kind;
    t->label0 = label0;
    t->n = n;
    t->weight = 1.0f;
    t->pos_weight = 1.0f;
    t->huber_delta = 0.0f;
    if (added) *added = t;
    return FM_OK;
}

int fm_model_config_tokens(const FmModelConfig *cfg, int *first, int *count) {
    int T = 0;
    for (int m = 0; m < cfg->M; m++) {
        int n = cfg->mod[m].kind == FM_MODALITY_STATIC ? cfg->static_tokens : cfg->Q;
        if (first) first[m] = T;
        if (count) count[m] = n;
        T += n;
    }
    return T;
}

static int coef_ok(float x) { return isfinite(x) && x >= 0.0f; }

FmStatus fm_model_config_check(const FmModelConfig *c, FmError *err) {
    if (c->M < 1 || c->M > FM_MODEL_MAX_MODALITIES)
        return FM_FAIL(err, FM_ERR_CONFIG, "model", "%d modalities, expected 1 to %d", c->M, FM_MODEL_MAX_MODALITIES);
    for (int m = 0; m < c->M; m++) {
        const FmModalityConfig *mc = &c->mod[m];
        if (!valid_name(mc->name, FM_MODALITY_NAME_MAX))
            return FM_FAIL(err, FM_ERR_CONFIG, "model", "modality %d: name \"%.*s\" must be 1 to %d letters, digits or _",
                           m, FM_MODALITY_NAME_MAX - 1, mc->name, FM_MODALITY_NAME_MAX - 1);
        for (int u = 0; u < m; u++)
            if (strcmp(c->mod[u].name, mc->name) == 0)
                return FM_FAIL(err, FM_ERR_CONFIG, mc->name, "modality name used twice");
        if (mc->kind != FM_MODALITY_SERIES && mc->kind != FM_MODALITY_EVENTS && mc->kind != FM_MODALITY_IMAGES &&
            mc->kind != FM_MODALITY_STATIC)
            return FM_FAIL(err, FM_ERR_CONFIG, mc->name, "unknown modality kind %d", (int)mc->kind);
        if (mc->C < 1) return FM_FAIL(err, FM_ERR_CONFIG, mc->name, "%d channels, expected >= 1", mc->C);
        if (mc->kind == FM_MODALITY_IMAGES) {
            int S = (int)lrint(sqrt((double)mc->C));
            if (S * S != mc->C)
                return FM_FAIL(err, FM_ERR_CONFIG, mc->name, "image width %d is not the square of a side", mc->C);
            if (mc->patch < 1 || S % mc->patch != 0 || mc->patch_dim < 1)
                return FM_FAIL(err, FM_ERR_CONFIG, mc->name,
                               "patch side %d must divide the image side %d; patch width %d must be >= 1", mc->patch,
                               S, mc->patch_dim);
        }
    }
    if (c->D < 1 || c->Q < 2 || c->H < 1 || c->DT < 1 || c->DT % c->H != 0)
        return FM_FAIL(err, FM_ERR_CONFIG, "model",
                       "need D >= 1, Q >= 2, and DT divisible by the mTAND heads H (D %d, Q %d, H %d, DT %d)", c->D,
                       c->Q, c->H, c->DT);
    if (c->layers < 1 || c->layers > FM_MODEL_MAX_LAYERS)
        return FM_FAIL(err, FM_ERR_CONFIG, "model", "%d fusion layers, expected 1 to %d", c->layers,
                       FM_MODEL_MAX_LAYERS);
    if (c->attn_heads < 1 || c->D % c->attn_heads != 0)
        return FM_FAIL(err, FM_ERR_CONFIG, "model", "width %d is not divisible by the attention heads %d", c->D,
                       c->attn_heads);
    if (c->E < 1 || c->K < 1 || c->K > c->E || c->hidden < 1)
        return FM_FAIL(err, FM_ERR_CONFIG, "model", "need 1 <= K <= E and hidden >= 1 (E %d, K %d, hidden %d)", c->E,
                       c->K, c->hidden);
    if (c->gate != FM_GATE_LAPLACE && c->gate != FM_GATE_GAUSSIAN && c->gate != FM_GATE_SOFTMAX)
        return FM_FAIL(err, FM_ERR_CONFIG, "model", "unknown gate %d", (int)c->gate);
    if (c->router != FM_ROUTER_JOINT && c->router != FM_ROUTER_PER_MODALITY && c->router != FM_ROUTER_DISJOINT)
        return FM_FAIL(err, FM_ERR_CONFIG, "model", "unknown router %d", (int)c->router);
    if (c->router == FM_ROUTER_DISJOINT && (c->E % c->M != 0 || c->K > c->E / c->M))
        return FM_FAIL(err, FM_ERR_CONFIG, "model",
                       "disjoint routers need E divisible by the %d modalities and K <= E/M (E %d, K %d)", c->M, c->E,
                       c->K);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return FM_FAIL(err, FM_ERR_CONFIG, "model", "dropout %g not in [0, 1)", (double)c->dropout);
    if (!coef_ok(c->balance_coef) || !coef_ok(c->entropy_coef))
        return FM_FAIL(err, FM_ERR_CONFIG, "model", "balance_coef %g and entropy_coef %g must be finite and >= 0",
                       (double)c->balance_coef, (double)c->entropy_coef);
    if (c->static_tokens != 1 && c->static_tokens != c->Q)
        return FM_FAIL(err, FM_ERR_CONFIG, "model", "static_tokens %d must be 1 or Q (%d)", c->static_tokens, c->Q);
    if (c->pooling != FM_POOL_MEAN && c->pooling != FM_POOL_LAST)
        return FM_FAIL(err, FM_ERR_CONFIG, "model", "unknown pooling %d", (int)c->pooling);
    if (c->head_hidden < 1) return FM_FAIL(err, FM_ERR_CONFIG, "model", "head_hidden %d must be >= 1", c->head_hidden);
    return fm_heads_check_tasks(c->n_labels, c->n_tasks, c->task, err);
}
