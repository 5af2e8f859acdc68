#include "src/json_out.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/metrics.h"

/* cJSON allocates through the project's wrapper (fm_malloc is malloc underneath, so trees
 * built before the hooks were installed are freed correctly too). */
static void use_fm_alloc(void) {
    static cJSON_Hooks hooks = {fm_malloc, fm_free};
    cJSON_InitHooks(&hooks);
}

static FmStatus nomem(FmError *err, const char *name) {
    return FM_FAIL(err, FM_ERR_NOMEM, NULL, "metrics.json: out of memory adding \"%s\"", name);
}

static cJSON *number_or_null(double v) {
    return isfinite(v) ? cJSON_CreateNumber(v) : cJSON_CreateNull();
}

/* Adds `item` (may be NULL: allocation failed) under `name`; frees it if it cannot be added. */
static FmStatus attach(cJSON *obj, const char *name, cJSON *item, FmError *err) {
    if (!item) return nomem(err, name);
    if (!cJSON_AddItemToObject(obj, name, item)) {
        cJSON_Delete(item);
        return nomem(err, name);
    }
    return FM_OK;
}

FmStatus fm_json_add_number(cJSON *obj, const char *name, double v, FmError *err) {
    use_fm_alloc();
    return attach(obj, name, number_or_null(v), err);
}

FmStatus fm_json_add_string(cJSON *obj, const char *name, const char *s, FmError *err) {
    use_fm_alloc();
    return attach(obj, name, cJSON_CreateString(s), err);
}

/* A new array of numbers, or NULL. */
static cJSON *number_array(const double *v, size_t n) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *x = number_or_null(v[i]);
        if (!x || !cJSON_AddItemToArray(arr, x)) {
            cJSON_Delete(x);
            cJSON_Delete(arr);
            return NULL;
        }
    }
    return arr;
}

FmStatus fm_json_add_numbers(cJSON *obj, const char *name, const double *v, size_t n, FmError *err) {
    use_fm_alloc();
    return attach(obj, name, number_array(v, n), err);
}

/* A new {"value", "ci_low", "ci_high", "se", "replicates"} object, or NULL. */
static cJSON *ci_object(const FmBootstrapCI *ci) {
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    FmStatus st = attach(o, "value", number_or_null(ci->estimate), NULL);
    if (st == FM_OK) st = attach(o, "ci_low", number_or_null(ci->lo), NULL);
    if (st == FM_OK) st = attach(o, "ci_high", number_or_null(ci->hi), NULL);
    if (st == FM_OK) st = attach(o, "se", number_or_null(ci->se), NULL);
    if (st == FM_OK) st = attach(o, "replicates", cJSON_CreateNumber(ci->n_valid), NULL);
    if (st != FM_OK) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

FmStatus fm_json_add_ci(cJSON *obj, const char *name, const FmBootstrapCI *ci, FmError *err) {
    use_fm_alloc();
    return attach(obj, name, ci_object(ci), err);
}

/* Adds metric `spec` to `o`: {"value": v} or the bootstrap object. */
static FmStatus add_metric(cJSON *o, const FmMetricSpec *spec, const float *pred, const float *target,
                           size_t n, const FmBootstrapConfig *boot, FmError *err) {
    const char *name = fm_metrics_name(spec->kind);
    if (boot && boot->n_resamples > 0) {
        FmBootstrapConfig cfg = *boot;
        cfg.stratified = fm_metrics_is_binary(spec->kind);
        FmBootstrapCI ci;
        FmStatus st = fm_bootstrap_ci(fm_metrics_eval, spec, pred, target, n, &cfg, &ci, err);
        if (st != FM_OK) return st;
        return attach(o, name, ci_object(&ci), err);
    }
    double v;
    FmStatus st = fm_metrics_eval(spec, pred, target, n, &v, err);
    if (st != FM_OK) return st;
    cJSON *m = cJSON_CreateObject();
    if (m && attach(m, "value", number_or_null(v), err) != FM_OK) {
        cJSON_Delete(m);
        m = NULL;
    }
    return attach(o, name, m, err);
}

static FmStatus add_bootstrap_settings(cJSON *o, const FmBootstrapConfig *boot, int stratified,
                                       FmError *err) {
    if (!boot || boot->n_resamples <= 0) return FM_OK;
    cJSON *b = cJSON_CreateObject();
    if (!b) return nomem(err, "bootstrap");
    FmStatus st = attach(b, "resamples", cJSON_CreateNumber(boot->n_resamples), err);
    if (st == FM_OK) st = attach(b, "seed", cJSON_CreateNumber((double)boot->seed), err);
    if (st == FM_OK) st = attach(b, "level", cJSON_CreateNumber(boot->level), err);
    if (st == FM_OK) st = attach(b, "stratified", cJSON_CreateBool(stratified), err);
    if (st != FM_OK) {
        cJSON_Delete(b);
        return st;
    }
    return attach(o, "bootstrap", b, err);
}

/* Attaches a finished report `r` under `name`, or deletes it when `st` is a failure. */
static FmStatus finish(cJSON *obj, const char *name, cJSON *r, FmStatus st, FmError *err) {
    if (st != FM_OK) {
        cJSON_Delete(r);
        return st;
    }
    return attach(obj, name, r, err);
}

FmStatus fm_json_add_binary_report(cJSON *obj, const char *name, const float *score, const float *label,
                                   size_t n, double threshold, const FmBootstrapConfig *boot, FmError *err) {
    use_fm_alloc();
    cJSON *r = cJSON_CreateObject();
    if (!r) return nomem(err, name);
    size_t n_pos = 0;
    for (size_t i = 0; i < n; i++)
        n_pos += label[i] == 1.0f;
    FmStatus st = attach(r, "kind", cJSON_CreateString("binary"), err);
    if (st == FM_OK) st = attach(r, "n", cJSON_CreateNumber((double)n), err);
    if (st == FM_OK) st = attach(r, "n_positive", cJSON_CreateNumber((double)n_pos), err);
    const FmMetricSpec specs[] = {{FM_METRIC_AUROC, 0, 0},
                                  {FM_METRIC_AUPRC, 0, 0},
                                  {FM_METRIC_F1, threshold, 0},
                                  {FM_METRIC_BRIER, 0, 0},
                                  {FM_METRIC_ECE, 0, FM_METRICS_CALIBRATION_BINS}};
    for (size_t k = 0; k < sizeof specs / sizeof *specs && st == FM_OK; k++)
        st = add_metric(r, &specs[k], score, label, n, boot, err);
    if (st == FM_OK) st = attach(r, "threshold", number_or_null(threshold), err);
    if (st == FM_OK) st = add_bootstrap_settings(r, boot, 1, err);
    return finish(obj, name, r, st, err);
}

FmStatus fm_json_add_regression_report(cJSON *obj, const char *name, const float *pred, const float *target,
                                       size_t n, const FmBootstrapConfig *boot, FmError *err) {
    use_fm_alloc();
    cJSON *r = cJSON_CreateObject();
    if (!r) return nomem(err, name);
    FmStatus st = attach(r, "kind", cJSON_CreateString("regression"), err);
    if (st == FM_OK) st = attach(r, "n", cJSON_CreateNumber((double)n), err);
    const FmMetricSpec specs[] = {{FM_METRIC_MAE, 0, 0}, {FM_METRIC_RMSE, 0, 0}, {FM_METRIC_R2, 0, 0}};
    for (size_t k = 0; k < sizeof specs / sizeof *specs && st == FM_OK; k++)
        st = add_metric(r, &specs[k], pred, target, n, boot, err);
    if (st == FM_OK) st = add_bootstrap_settings(r, boot, 0, err);
    return finish(obj, name, r, st, err);
}

/* {"value": v, "labels_used": k} or NULL. */
static cJSON *value_used(double v, int used) {
    cJSON *o = cJSON_CreateObject();
    if (o && (attach(o, "value", number_or_null(v), NULL) != FM_OK ||
              attach(o, "labels_used", cJSON_CreateNumber(used), NULL) != FM_OK)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

FmStatus fm_json_add_multilabel_report(cJSON *obj, const char *name, const float *score, const float *label,
                                       const uint8_t *mask, size_t n, int L, const char *const *label_names,
                                       const double *threshold, FmError *err) {
    use_fm_alloc();
    if (L < 0) return FM_FAIL(err, FM_ERR_ARG, NULL, "multi-label report: L = %d", L);
    double *auc = fm_malloc_array((size_t)L, sizeof *auc), *f1 = fm_malloc_array((size_t)L, sizeof *f1);
    cJSON *r = cJSON_CreateObject();
    if (!auc || !f1 || !r) {
        fm_free(auc);
        fm_free(f1);
        cJSON_Delete(r);
        return nomem(err, name);
    }
    double macro_auc, micro_auc, macro_f1;
    int used_auc, used_f1;
    FmStatus st = fm_metrics_macro_auroc(score, label, mask, n, L, auc, &used_auc, &macro_auc, err);
    if (st == FM_OK) st = fm_metrics_micro_auroc(score, label, mask, n, L, &micro_auc, err);
    if (st == FM_OK)
        st = fm_metrics_macro_f1(score, label, mask, n, L, threshold, f1, &used_f1, &macro_f1, err);
    if (st == FM_OK) st = attach(r, "kind", cJSON_CreateString("multilabel"), err);
    if (st == FM_OK) st = attach(r, "n", cJSON_CreateNumber((double)n), err);
    if (st == FM_OK) st = attach(r, "labels", cJSON_CreateNumber(L), err);
    if (st == FM_OK) st = attach(r, "macro_auroc", value_used(macro_auc, used_auc), err);
    if (st == FM_OK) st = attach(r, "micro_auroc", number_or_null(micro_auc), err);
    if (st == FM_OK) st = attach(r, "macro_f1", value_used(macro_f1, used_f1), err);
    cJSON *per = st == FM_OK ? cJSON_CreateObject() : NULL;
    if (st == FM_OK && !per) st = nomem(err, "per_label");
    for (int l = 0; l < L && st == FM_OK; l++) {
        char num[16];
        snprintf(num, sizeof num, "%d", l);
        cJSON *e = cJSON_CreateObject();
        if (e && (attach(e, "auroc", number_or_null(auc[l]), NULL) != FM_OK ||
                  attach(e, "f1", number_or_null(f1[l]), NULL) != FM_OK)) {
            cJSON_Delete(e);
            e = NULL;
        }
        st = attach(per, label_names ? label_names[l] : num, e, err);
    }
    if (per) {
        if (st == FM_OK)
            st = attach(r, "per_label", per, err);
        else
            cJSON_Delete(per);
    }
    fm_free(auc);
    fm_free(f1);
    return finish(obj, name, r, st, err);
}

/* The typed JSON value of one configuration key, or NULL. */
static cJSON *config_value(const FmConfig *cfg, const FmConfigKey *k) {
    char name[160];
    snprintf(name, sizeof name, "%s.%s", k->section, k->key);
    switch (k->type) {
    case FM_CFG_INT: return cJSON_CreateNumber((double)fm_config_int(cfg, name));
    case FM_CFG_FLOAT: return cJSON_CreateNumber(fm_config_float(cfg, name));
    case FM_CFG_BOOL: return cJSON_CreateBool(fm_config_bool(cfg, name));
    case FM_CFG_STRING:
    case FM_CFG_ENUM: return cJSON_CreateString(fm_config_string(cfg, name));
    case FM_CFG_LIST:
    case FM_CFG_FLOAT_LIST: {
        cJSON *arr = cJSON_CreateArray();
        size_t n = fm_config_list_len(cfg, name);
        for (size_t i = 0; arr && i < n; i++) {
            cJSON *x = k->type == FM_CFG_LIST ? cJSON_CreateString(fm_config_list_item(cfg, name, i))
                                              : cJSON_CreateNumber(fm_config_float_item(cfg, name, i));
            if (!x || !cJSON_AddItemToArray(arr, x)) {
                cJSON_Delete(x);
                cJSON_Delete(arr);
                arr = NULL;
            }
        }
        return arr;
    }
    }
    return NULL;
}

FmStatus fm_json_add_config(cJSON *obj, const char *name, const FmConfig *cfg, FmError *err) {
    use_fm_alloc();
    int n;
    const FmConfigKey *schema = fm_config_schema(&n);
    cJSON *root = cJSON_CreateObject();
    if (!root) return nomem(err, name);
    FmStatus st = FM_OK;
    cJSON *section = NULL;
    for (int i = 0; i < n && st == FM_OK; i++) {
        if (i == 0 || strcmp(schema[i].section, schema[i - 1].section) != 0) {
            section = cJSON_CreateObject();
            st = attach(root, schema[i].section, section, err);
            if (st != FM_OK) break;
        }
        st = attach(section, schema[i].key, config_value(cfg, &schema[i]), err);
    }
    return finish(obj, name, root, st, err);
}

FmStatus fm_json_write(const cJSON *root, const char *path, FmError *err) {
    use_fm_alloc();
    char *text = cJSON_Print(root);
    if (!text) return FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory rendering JSON");
    size_t len = strlen(text);
    /* cJSON ends without a newline; add one so the file is a proper text file. */
    char *full = fm_malloc(len + 2);
    if (!full) {
        cJSON_free(text);
        return FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory rendering JSON");
    }
    memcpy(full, text, len);
    full[len] = '\n';
    full[len + 1] = '\0';
    cJSON_free(text);
    FmStatus st = fm_atomic_write_all(path, full, len + 1, err);
    fm_free(full);
    return st;
}
