#include "src/config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/strbuf.h"

/* The schema. One line per key:
 *   section, key, type, default, min, max, allowed values, description.
 * Bounds: INT/FLOAT/FLOAT_LIST values lie in [min, max]; LIST item counts lie in [min, max]. */
#define UNBOUNDED 0, 0
/* One key, one line, so that the table reads as a table (longer than the column limit). */
/* clang-format off */
static const FmConfigKey SCHEMA[] = {
    {"data", "cohort", FM_CFG_STRING, "", UNBOUNDED, NULL, "Cohort file to read (a path, relative to the working directory); empty = not set"},
    {"data", "split", FM_CFG_INT, "0", 0, 9999, NULL, "Index of the cohort's train/validation/test split to use"},
    {"data", "tasks", FM_CFG_LIST, "mortality", 1, 4, "mortality|los_binary|los_regression|phenotypes", "Tasks trained and evaluated together"},
    {"data", "modalities", FM_CFG_LIST, "", 0, 64, NULL, "Modalities to use, by name; empty = every modality in the cohort"},
    {"data", "los_threshold_days", FM_CFG_FLOAT, "7", 0.5, 365, NULL, "Length of stay (days) above which los_binary is positive"},

    {"model", "d_model", FM_CFG_INT, "128", 8, 4096, NULL, "Width d of every token"},
    {"model", "ref_points", FM_CFG_INT, "48", 1, 1024, NULL, "Reference times Q per modality (mTAND queries)"},
    {"model", "heads", FM_CFG_INT, "8", 1, 64, NULL, "Attention heads H; must divide d_model and time_dim"},
    {"model", "time_dim", FM_CFG_INT, "64", 2, 1024, NULL, "Width d_t of the Time2Vec time embedding"},
    {"model", "layers", FM_CFG_INT, "3", 1, 32, NULL, "FuseMoE layers (attention + mixture of experts)"},
    {"model", "experts", FM_CFG_INT, "16", 1, 1024, NULL, "Experts E per mixture-of-experts layer"},
    {"model", "top_k", FM_CFG_INT, "4", 1, 1024, NULL, "Experts k each token is routed to; at most experts"},
    {"model", "expert_hidden", FM_CFG_INT, "512", 1, 65536, NULL, "Hidden width of each expert's feed-forward network"},
    {"model", "gate", FM_CFG_ENUM, "laplace", UNBOUNDED, "laplace|gaussian|softmax", "Gating logit per expert: minus the distance to its centre (laplace), minus the squared distance (gaussian), or the dot product (softmax)"},
    {"model", "router", FM_CFG_ENUM, "joint", UNBOUNDED, "joint|per_modality|disjoint", "One router for all tokens, one per modality over shared experts, or per-modality experts"},
    {"model", "noisy_gating", FM_CFG_BOOL, "true", UNBOUNDED, NULL, "Add noise to the gating logits in training (noisy top-k)"},
    {"model", "dropout", FM_CFG_FLOAT, "0.1", 0, 0.9, NULL, "Dropout probability"},
    {"model", "balance_coef", FM_CFG_FLOAT, "0.01", 0, 100, NULL, "Coefficient of the load-balancing loss"},
    {"model", "entropy_coef", FM_CFG_FLOAT, "0", 0, 100, NULL, "Coefficient of the per-modality routing entropy loss"},
    {"model", "pooling", FM_CFG_ENUM, "mean", UNBOUNDED, "mean|last", "Pooling of the fused tokens before the heads: mean over present modalities, or last reference time"},
    {"model", "head_hidden", FM_CFG_INT, "128", 1, 65536, NULL, "Hidden width of the task heads"},
    {"model", "kind", FM_CFG_ENUM, "fusemoe", UNBOUNDED, "fusemoe|logreg|saps_i", "The model: FuseMoE, or a clinical baseline: logreg (logistic/ridge regression on per-variable summaries of data.modalities) or saps_i (the SAPS-I admission score, calibrated by logistic/linear regression)"},
    {"model", "baseline_l2", FM_CFG_FLOAT_LIST, "1e-4, 1e-3, 1e-2, 1e-1", 0, 100, NULL, "logreg: L2 penalties tried; the one with the best validation train.select_metric is kept"},

    {"train", "epochs", FM_CFG_INT, "8", 1, 10000, NULL, "Passes over the training set"},
    {"train", "batch_size", FM_CFG_INT, "32", 1, 65536, NULL, "Stays per forward/backward pass"},
    {"train", "accumulation", FM_CFG_INT, "1", 1, 65536, NULL, "Batches whose gradients are averaged per optimiser step (effective batch = batch_size x accumulation)"},
    {"train", "lr", FM_CFG_FLOAT, "4e-4", 1e-8, 1, NULL, "Adam learning rate (peak, after warm-up)"},
    {"train", "weight_decay", FM_CFG_FLOAT, "0", 0, 1, NULL, "Decoupled weight decay (AdamW); 0 = plain Adam"},
    {"train", "schedule", FM_CFG_ENUM, "cosine", UNBOUNDED, "constant|cosine", "Learning-rate schedule after warm-up"},
    {"train", "warmup_fraction", FM_CFG_FLOAT, "0.05", 0, 1, NULL, "Fraction of the optimiser steps with linear warm-up"},
    {"train", "clip_norm", FM_CFG_FLOAT, "1.0", 0, 1e6, NULL, "Clip the global gradient norm to this value; 0 = off"},
    {"train", "patience", FM_CFG_INT, "3", 0, 10000, NULL, "Epochs without validation improvement before stopping; 0 = no early stopping"},
    {"train", "select_metric", FM_CFG_ENUM, "auprc", UNBOUNDED, "auroc|auprc|f1|loss", "Validation metric that selects the best epoch: the mean over the classification tasks (multi-label: macro), or the validation loss"},
    {"train", "class_weighting", FM_CFG_ENUM, "none", UNBOUNDED, "none|balanced", "Weight the positives of binary and multi-label losses by negatives/positives in the training stays (balanced) or not"},
    {"train", "seed", FM_CFG_INT, "1", 0, 2147483647, NULL, "Seed of every random stream of the run"},
    {"train", "threads", FM_CFG_INT, "1", 1, 256, NULL, "OpenBLAS threads; runs are bit-identical only at the same thread count"},
    {"train", "task_weights", FM_CFG_FLOAT_LIST, "", 0, 1e6, NULL, "Loss weight per task, in the order of data.tasks; empty = equal weights"},
    {"train", "train_fraction", FM_CFG_FLOAT, "1", 0.001, 1, NULL, "Fraction of the split's training stays used, drawn stratified by the first binary label and seeded by train.seed"},
    {"train", "checkpoint_every", FM_CFG_INT, "0", 0, 100000000, NULL, "Optimiser steps between checkpoints within an epoch; 0 = at the end of each epoch only"},
    {"train", "report_part", FM_CFG_ENUM, "test", UNBOUNDED, "test|val", "Part the selected model is evaluated on when training ends (predictions.csv, metrics.json): test, or val for tuning runs, which then never score the test part"},
    {"train", "shards", FM_CFG_INT, "1", 1, 65536, NULL, "Fixed shards of the training stays: each epoch shuffles within shards and interleaves their batches; data-parallel ranks load only their shards when the rank count divides it (1 = one shuffle of all stays)"},

    {"eval", "bootstrap", FM_CFG_INT, "1000", 0, 100000, NULL, "Bootstrap replicates for metric confidence intervals; 0 = none"},
    {"eval", "missing_rate", FM_CFG_FLOAT, "0.0", 0, 1, NULL, "Probability that each present modality of a test stay is removed at evaluation (seeded; at least one modality is kept)"},

    {"competition", "enabled", FM_CFG_BOOL, "false", UNBOUNDED, NULL, "Train the routers by competition (CompeteSMoE)"},
    {"competition", "warmup_fraction", FM_CFG_FLOAT, "0.05", 0, 1, NULL, "Fraction of the steps before any competition"},
    {"competition", "omega", FM_CFG_FLOAT, "0.05", 0, 1, NULL, "Probability that a layer competes on a step"},
    {"competition", "max_layers", FM_CFG_INT, "3", 1, 32, NULL, "Most layers that compete on one step"},
    {"competition", "router_coef", FM_CFG_FLOAT, "0.01", 0, 100, NULL, "Coefficient of the router distillation loss"},
    {"competition", "diversity_coef", FM_CFG_FLOAT, "0.01", 0, 100, NULL, "Coefficient of the expert diversity loss on competition steps"},
    {"competition", "balance_coef", FM_CFG_FLOAT, "0.01", 0, 100, NULL, "Coefficient of the balance loss on the competition assignment"},
};
/* clang-format on */
#define N_KEYS ((int)(sizeof SCHEMA / sizeof *SCHEMA))

/* The resolved value of one key. `text` is the canonical form written back. */
struct FmConfigValue {
    char *text;
    char *where; /* NULL: the default */
    long i;
    double f;
    int b;
    int choice; /* ENUM: index among the allowed names */
    size_t n_items;
    char **items; /* LIST */
    double *nums; /* FLOAT_LIST */
};

const FmConfigKey *fm_config_schema(int *n_keys) {
    *n_keys = N_KEYS;
    return SCHEMA;
}

/* ---------------------------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------------------------- */

static void value_clear(FmConfigValue *v) {
    fm_free(v->text);
    fm_free(v->where);
    for (size_t k = 0; k < v->n_items && v->items; k++)
        fm_free(v->items[k]);
    fm_free(v->items);
    fm_free(v->nums);
    memset(v, 0, sizeof *v);
}

static const char *type_name(FmConfigType t) {
    switch (t) {
    case FM_CFG_INT: return "int";
    case FM_CFG_FLOAT: return "float";
    case FM_CFG_BOOL: return "bool";
    case FM_CFG_STRING: return "string";
    case FM_CFG_ENUM: return "enum";
    case FM_CFG_LIST: return "list";
    case FM_CFG_FLOAT_LIST: return "list of floats";
    }
    return "?";
}

/* Index of `name` (len characters) in "a|b|c", or -1. */
static int allowed_index(const char *allowed, const char *name, size_t len) {
    int idx = 0;
    for (const char *p = allowed; *p; idx++) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && strncmp(p, name, len) == 0) return idx;
        if (!bar) break;
        p = bar + 1;
    }
    return -1;
}

/* "a|b|c" -> "a, b, c" appended to b. */
static void append_allowed(FmStrBuf *b, const char *allowed) {
    for (const char *p = allowed; *p; p++)
        fm_strbuf_append_n(b, *p == '|' ? ", " : p, *p == '|' ? 2 : 1);
}

/* Parses a whole string as a finite double; 0 when it is not one. */
static int parse_double(const char *s, double *out) {
    char *end;
    errno = 0;
    double x = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(x)) return 0;
    *out = x;
    return 1;
}

static const char *trim_copy(const char *s, size_t len, char *buf, size_t cap) {
    while (len && isspace((unsigned char)*s))
        s++, len--;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    if (len >= cap) len = cap - 1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return buf;
}

static FmStatus nomem(FmError *err) {
    return FM_FAIL(err, FM_ERR_NOMEM, NULL, "configuration: out of memory");
}

/* Parses `text` as a value of key `k` into `v` (zeroed by the caller; freed by the caller on
 * failure). The message names no place: callers add it. */
static FmStatus parse_value(const FmConfigKey *k, const char *text, FmConfigValue *v, FmError *err) {
    char canon[FM_CONFIG_MAX_LINE + 64];
    /* The value must fit on its line "key = value" when written back. */
    size_t tlen = strlen(text), room = FM_CONFIG_MAX_LINE - strlen(k->key) - 3;
    if (tlen > room) return FM_FAIL(err, FM_ERR_CONFIG, NULL, "value longer than %zu characters", room);
    switch (k->type) {
    case FM_CFG_INT: {
        char *end;
        errno = 0;
        long x = strtol(text, &end, 10);
        if (end == text || *end || errno == ERANGE)
            return FM_FAIL(err, FM_ERR_CONFIG, NULL, "expected an integer, got \"%s\"", text);
        if ((double)x < k->min || (double)x > k->max)
            return FM_FAIL(err, FM_ERR_CONFIG, NULL, "%ld is out of range [%.15g, %.15g]", x, k->min, k->max);
        v->i = x;
        snprintf(canon, sizeof canon, "%ld", x);
        break;
    }
    case FM_CFG_FLOAT: {
        double x;
        if (!parse_double(text, &x))
            return FM_FAIL(err, FM_ERR_CONFIG, NULL, "expected a number, got \"%s\"", text);
        if (x < k->min || x > k->max)
            return FM_FAIL(err, FM_ERR_CONFIG, NULL, "%s is out of range [%.15g, %.15g]", text, k->min,
                           k->max);
        v->f = x;
        fm_strbuf_format_double(canon, sizeof canon, x);
        break;
    }
    case FM_CFG_BOOL: {
        static const char *const yes[] = {"true", "yes", "on", "1"}, *const no[] = {"false", "no", "off",
                                                                                    "0"};
        int found = -1;
        for (int j = 0; j < 4; j++) {
            if (strcasecmp(text, yes[j]) == 0) found = 1;
            if (strcasecmp(text, no[j]) == 0) found = 0;
        }
        if (found < 0) return FM_FAIL(err, FM_ERR_CONFIG, NULL, "expected true or false, got \"%s\"", text);
        v->b = found;
        snprintf(canon, sizeof canon, "%s", found ? "true" : "false");
        break;
    }
    case FM_CFG_STRING:
        for (const char *p = text; *p; p++)
            if (iscntrl((unsigned char)*p))
                return FM_FAIL(err, FM_ERR_CONFIG, NULL, "contains a control character");
        if (text[0] == ';' || text[0] == '#' || strstr(text, " ;") || strstr(text, "\t;"))
            return FM_FAIL(err, FM_ERR_CONFIG, NULL,
                           "\"%s\" would be read back as a comment (\";\" or \"#\")", text);
        if (tlen && (isspace((unsigned char)text[0]) || isspace((unsigned char)text[tlen - 1])))
            return FM_FAIL(err, FM_ERR_CONFIG, NULL, "leading or trailing spaces are not kept");
        snprintf(canon, sizeof canon, "%s", text);
        break;
    case FM_CFG_ENUM: {
        int idx = allowed_index(k->allowed, text, tlen);
        if (idx < 0) {
            FmStrBuf b;
            fm_strbuf_init(&b);
            append_allowed(&b, k->allowed);
            FmStatus st = FM_FAIL(err, FM_ERR_CONFIG, NULL, "\"%s\" is not one of %s", text,
                                  b.data ? b.data : k->allowed);
            fm_strbuf_free(&b);
            return st;
        }
        v->choice = idx;
        snprintf(canon, sizeof canon, "%s", text);
        break;
    }
    case FM_CFG_LIST:
    case FM_CFG_FLOAT_LIST: {
        /* Count the items, then parse each one. */
        size_t n = 0;
        int any = 0;
        for (const char *p = text; *p; p++)
            any |= !isspace((unsigned char)*p);
        if (any) {
            n = 1;
            for (const char *p = text; *p; p++)
                n += *p == ',';
        }
        if (k->type == FM_CFG_LIST && ((double)n < k->min || (double)n > k->max))
            return FM_FAIL(err, FM_ERR_CONFIG, NULL, "%zu items, expected between %.0f and %.0f", n, k->min,
                           k->max);
        if (n) {
            if (k->type == FM_CFG_LIST) {
                v->items = fm_calloc(n, sizeof *v->items);
                if (!v->items) return nomem(err);
            } else {
                v->nums = fm_calloc(n, sizeof *v->nums);
                if (!v->nums) return nomem(err);
            }
        }
        FmStrBuf b;
        fm_strbuf_init(&b);
        const char *p = text;
        for (size_t j = 0; j < n; j++) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            char item[FM_CONFIG_MAX_LINE + 1];
            trim_copy(p, len, item, sizeof item);
            p = comma ? comma + 1 : p + len;
            FmStatus st = FM_OK;
            if (!item[0]) {
                st = FM_FAIL(err, FM_ERR_CONFIG, NULL, "item %zu is empty", j + 1);
            } else if (k->type == FM_CFG_FLOAT_LIST) {
                double x;
                if (!parse_double(item, &x))
                    st = FM_FAIL(err, FM_ERR_CONFIG, NULL, "item %zu: expected a number, got \"%s\"", j + 1,
                                 item);
                else if (x < k->min || x > k->max)
                    st = FM_FAIL(err, FM_ERR_CONFIG, NULL, "item %zu: %s is out of range [%.15g, %.15g]",
                                 j + 1, item, k->min, k->max);
                else {
                    v->nums[j] = x;
                    if (j) fm_strbuf_append(&b, ", ");
                    fm_strbuf_append_double(&b, x);
                }
            } else {
                if (k->allowed && allowed_index(k->allowed, item, strlen(item)) < 0) {
                    FmStrBuf a;
                    fm_strbuf_init(&a);
                    append_allowed(&a, k->allowed);
                    st = FM_FAIL(err, FM_ERR_CONFIG, NULL, "\"%s\" is not one of %s", item,
                                 a.data ? a.data : k->allowed);
                    fm_strbuf_free(&a);
                } else if (strpbrk(item, ";#")) {
                    st = FM_FAIL(err, FM_ERR_CONFIG, NULL, "item \"%s\" contains \";\" or \"#\"", item);
                }
                for (size_t q = 0; q < j && st == FM_OK; q++)
                    if (strcmp(v->items[q], item) == 0)
                        st = FM_FAIL(err, FM_ERR_CONFIG, NULL, "\"%s\" is listed twice", item);
                if (st == FM_OK) {
                    v->items[j] = fm_strdup(item);
                    if (!v->items[j]) st = nomem(err);
                    fm_strbuf_appendf(&b, "%s%s", j ? ", " : "", item);
                }
            }
            if (st != FM_OK) {
                v->n_items = j; /* items[0..j) are owned */
                fm_strbuf_free(&b);
                return st;
            }
        }
        v->n_items = n;
        char *joined = fm_strbuf_take(&b);
        if (!joined) return nomem(err);
        v->text = joined;
        break;
    }
    }
    if (!v->text && !(v->text = fm_strdup(canon))) return nomem(err);
    /* The canonical form ("a, b" for "a,b", "1e+05" for "1e5") must fit on its line too. */
    if (strlen(v->text) > room)
        return FM_FAIL(err, FM_ERR_CONFIG, NULL, "value longer than %zu characters once written back", room);
    return FM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * The configuration
 * ------------------------------------------------------------------------------------------- */

static int key_index(const char *section, const char *key) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(SCHEMA[i].section, section) == 0 && strcmp(SCHEMA[i].key, key) == 0) return i;
    return -1;
}

static int section_known(const char *section) {
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(SCHEMA[i].section, section) == 0) return 1;
    return 0;
}

/* Index of a dotted "section.key", asserting that it exists (getters). */
static int find_dotted(const char *name) {
    const char *dot = strchr(name, '.');
    FM_ASSERT(dot != NULL);
    char section[64];
    FM_ASSERT((size_t)(dot - name) < sizeof section);
    memcpy(section, name, (size_t)(dot - name));
    section[dot - name] = '\0';
    int i = key_index(section, dot + 1);
    FM_ASSERT(i >= 0); /* the key must be in the schema */
    return i;
}

void fm_config_free(FmConfig *cfg) {
    if (!cfg) return;
    for (int i = 0; i < cfg->n && cfg->values; i++)
        value_clear(&cfg->values[i]);
    fm_free(cfg->values);
    cfg->values = NULL;
    cfg->n = 0;
}

FmStatus fm_config_init(FmConfig *cfg, FmError *err) {
    cfg->n = 0;
    cfg->values = fm_calloc(N_KEYS, sizeof *cfg->values);
    if (!cfg->values) return nomem(err);
    cfg->n = N_KEYS;
    for (int i = 0; i < N_KEYS; i++) {
        FmError e;
        FmStatus st = parse_value(&SCHEMA[i], SCHEMA[i].default_text, &cfg->values[i], &e);
        if (st == FM_ERR_NOMEM) {
            fm_config_free(cfg);
            return nomem(err);
        }
        FM_ASSERT(st == FM_OK); /* every default satisfies its own key's rules */
    }
    return FM_OK;
}

static FmStatus value_copy(FmConfigValue *d, const FmConfigValue *s) {
    *d = *s;
    d->text = d->where = NULL;
    d->items = NULL;
    d->nums = NULL;
    d->n_items = 0;
    if (!(d->text = fm_strdup(s->text))) return FM_ERR_NOMEM;
    if (s->where && !(d->where = fm_strdup(s->where))) return FM_ERR_NOMEM;
    if (s->items) {
        if (!(d->items = fm_calloc(s->n_items, sizeof *d->items))) return FM_ERR_NOMEM;
        for (size_t k = 0; k < s->n_items; k++) {
            d->n_items = k + 1;
            if (!(d->items[k] = fm_strdup(s->items[k]))) return FM_ERR_NOMEM;
        }
    }
    if (s->nums) {
        if (!(d->nums = fm_malloc_array(s->n_items, sizeof *d->nums))) return FM_ERR_NOMEM;
        memcpy(d->nums, s->nums, s->n_items * sizeof *d->nums);
    }
    d->n_items = s->n_items;
    return FM_OK;
}

FmStatus fm_config_copy(FmConfig *dst, const FmConfig *src, FmError *err) {
    dst->n = 0;
    dst->values = fm_calloc((size_t)src->n, sizeof *dst->values);
    if (!dst->values) return nomem(err);
    dst->n = src->n;
    for (int i = 0; i < src->n; i++)
        if (value_copy(&dst->values[i], &src->values[i]) != FM_OK) {
            fm_config_free(dst);
            return nomem(err);
        }
    return FM_OK;
}

/* Replaces value i of cfg by `text` (parsed), recording `where`. On failure cfg is unchanged
 * and err holds the bare message. */
static FmStatus set_value(FmConfig *cfg, int i, const char *text, const char *where, FmError *err) {
    FmConfigValue v;
    memset(&v, 0, sizeof v);
    FmStatus st = parse_value(&SCHEMA[i], text, &v, err);
    if (st == FM_OK && !(v.where = fm_strdup(where))) st = nomem(err);
    if (st != FM_OK) {
        value_clear(&v);
        return st;
    }
    value_clear(&cfg->values[i]);
    cfg->values[i] = v;
    return FM_OK;
}

/* Levenshtein distance of two short names (for "did you mean"); large for long names. */
static int edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    int row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int up = row[j];
            int best = diag + (a[i - 1] != b[j - 1]);
            if (row[j - 1] + 1 < best) best = row[j - 1] + 1;
            if (up + 1 < best) best = up + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* The message for an unknown key of a known section: a close key if there is one, else the
 * list of the section's keys. */
static FmStatus unknown_key(FmError *err, const char *section, const char *key) {
    int best = -1, best_d = 3;
    for (int i = 0; i < N_KEYS; i++) {
        if (strcmp(SCHEMA[i].section, section) != 0) continue;
        int d = edit_distance(key, SCHEMA[i].key);
        if (d < best_d) best_d = d, best = i;
    }
    if (best >= 0)
        return FM_FAIL(err, FM_ERR_CONFIG, NULL, "unknown key (did you mean \"%s\"?)", SCHEMA[best].key);
    FmStrBuf b;
    fm_strbuf_init(&b);
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(SCHEMA[i].section, section) == 0)
            fm_strbuf_appendf(&b, "%s%s", b.len ? ", " : "", SCHEMA[i].key);
    FmStatus st =
        FM_FAIL(err, FM_ERR_CONFIG, NULL, "unknown key (keys of [%s]: %s)", section, b.data ? b.data : "?");
    fm_strbuf_free(&b);
    return st;
}

static FmStatus unknown_section(FmError *err) {
    FmStrBuf b;
    fm_strbuf_init(&b);
    for (int i = 0; i < N_KEYS; i++)
        if (i == 0 || strcmp(SCHEMA[i].section, SCHEMA[i - 1].section) != 0)
            fm_strbuf_appendf(&b, "%s%s", b.len ? ", " : "", SCHEMA[i].section);
    FmStatus st = FM_FAIL(err, FM_ERR_CONFIG, NULL, "unknown section (sections: %s)", b.data ? b.data : "?");
    fm_strbuf_free(&b);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * Files
 * ------------------------------------------------------------------------------------------- */

/* State of one file being parsed. libinih pulls lines through `read_line` (one call per
 * physical line, so the count of calls is the line number) and reports pairs to `on_pair`. */
typedef struct {
    FmConfig *cfg;    /* the working copy */
    const char *name; /* file name for messages */
    const char *pos;  /* next unread character */
    int line;         /* current line number */
    int *set_on_line; /* per key: the line of this file that set it, 0 if none */
    int section_ok;   /* the current section is known */
    FmError first;    /* the first error found (code FM_OK if none) */
    int first_line;
} ParseState;

/* Records an error at `line` unless an earlier one is already held. `e` holds the bare
 * message; section/key (either may be NULL) prefix it. */
static void record(ParseState *ps, int line, const char *section, const char *key, const FmError *e) {
    if (ps->first.code != FM_OK && ps->first_line <= line) return;
    char where[FM_PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:%d", ps->name, line);
    fm_error_set_at(&ps->first, e->code, e->src_file, e->src_line, where, "%s", e->message);
    if (section && key)
        fm_error_prefix(&ps->first, "[%s] %s", section, key);
    else if (section)
        fm_error_prefix(&ps->first, "[%s]", section);
    ps->first_line = line;
}

static char *read_line(char *str, int num, void *stream) {
    ParseState *ps = stream;
    if (!*ps->pos) return NULL;
    ps->line++;
    const char *start = ps->pos, *nl = strchr(start, '\n');
    size_t len = nl ? (size_t)(nl - start) : strlen(start);
    ps->pos = nl ? nl + 1 : start + len;
    if (ps->line == 1 && len >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0)
        start += 3, len -= 3; /* UTF-8 BOM */
    /* Indentation is dropped, so libinih never treats a line as a continuation. */
    while (len && (*start == ' ' || *start == '\t'))
        start++, len--;
    if (len && start[len - 1] == '\r') len--;
    if (len > FM_CONFIG_MAX_LINE || len + 3 > (size_t)num) {
        FmError e;
        FM_FAIL(&e, FM_ERR_CONFIG, NULL, "line longer than %d characters", FM_CONFIG_MAX_LINE);
        record(ps, ps->line, NULL, NULL, &e);
        len = 0; /* hand libinih an empty line */
    }
    memcpy(str, start, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    /* Section headers are checked here: libinih reports only the pairs under them. */
    if (len && start[0] == '[') {
        const char *close = memchr(start, ']', len);
        if (close) {
            char section[FM_CONFIG_MAX_LINE + 1];
            memcpy(section, start + 1, (size_t)(close - start - 1));
            section[close - start - 1] = '\0';
            ps->section_ok = section_known(section);
            if (!ps->section_ok) {
                FmError e;
                unknown_section(&e);
                record(ps, ps->line, section, NULL, &e);
            }
        }
    }
    return str;
}

static int on_pair(void *user, const char *section, const char *key, const char *value) {
    ParseState *ps = user;
    FmError e;
    if (!section[0]) {
        FM_FAIL(&e, FM_ERR_CONFIG, NULL, "key \"%s\" is outside any [section]", key);
        record(ps, ps->line, NULL, NULL, &e);
        return 1;
    }
    if (!ps->section_ok) return 1; /* already reported at the header */
    int i = key_index(section, key);
    if (i < 0) {
        unknown_key(&e, section, key);
        record(ps, ps->line, section, key, &e);
        return 1;
    }
    if (ps->set_on_line[i]) {
        FM_FAIL(&e, FM_ERR_CONFIG, NULL, "set twice (first on line %d)", ps->set_on_line[i]);
        record(ps, ps->line, section, key, &e);
        return 1;
    }
    ps->set_on_line[i] = ps->line;
    char where[FM_PATH_MAX + 16];
    snprintf(where, sizeof where, "%s:%d", ps->name, ps->line);
    FmStatus st = set_value(ps->cfg, i, value, where, &e);
    if (st != FM_OK) record(ps, ps->line, section, key, &e);
    return 1;
}

FmStatus fm_config_load_string(FmConfig *cfg, const char *text, const char *name, FmError *err) {
    FmConfig work;
    FmStatus st = fm_config_copy(&work, cfg, err);
    if (st != FM_OK) return st;
    ParseState ps;
    memset(&ps, 0, sizeof ps);
    ps.cfg = &work;
    ps.name = name;
    ps.pos = text;
    ps.set_on_line = fm_calloc(N_KEYS, sizeof *ps.set_on_line);
    if (!ps.set_on_line) {
        fm_config_free(&work);
        return nomem(err);
    }
    int rc = ini_parse_stream(read_line, &ps, on_pair, &ps);
    if (rc > 0) {
        /* libinih's first syntax error (on_pair never fails, so rc is only that). */
        FmError e;
        FM_FAIL(&e, FM_ERR_CONFIG, NULL,
                "syntax error: expected \"[section]\", \"key = value\" or a comment");
        record(&ps, rc, NULL, NULL, &e);
    } else if (rc < 0 && ps.first.code == FM_OK) {
        FmError e;
        FM_FAIL(&e, FM_ERR_NOMEM, NULL, "configuration parser failed (%d)", rc);
        record(&ps, 0, NULL, NULL, &e);
    }
    fm_free(ps.set_on_line);
    if (ps.first.code != FM_OK) {
        fm_config_free(&work);
        if (err) *err = ps.first;
        return ps.first.code;
    }
    fm_config_free(cfg);
    *cfg = work;
    return FM_OK;
}

/* Files larger than this are not configurations. */
#define MAX_FILE_BYTES (1 << 20)

FmStatus fm_config_load(FmConfig *cfg, const char *path, FmError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return FM_FAIL(err, FM_ERR_IO, path, "cannot open configuration: %s", strerror(errno));
    char *text = fm_malloc(MAX_FILE_BYTES + 1);
    if (!text) {
        fclose(f);
        return nomem(err);
    }
    size_t n = fread(text, 1, MAX_FILE_BYTES + 1, f);
    int bad = ferror(f);
    fclose(f);
    FmStatus st;
    if (bad)
        st = FM_FAIL(err, FM_ERR_IO, path, "cannot read configuration");
    else if (n > MAX_FILE_BYTES)
        st = FM_FAIL(err, FM_ERR_CONFIG, path, "larger than %d bytes: not a configuration file",
                     MAX_FILE_BYTES);
    else if (memchr(text, '\0', n))
        st = FM_FAIL(err, FM_ERR_CONFIG, path, "contains a NUL byte: not a text file");
    else {
        text[n] = '\0';
        st = fm_config_load_string(cfg, text, path, err);
    }
    fm_free(text);
    return st;
}

FmStatus fm_config_apply_set(FmConfig *cfg, const char *assignment, FmError *err) {
    char where[FM_CONFIG_MAX_LINE + 16];
    const char *eq = strchr(assignment, '=');
    const char *dot = strchr(assignment, '.');
    if (!eq || !dot || dot > eq) {
        snprintf(where, sizeof where, "--set %.*s", FM_CONFIG_MAX_LINE, assignment);
        return FM_FAIL(err, FM_ERR_CONFIG, where, "expected section.key=value");
    }
    char section[64], key[64];
    trim_copy(assignment, (size_t)(dot - assignment), section, sizeof section);
    trim_copy(dot + 1, (size_t)(eq - dot - 1), key, sizeof key);
    snprintf(where, sizeof where, "--set %s.%s", section, key);
    FmError e;
    if (!section_known(section)) {
        unknown_section(&e);
        return FM_FAIL(err, FM_ERR_CONFIG, where, "%s", e.message);
    }
    int i = key_index(section, key);
    if (i < 0) {
        unknown_key(&e, section, key);
        return FM_FAIL(err, FM_ERR_CONFIG, where, "%s", e.message);
    }
    /* Trim, then check the length as parse_value would (it sees at most the buffer). */
    const char *v0 = eq + 1;
    size_t vlen = strlen(v0);
    while (vlen && isspace((unsigned char)*v0))
        v0++, vlen--;
    while (vlen && isspace((unsigned char)v0[vlen - 1]))
        vlen--;
    size_t room = FM_CONFIG_MAX_LINE - strlen(SCHEMA[i].key) - 3;
    if (vlen > room) return FM_FAIL(err, FM_ERR_CONFIG, where, "value longer than %zu characters", room);
    char value[FM_CONFIG_MAX_LINE + 1];
    trim_copy(v0, vlen, value, sizeof value);
    FmStatus st = set_value(cfg, i, value, where, &e);
    if (st != FM_OK) return FM_FAIL(err, st, where, "%s", e.message);
    return FM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Cross-key rules
 * ------------------------------------------------------------------------------------------- */

/* Fails naming where key `name` was set, with message "[section] key: ..." (or the bare
 * message after "--set section.key"). */
static FmStatus fail_at(const FmConfig *cfg, FmError *err, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static FmStatus fail_at(const FmConfig *cfg, FmError *err, const char *name, const char *fmt, ...) {
    int i = find_dotted(name);
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *where = cfg->values[i].where;
    if (where && strncmp(where, "--set ", 6) == 0) return FM_FAIL(err, FM_ERR_CONFIG, where, "%s", msg);
    return FM_FAIL(err, FM_ERR_CONFIG, where ? where : "", "[%s] %s: %s", SCHEMA[i].section, SCHEMA[i].key,
                   msg);
}

FmStatus fm_config_check(const FmConfig *cfg, FmError *err) {
    long experts = fm_config_int(cfg, "model.experts"), top_k = fm_config_int(cfg, "model.top_k");
    if (top_k > experts)
        return fail_at(cfg, err, "model.top_k", "%ld is more than model.experts (%ld)", top_k, experts);
    long heads = fm_config_int(cfg, "model.heads");
    long d = fm_config_int(cfg, "model.d_model"), dt = fm_config_int(cfg, "model.time_dim");
    if (d % heads)
        return fail_at(cfg, err, "model.heads", "%ld does not divide model.d_model (%ld)", heads, d);
    if (dt % heads)
        return fail_at(cfg, err, "model.heads", "%ld does not divide model.time_dim (%ld)", heads, dt);
    size_t nw = fm_config_list_len(cfg, "train.task_weights"), nt = fm_config_list_len(cfg, "data.tasks");
    if (nw && nw != nt)
        return fail_at(cfg, err, "train.task_weights", "%zu weights for %zu tasks (data.tasks = %s)", nw, nt,
                       fm_config_text(cfg, "data.tasks"));
    return FM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Getters
 * ------------------------------------------------------------------------------------------- */

static const FmConfigValue *typed(const FmConfig *cfg, const char *name, FmConfigType t1, FmConfigType t2) {
    int i = find_dotted(name);
    FM_ASSERT(SCHEMA[i].type == t1 || SCHEMA[i].type == t2);
    FM_ASSERT(i < cfg->n);
    return &cfg->values[i];
}

long fm_config_int(const FmConfig *cfg, const char *name) {
    return typed(cfg, name, FM_CFG_INT, FM_CFG_INT)->i;
}
double fm_config_float(const FmConfig *cfg, const char *name) {
    return typed(cfg, name, FM_CFG_FLOAT, FM_CFG_FLOAT)->f;
}
int fm_config_bool(const FmConfig *cfg, const char *name) {
    return typed(cfg, name, FM_CFG_BOOL, FM_CFG_BOOL)->b;
}
const char *fm_config_string(const FmConfig *cfg, const char *name) {
    return typed(cfg, name, FM_CFG_STRING, FM_CFG_ENUM)->text;
}
int fm_config_enum(const FmConfig *cfg, const char *name) {
    return typed(cfg, name, FM_CFG_ENUM, FM_CFG_ENUM)->choice;
}
size_t fm_config_list_len(const FmConfig *cfg, const char *name) {
    return typed(cfg, name, FM_CFG_LIST, FM_CFG_FLOAT_LIST)->n_items;
}
const char *fm_config_list_item(const FmConfig *cfg, const char *name, size_t i) {
    const FmConfigValue *v = typed(cfg, name, FM_CFG_LIST, FM_CFG_LIST);
    FM_ASSERT(i < v->n_items);
    return v->items[i];
}
double fm_config_float_item(const FmConfig *cfg, const char *name, size_t i) {
    const FmConfigValue *v = typed(cfg, name, FM_CFG_FLOAT_LIST, FM_CFG_FLOAT_LIST);
    FM_ASSERT(i < v->n_items);
    return v->nums[i];
}
const char *fm_config_text(const FmConfig *cfg, const char *name) {
    return cfg->values[find_dotted(name)].text;
}
const char *fm_config_where(const FmConfig *cfg, const char *name) {
    const char *w = cfg->values[find_dotted(name)].where;
    return w ? w : "default";
}

/* ---------------------------------------------------------------------------------------------
 * Rendering
 * ------------------------------------------------------------------------------------------- */

/* "int in [8, 4096]", "one of a, b", "list of a, b (1 to 4 items)", ... */
static void append_rule(FmStrBuf *b, const FmConfigKey *k, int markdown) {
    switch (k->type) {
    case FM_CFG_INT:
    case FM_CFG_FLOAT: fm_strbuf_appendf(b, "%.15g to %.15g", k->min, k->max); break;
    case FM_CFG_FLOAT_LIST: fm_strbuf_appendf(b, "each %.15g to %.15g", k->min, k->max); break;
    case FM_CFG_BOOL: fm_strbuf_append(b, "true, false"); break;
    case FM_CFG_STRING: fm_strbuf_append(b, markdown ? "text" : "any text"); break;
    case FM_CFG_ENUM: append_allowed(b, k->allowed); break;
    case FM_CFG_LIST:
        if (k->allowed)
            append_allowed(b, k->allowed);
        else
            fm_strbuf_append(b, "names");
        fm_strbuf_appendf(b, " (%.0f to %.0f items)", k->min, k->max);
        break;
    }
}

/* Appends `text` as "# " comment lines of at most `width` characters, broken at spaces. */
static void append_comment(FmStrBuf *b, const char *text, size_t width) {
    while (*text) {
        size_t len = strlen(text);
        if (len + 2 > width) {
            len = width - 2;
            while (len > 0 && text[len] != ' ')
                len--;
            if (len == 0) len = width - 2; /* one long word: cut it */
        }
        fm_strbuf_append(b, "# ");
        fm_strbuf_append_n(b, text, len);
        fm_strbuf_append(b, "\n");
        text += len;
        while (*text == ' ')
            text++;
    }
}

FmStatus fm_config_to_ini(const FmConfig *cfg, char **text, FmError *err) {
    *text = NULL;
    FmStrBuf b;
    fm_strbuf_init(&b);
    fm_strbuf_append(&b, "# FuseMoE-C study configuration, resolved: every key with its value.\n");
    for (int i = 0; i < N_KEYS; i++) {
        const FmConfigKey *k = &SCHEMA[i];
        if (i == 0 || strcmp(k->section, SCHEMA[i - 1].section) != 0)
            fm_strbuf_appendf(&b, "\n[%s]\n", k->section);
        FmStrBuf c;
        fm_strbuf_init(&c);
        fm_strbuf_appendf(&c, "%s (%s: ", k->doc, type_name(k->type));
        append_rule(&c, k, 0);
        fm_strbuf_appendf(&c, "; default: %s)", k->default_text[0] ? k->default_text : "empty");
        if (c.failed)
            b.failed = 1;
        else
            append_comment(&b, c.data, 96);
        fm_strbuf_free(&c);
        const char *v = cfg->values[i].text;
        fm_strbuf_appendf(&b, "%s =%s%s\n", k->key, v[0] ? " " : "", v);
    }
    *text = fm_strbuf_take(&b);
    if (!*text) return nomem(err);
    return FM_OK;
}

FmStatus fm_config_write(const FmConfig *cfg, const char *path, FmError *err) {
    char *text;
    FmStatus st = fm_config_to_ini(cfg, &text, err);
    if (st != FM_OK) return st;
    st = fm_atomic_write_all(path, text, strlen(text), err);
    fm_free(text);
    return st;
}

FmStatus fm_config_schema_markdown(char **text, FmError *err) {
    *text = NULL;
    FmStrBuf b;
    fm_strbuf_init(&b);
    fm_strbuf_append(&b, "| Key | Type | Default | Allowed | Description |\n|---|---|---|---|---|\n");
    for (int i = 0; i < N_KEYS; i++) {
        const FmConfigKey *k = &SCHEMA[i];
        fm_strbuf_appendf(&b, "| `%s.%s` | %s | ", k->section, k->key, type_name(k->type));
        if (k->default_text[0])
            fm_strbuf_appendf(&b, "`%s`", k->default_text);
        else
            fm_strbuf_append(&b, "(empty)");
        fm_strbuf_append(&b, " | ");
        append_rule(&b, k, 1);
        /* Descriptions hold no '|' (checked by the tests), so cells need no escaping. */
        fm_strbuf_appendf(&b, " | %s |\n", k->doc);
    }
    *text = fm_strbuf_take(&b);
    if (!*text) return nomem(err);
    return FM_OK;
}
