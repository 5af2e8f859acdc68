/* A study's model as the cohort feeds it (src/train_spec.h). */
#include "src/train_spec.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "models/moe.h"
#include "preprocessing/modality.h"

/* Fails naming where configuration key `name` ("section.key") was set, in the form
 * src/config.h uses: where "study.ini:4", message "[data] tasks: ..."; for an override, where
 * "--set data.tasks" and the bare message. */
static FmStatus fail_key(const FmConfig *cfg, FmError *err, FmStatus code, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static FmStatus fail_key(const FmConfig *cfg, FmError *err, FmStatus code, const char *name, const char *fmt, ...) {
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *where = fm_config_where(cfg, name);
    if (strncmp(where, "--set ", 6) == 0) return FM_FAIL(err, code, where, "%s", msg);
    const char *dot = strchr(name, '.');
    return FM_FAIL(err, code, strcmp(where, "default") == 0 ? "" : where, "[%.*s] %s: %s", (int)(dot - name), name,
                   dot + 1, msg);
}

/* "a, b, c": the cohort's modality names, for messages. */
static void modality_names(const FmCohort *c, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = '\0';
    for (int m = 0; m < c->M && len < cap; m++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", m ? ", " : "", c->mod[m].name);
}

static int find_label(const FmCohort *c, const char *name, FmLabelKind kind) {
    int j = fm_cohort_find_label(c, name);
    return j >= 0 && c->label_info[j].kind == kind ? j : -1;
}

/* Adds label column `name` read from cohort column `column` (derived: y = value > log_cut). */
static int add_label(FmTrainSpec *s, const char *name, int column, int derived, float log_cut) {
    if (s->n_labels >= FM_TRAIN_MAX_LABELS || strlen(name) >= FM_TRAIN_LABEL_NAME_MAX) return -1;
    FmTrainLabel *l = &s->label[s->n_labels++];
    memset(l, 0, sizeof *l);
    snprintf(l->name, sizeof l->name, "%s", name);
    l->column = column;
    l->derived = derived;
    l->log_cut = log_cut;
    return 0;
}

/* The cut of a derived LOS label: the threshold in the cohort's log-days units, in float like
 * the stored values ln(LOS + offset). */
static float los_log_cut(const FmCohort *c, double threshold_days) {
    return (float)log(threshold_days + c->settings.los_log_offset_days);
}

/* The label columns of task `task` (a data.tasks name) into s; 0 on success, else a message
 * in msg. */
static int map_task(FmTrainSpec *s, const FmCohort *c, const char *task, double los_threshold, char *msg,
                    size_t cap) {
    FmTaskKind kind = FM_TASK_BINARY;
    int first = s->n_labels, n = 1, j;
    if (strcmp(task, "mortality") == 0) {
        if ((j = find_label(c, "mortality", FM_LABEL_BINARY)) < 0) {
            snprintf(msg, cap, "has no binary label column \"mortality\"");
            return -1;
        }
        if (add_label(s, "mortality", j, 0, 0.0f)) goto full;
    } else if (strcmp(task, "los_binary") == 0) {
        char name[FM_TRAIN_LABEL_NAME_MAX];
        snprintf(name, sizeof name, "los_gt_%gd", los_threshold);
        j = los_threshold == c->settings.los_threshold_days ? find_label(c, name, FM_LABEL_BINARY) : -1;
        if (j >= 0) {
            if (add_label(s, name, j, 0, 0.0f)) goto full;
        } else if ((j = find_label(c, "los_log_days", FM_LABEL_REGRESSION)) >= 0) {
            if (add_label(s, name, j, 1, los_log_cut(c, los_threshold))) goto full;
        } else {
            snprintf(msg, cap, "has neither a label column \"%s\" nor \"los_log_days\" to derive it from", name);
            return -1;
        }
    } else if (strcmp(task, "los_regression") == 0) {
        kind = FM_TASK_REGRESSION;
        if ((j = find_label(c, "los_log_days", FM_LABEL_REGRESSION)) < 0) {
            snprintf(msg, cap, "has no regression label column \"los_log_days\"");
            return -1;
        }
        if (add_label(s, "los_log_days", j, 0, 0.0f)) goto full;
    } else if (strcmp(task, "phenotypes") == 0) {
        kind = FM_TASK_MULTILABEL;
        n = 0;
        for (j = 0; j < c->n_labels; j++) {
            if (strcmp(c->label_info[j].task, "phenotype") != 0 || c->label_info[j].kind != FM_LABEL_BINARY) continue;
            if (add_label(s, c->label_info[j].name, j, 0, 0.0f)) goto full;
            n++;
        }
        if (n == 0) {
            snprintf(msg, cap, "has no phenotype label columns (binary columns of task \"phenotype\")");
            return -1;
        }
    } else {
        snprintf(msg, cap, "unknown task \"%s\"", task);
        return -1;
    }
    FmError e;
    if (fm_model_config_add_task(&s->model, task, kind, first, n, NULL, &e) != FM_OK) {
        snprintf(msg, cap, "%s", e.message);
        return -1;
    }
    return 0;
full:
    snprintf(msg, cap, "more than %d label columns, or a label name of %d characters or more", FM_TRAIN_MAX_LABELS,
             FM_TRAIN_LABEL_NAME_MAX);
    return -1;
}

static FmStatus add_modality(FmTrainSpec *s, const FmCohort *c, int cm, FmError *err) {
    FmModalityConfig *mc;
    FmStatus st = fm_model_config_add_modality(&s->model, c->mod[cm].name, c->mod[cm].kind, c->mod[cm].C, &mc, err);
    if (st != FM_OK) return st;
    s->cohort_mod[s->model.M - 1] = cm;
    return FM_OK;
}

FmStatus fm_train_spec_from_config(const FmConfig *cfg, const FmCohort *c, const char *cohort_name,
                                   FmTrainSpec *spec, FmError *err) {
    memset(spec, 0, sizeof *spec);
    spec->model = fm_model_config_default();
    FmModelConfig *m = &spec->model;

    /* Modalities */
    char names[512];
    size_t n_mod = fm_config_list_len(cfg, "data.modalities");
    size_t n_use = n_mod ? n_mod : (size_t)c->M;
    if (n_use > FM_MODEL_MAX_MODALITIES) {
        modality_names(c, names, sizeof names);
        return fail_key(cfg, err, FM_ERR_CONFIG, "data.modalities",
                        "%zu modalities, the model takes at most %d (the cohort %s has %s)", n_use,
                        FM_MODEL_MAX_MODALITIES, cohort_name, names);
    }
    if (n_use == 0) return fail_key(cfg, err, FM_ERR_CONFIG, "data.modalities", "the cohort %s has no modality", cohort_name);
    for (size_t i = 0; i < n_use; i++) {
        int cm = (int)i;
        if (n_mod) {
            const char *name = fm_config_list_item(cfg, "data.modalities", i);
            if ((cm = fm_cohort_find_modality(c, name)) < 0) {
                modality_names(c, names, sizeof names);
                return fail_key(cfg, err, FM_ERR_CONFIG, "data.modalities",
                                "the cohort %s has no modality \"%s\" (it has %s)", cohort_name, name, names);
            }
        }
        FmError e;
        if (add_modality(spec, c, cm, &e) != FM_OK)
            return fail_key(cfg, err, FM_ERR_CONFIG, "data.modalities", "%s", e.message);
    }

    /* Tasks and their label columns */
    double los_threshold = fm_config_float(cfg, "data.los_threshold_days");
    size_t n_tasks = fm_config_list_len(cfg, "data.tasks");
    for (size_t t = 0; t < n_tasks; t++) {
        char msg[512];
        const char *task = fm_config_list_item(cfg, "data.tasks", t);
        if (map_task(spec, c, task, los_threshold, msg, sizeof msg) != 0)
            return fail_key(cfg, err, FM_ERR_CONFIG, "data.tasks", "task %s: the cohort %s %s", task, cohort_name, msg);
    }
    m->n_labels = spec->n_labels;
    size_t n_weights = fm_config_list_len(cfg, "train.task_weights");
    for (size_t t = 0; t < n_weights && t < (size_t)m->n_tasks; t++)
        m->task[t].weight = (float)fm_config_float_item(cfg, "train.task_weights", t);

    /* Sizes and options */
    m->D = (int)fm_config_int(cfg, "model.d_model");
    m->Q = (int)fm_config_int(cfg, "model.ref_points");
    m->H = m->attn_heads = (int)fm_config_int(cfg, "model.heads");
    m->DT = (int)fm_config_int(cfg, "model.time_dim");
    m->layers = (int)fm_config_int(cfg, "model.layers");
    m->E = (int)fm_config_int(cfg, "model.experts");
    m->K = (int)fm_config_int(cfg, "model.top_k");
    m->hidden = (int)fm_config_int(cfg, "model.expert_hidden");
    FM_ASSERT(fm_model_gate_parse(fm_config_string(cfg, "model.gate"), &m->gate) == 0);
    FM_ASSERT(fm_model_router_parse(fm_config_string(cfg, "model.router"), &m->router) == 0);
    FM_ASSERT(fm_model_pooling_parse(fm_config_string(cfg, "model.pooling"), &m->pooling) == 0);
    m->noisy = fm_config_bool(cfg, "model.noisy_gating");
    m->dropout = (float)fm_config_float(cfg, "model.dropout");
    m->balance_coef = (float)fm_config_float(cfg, "model.balance_coef");
    m->entropy_coef = (float)fm_config_float(cfg, "model.entropy_coef");
    m->head_hidden = (int)fm_config_int(cfg, "model.head_hidden");
    if (m->Q < 2)
        return fail_key(cfg, err, FM_ERR_CONFIG, "model.ref_points", "%d reference time: the model needs at least 2",
                        m->Q);
    if (m->layers > FM_MODEL_MAX_LAYERS)
        return fail_key(cfg, err, FM_ERR_CONFIG, "model.layers", "%d layers: the model takes at most %d", m->layers,
                        FM_MODEL_MAX_LAYERS);
    if (m->E > FM_MOE_MAX_EXPERTS)
        return fail_key(cfg, err, FM_ERR_CONFIG, "model.experts", "%d experts: the model takes at most %d", m->E,
                        FM_MOE_MAX_EXPERTS);
    if (m->router == FM_ROUTER_DISJOINT && m->E % m->M != 0)
        return fail_key(cfg, err, FM_ERR_CONFIG, "model.experts",
                        "%d experts do not divide among the %d modalities (with model.router = disjoint each "
                        "modality has experts / modalities experts of its own)",
                        m->E, m->M);
    if (m->router == FM_ROUTER_DISJOINT && m->K > m->E / m->M)
        return fail_key(cfg, err, FM_ERR_CONFIG, "model.top_k",
                        "%d is more than the %d experts each modality has with model.router = disjoint", m->K,
                        m->E / m->M);
    FmError e;
    if (fm_model_config_check(m, &e) != FM_OK)
        return fail_key(cfg, err, FM_ERR_CONFIG, "model.d_model", "the model refuses this configuration: %s%s%s",
                        e.where, e.where[0] ? ": " : "", e.message);
    return FM_OK;
}

FmStatus fm_train_spec_from_model(const FmModelConfig *mc, const char *const *label_names, const FmCohort *c,
                                  const char *cohort_name, int need_labels, FmTrainSpec *spec, FmError *err) {
    memset(spec, 0, sizeof *spec);
    spec->model = *mc;
    for (int m = 0; m < mc->M; m++) {
        const FmModalityConfig *mm = &mc->mod[m];
        int cm = fm_cohort_find_modality(c, mm->name);
        if (cm < 0) {
            char names[512];
            modality_names(c, names, sizeof names);
            return FM_FAIL(err, FM_ERR_MISMATCH, cohort_name, "no modality \"%s\", which the model reads (it has %s)",
                           mm->name, names);
        }
        if (c->mod[cm].kind != mm->kind || c->mod[cm].C != mm->C)
            return FM_FAIL(err, FM_ERR_MISMATCH, cohort_name,
                           "modality \"%s\" is %s with %d channels here, %s with %d channels in the model", mm->name,
                           fm_modality_kind_name(c->mod[cm].kind), c->mod[cm].C, fm_modality_kind_name(mm->kind), mm->C);
        spec->cohort_mod[m] = cm;
    }
    if (mc->n_labels > FM_TRAIN_MAX_LABELS)
        return FM_FAIL(err, FM_ERR_MISMATCH, NULL, "the model has %d label columns, at most %d are supported",
                       mc->n_labels, FM_TRAIN_MAX_LABELS);
    for (int j = 0; j < mc->n_labels; j++) {
        const char *name = label_names[j];
        int column = -1, derived = 0;
        float cut = 0.0f;
        if (need_labels) {
            FmLabelKind kind = FM_LABEL_BINARY;
            for (int t = 0; t < mc->n_tasks; t++)
                if (j >= mc->task[t].label0 && j < mc->task[t].label0 + mc->task[t].n &&
                    mc->task[t].kind == FM_TASK_REGRESSION)
                    kind = FM_LABEL_REGRESSION;
            column = find_label(c, name, kind);
            double days;
            char tail;
            if (column < 0 && kind == FM_LABEL_BINARY && sscanf(name, "los_gt_%lfd%c", &days, &tail) == 1 && isfinite(days) && days >= 0 &&
                (column = find_label(c, "los_log_days", FM_LABEL_REGRESSION)) >= 0) {
                derived = 1;
                cut = los_log_cut(c, days);
            }
            if (column < 0)
                return FM_FAIL(err, FM_ERR_MISMATCH, cohort_name, "no %s label column \"%s\", which the model predicts",
                               kind == FM_LABEL_BINARY ? "binary" : "regression", name);
        }
        if (add_label(spec, name, column, derived, cut) != 0)
            return FM_FAIL(err, FM_ERR_MISMATCH, NULL, "label name \"%s\" is too long", name);
    }
    return FM_OK;
}

int fm_train_spec_label(const FmTrainSpec *spec, const FmCohort *c, int64_t stay, int j, float *y) {
    const FmTrainLabel *l = &spec->label[j];
    if (l->column < 0) return 0;
    size_t at = (size_t)stay * (size_t)c->n_labels + (size_t)l->column;
    if (!c->label_mask[at]) return 0;
    float v = c->label[at];
    *y = l->derived ? (float)(v > l->log_cut) : v;
    return 1;
}

void fm_train_spec_class_weights(FmTrainSpec *spec, const FmCohort *c, const int64_t *idx, int64_t n) {
    FmModelConfig *m = &spec->model;
    for (int t = 0; t < m->n_tasks; t++) {
        FmTaskConfig *task = &m->task[t];
        if (task->kind == FM_TASK_REGRESSION) continue;
        int64_t pos = 0, neg = 0;
        for (int64_t i = 0; i < n; i++)
            for (int j = task->label0; j < task->label0 + task->n; j++) {
                float y;
                if (fm_train_spec_label(spec, c, idx[i], j, &y)) y > 0.5f ? pos++ : neg++;
            }
        task->pos_weight = pos > 0 && neg > 0 ? (float)((double)neg / (double)pos) : 1.0f;
    }
}

int fm_train_spec_strata_label(const FmTrainSpec *spec) {
    for (int t = 0; t < spec->model.n_tasks; t++)
        if (spec->model.task[t].kind != FM_TASK_REGRESSION) return spec->model.task[t].label0;
    return -1;
}
