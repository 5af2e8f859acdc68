#include "models/model_file.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>

#include "preprocessing/modality.h"
#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/h5io.h"
#include "src/params_h5.h"
#include "src/version.h"

/* ------------------------------------------------------------------ writing */

static FmStatus put_i(hid_t g, const char *name, int64_t v, FmError *err) {
    return fm_h5_attr_write_i64(g, name, v, err);
}
static FmStatus put_f(hid_t g, const char *name, double v, FmError *err) {
    return fm_h5_attr_write_f64(g, name, v, err);
}
static FmStatus put_s(hid_t g, const char *name, const char *v, FmError *err) {
    return fm_h5_attr_write_str(g, name, v, err);
}

static FmStatus write_config(hid_t file, const FmModelConfig *c, FmError *err) {
    hid_t g;
    FmStatus st = fm_h5_group_create(file, "config", &g, err);
    if (st) return st;
    if ((st = put_i(g, "M", c->M, err)) || (st = put_i(g, "D", c->D, err)) || (st = put_i(g, "Q", c->Q, err)) ||
        (st = put_i(g, "H", c->H, err)) || (st = put_i(g, "DT", c->DT, err)) ||
        (st = put_i(g, "layers", c->layers, err)) || (st = put_i(g, "attn_heads", c->attn_heads, err)) ||
        (st = put_i(g, "E", c->E, err)) || (st = put_i(g, "K", c->K, err)) ||
        (st = put_i(g, "hidden", c->hidden, err)) || (st = put_s(g, "gate", fm_model_gate_name(c->gate), err)) ||
        (st = put_s(g, "router", fm_model_router_name(c->router), err)) || (st = put_i(g, "noisy", c->noisy, err)) ||
        (st = put_f(g, "dropout", c->dropout, err)) || (st = put_f(g, "balance_coef", c->balance_coef, err)) ||
        (st = put_f(g, "entropy_coef", c->entropy_coef, err)) ||
        (st = put_i(g, "static_tokens", c->static_tokens, err)) ||
        (st = put_s(g, "pooling", fm_model_pooling_name(c->pooling), err)) ||
        (st = put_i(g, "head_hidden", c->head_hidden, err)) || (st = put_i(g, "n_labels", c->n_labels, err)) ||
        (st = put_i(g, "n_tasks", c->n_tasks, err)))
        goto done;
    for (int m = 0; m < c->M && !st; m++) {
        const FmModalityConfig *mc = &c->mod[m];
        char name[32];
        snprintf(name, sizeof name, "modality.%d", m);
        hid_t s;
        if ((st = fm_h5_group_create(g, name, &s, err))) break;
        if (!(st = put_s(s, "name", mc->name, err)) && !(st = put_s(s, "kind", fm_modality_kind_name(mc->kind), err)) &&
            !(st = put_i(s, "C", mc->C, err)) && !(st = put_i(s, "imputation", mc->imputation, err)) &&
            !(st = put_i(s, "patch", mc->patch, err)) && !(st = put_i(s, "patch_dim", mc->patch_dim, err)))
            st = put_i(s, "patch_gelu", mc->patch_gelu, err);
        H5Gclose(s);
    }
    for (int t = 0; t < c->n_tasks && !st; t++) {
        const FmTaskConfig *tc = &c->task[t];
        char name[32];
        snprintf(name, sizeof name, "task.%d", t);
        hid_t s;
        if ((st = fm_h5_group_create(g, name, &s, err))) break;
        if (!(st = put_s(s, "name", tc->name, err)) &&
            !(st = put_s(s, "kind", fm_model_task_kind_name(tc->kind), err)) &&
            !(st = put_i(s, "label0", tc->label0, err)) && !(st = put_i(s, "n", tc->n, err)) &&
            !(st = put_f(s, "weight", tc->weight, err)) && !(st = put_f(s, "pos_weight", tc->pos_weight, err)))
            st = put_f(s, "huber_delta", tc->huber_delta, err);
        H5Gclose(s);
    }
done:
    H5Gclose(g);
    return st;
}

/* The statistics must describe the model's modalities, in its order. */
static FmStatus check_norm(const FmModel *model, const FmNorm *norm, const char *path, FmError *err) {
    const FmModelConfig *c = &model->cfg;
    if (norm->M != c->M)
        return FM_FAIL(err, FM_ERR_ARG, path, "normalisation statistics for %d modalities, the model has %d", norm->M,
                       c->M);
    for (int m = 0; m < c->M; m++) {
        const FmNormModality *nm = &norm->mod[m];
        if (!nm->name || strcmp(nm->name, c->mod[m].name) != 0 || nm->kind != c->mod[m].kind || nm->C != c->mod[m].C)
            return FM_FAIL(err, FM_ERR_ARG, path,
                           "normalisation statistics: modality %d is %s (%s, %d channels), the model's is %s (%s, %d)", m,
                           nm->name ? nm->name : "unnamed", fm_modality_kind_name(nm->kind), nm->C, c->mod[m].name,
                           fm_modality_kind_name(c->mod[m].kind), c->mod[m].C);
    }
    return FM_OK;
}

FmStatus fm_model_file_save(const char *path, const FmModel *model, const FmNorm *norm, FmError *err) {
    FmStatus st = norm ? check_norm(model, norm, path, err) : FM_OK;
    if (st) return st;
    char tmp[FM_PATH_MAX];
    if ((st = fm_atomic_temp_path(path, tmp, sizeof tmp, err))) return st;
    hid_t file;
    if ((st = fm_h5_create(tmp, &file, err))) {
        fm_atomic_abort(tmp);
        return st;
    }
    hid_t pg = -1;
    if (!(st = put_s(file, "format", FM_MODEL_FILE_FORMAT, err)) &&
        !(st = put_i(file, "format_version", FM_MODEL_FILE_VERSION, err)) &&
        !(st = put_s(file, "library_version", FM_VERSION, err)) && !(st = write_config(file, &model->cfg, err)) &&
        !(st = norm ? fm_norm_write_h5(file, "norm", norm, err) : FM_OK) &&
        !(st = fm_h5_group_create(file, "params", &pg, err)))
        st = fm_params_write_h5(pg, &model->params, model->params.data, err);
    if (pg >= 0) H5Gclose(pg);
    if (H5Fclose(file) < 0 && !st) st = FM_FAIL(err, FM_ERR_IO, path, "cannot finish writing the model file");
    if (st) {
        fm_atomic_abort(tmp);
        if (err && err->where[0] == '\0') snprintf(err->where, sizeof err->where, "%s", path);
        return st;
    }
    return fm_atomic_commit(tmp, path, err);
}

/* ------------------------------------------------------------------ reading */

/* Opens `path` and checks the format and version. */
static FmStatus open_checked(const char *path, hid_t *file, FmError *err) {
    FmStatus st = fm_h5_open_read(path, file, err);
    if (st) return st;
    char *format = NULL;
    int64_t version = 0;
    if ((st = fm_h5_attr_read_str(*file, path, "format", &format, err)) == FM_OK) {
        if (strcmp(format, FM_MODEL_FILE_FORMAT) != 0)
            st = FM_FAIL(err, FM_ERR_FORMAT, path, "not a model file (format \"%s\", expected \"%s\")", format,
                         FM_MODEL_FILE_FORMAT);
        else if ((st = fm_h5_attr_read_i64(*file, path, "format_version", &version, err)) == FM_OK &&
                 version != FM_MODEL_FILE_VERSION)
            st = FM_FAIL(err, FM_ERR_UNSUPPORTED, path, "model file format version %lld, this build reads version %d",
                         (long long)version, FM_MODEL_FILE_VERSION);
    }
    fm_free(format);
    if (st) H5Fclose(*file);
    return st;
}

typedef struct {
    hid_t g;
    const char *where; /* "<file>:/config/..." for messages */
    FmError *err;
    FmStatus st;
} Reader;

static int get_i(Reader *r, const char *name) {
    int64_t v = 0;
    if (r->st) return 0;
    r->st = fm_h5_attr_read_i64(r->g, r->where, name, &v, r->err);
    if (!r->st && (v < -2147483647 || v > 2147483647))
        r->st = FM_FAIL(r->err, FM_ERR_FORMAT, r->where, "attribute '%s': %lld out of range", name, (long long)v);
    return (int)v;
}

static float get_f(Reader *r, const char *name) {
    double v = 0.0;
    if (!r->st) r->st = fm_h5_attr_read_f64(r->g, r->where, name, &v, r->err);
    return (float)v;
}

/* Reads string attribute `name` and maps it through `parse` (returns -1 for unknown). */
static void get_enum(Reader *r, const char *name, int (*parse)(const char *, void *), void *out) {
    char *s = NULL;
    if (r->st) return;
    r->st = fm_h5_attr_read_str(r->g, r->where, name, &s, r->err);
    if (!r->st && parse(s, out) != 0)
        r->st = FM_FAIL(r->err, FM_ERR_FORMAT, r->where, "attribute '%s': unknown value \"%s\"", name, s);
    fm_free(s);
}

static void get_name(Reader *r, const char *name, char *out, size_t cap) {
    char *s = NULL;
    if (r->st) return;
    r->st = fm_h5_attr_read_str(r->g, r->where, name, &s, r->err);
    if (!r->st && strlen(s) >= cap)
        r->st = FM_FAIL(r->err, FM_ERR_FORMAT, r->where, "attribute '%s': name too long", name);
    if (!r->st) snprintf(out, cap, "%s", s);
    fm_free(s);
}

static int parse_gate(const char *s, void *o) { return fm_model_gate_parse(s, o); }
static int parse_router(const char *s, void *o) { return fm_model_router_parse(s, o); }
static int parse_pooling(const char *s, void *o) { return fm_model_pooling_parse(s, o); }
static int parse_kind(const char *s, void *o) { return fm_modality_kind_parse(s, o); }
static int parse_task(const char *s, void *o) { return fm_model_task_kind_parse(s, o); }

static FmStatus open_group(hid_t loc, const char *path, const char *name, hid_t *g, char *where, size_t cap,
                           FmError *err) {
    snprintf(where, cap, "%s:/%s", path, name);
    return fm_h5_group_open(loc, path, name, g, err);
}

static FmStatus read_config(hid_t file, const char *path, FmModelConfig *c, FmError *err) {
    memset(c, 0, sizeof *c);
    char where[FM_PATH_MAX + 64];
    Reader r = {.where = where, .err = err};
    FmStatus st = open_group(file, path, "config", &r.g, where, sizeof where, err);
    if (st) return st;
    c->M = get_i(&r, "M");
    c->D = get_i(&r, "D");
    c->Q = get_i(&r, "Q");
    c->H = get_i(&r, "H");
    c->DT = get_i(&r, "DT");
    c->layers = get_i(&r, "layers");
    c->attn_heads = get_i(&r, "attn_heads");
    c->E = get_i(&r, "E");
    c->K = get_i(&r, "K");
    c->hidden = get_i(&r, "hidden");
    get_enum(&r, "gate", parse_gate, &c->gate);
    get_enum(&r, "router", parse_router, &c->router);
    c->noisy = get_i(&r, "noisy");
    c->dropout = get_f(&r, "dropout");
    c->balance_coef = get_f(&r, "balance_coef");
    c->entropy_coef = get_f(&r, "entropy_coef");
    c->static_tokens = get_i(&r, "static_tokens");
    get_enum(&r, "pooling", parse_pooling, &c->pooling);
    c->head_hidden = get_i(&r, "head_hidden");
    c->n_labels = get_i(&r, "n_labels");
    c->n_tasks = get_i(&r, "n_tasks");
    if (!r.st && (c->M < 1 || c->M > FM_MODEL_MAX_MODALITIES || c->n_tasks < 1 || c->n_tasks > FM_MAX_TASKS))
        r.st = FM_FAIL(err, FM_ERR_FORMAT, where, "%d modalities and %d tasks: out of range", c->M, c->n_tasks);
    for (int m = 0; m < c->M && !r.st; m++) {
        char name[32], sub[FM_PATH_MAX + 96];
        snprintf(name, sizeof name, "modality.%d", m);
        Reader s = {.where = sub, .err = err};
        if ((r.st = open_group(r.g, where, name, &s.g, sub, sizeof sub, err))) break;
        snprintf(sub, sizeof sub, "%s:/config/%s", path, name);
        FmModalityConfig *mc = &c->mod[m];
        get_name(&s, "name", mc->name, sizeof mc->name);
        get_enum(&s, "kind", parse_kind, &mc->kind);
        mc->C = get_i(&s, "C");
        mc->imputation = get_i(&s, "imputation");
        mc->patch = get_i(&s, "patch");
        mc->patch_dim = get_i(&s, "patch_dim");
        mc->patch_gelu = get_i(&s, "patch_gelu");
        r.st = s.st;
        H5Gclose(s.g);
    }
    for (int t = 0; t < c->n_tasks && !r.st; t++) {
        char name[32], sub[FM_PATH_MAX + 96];
        snprintf(name, sizeof name, "task.%d", t);
        Reader s = {.where = sub, .err = err};
        if ((r.st = open_group(r.g, where, name, &s.g, sub, sizeof sub, err))) break;
        snprintf(sub, sizeof sub, "%s:/config/%s", path, name);
        FmTaskConfig *tc = &c->task[t];
        get_name(&s, "name", tc->name, sizeof tc->name);
        get_enum(&s, "kind", parse_task, &tc->kind);
        tc->label0 = get_i(&s, "label0");
        tc->n = get_i(&s, "n");
        tc->weight = get_f(&s, "weight");
        tc->pos_weight = get_f(&s, "pos_weight");
        tc->huber_delta = get_f(&s, "huber_delta");
        r.st = s.st;
        H5Gclose(s.g);
    }
    H5Gclose(r.g);
    if (r.st) return r.st;
    if ((st = fm_model_config_check(c, err))) fm_error_prefix(err, "%s: configuration", path);
    return st;
}

static FmStatus read_params(hid_t file, const char *path, FmModel *model, FmError *err) {
    hid_t g;
    char where[FM_PATH_MAX + 64];
    FmStatus st = open_group(file, path, "params", &g, where, sizeof where, err);
    if (st) return st;
    st = fm_params_read_h5(g, path, &model->params, model->params.data, err);
    H5Gclose(g);
    return st;
}

FmStatus fm_model_file_load(const char *path, FmModel **model, int with_optimizer, FmNorm *norm, int *has_norm,
                            FmError *err) {
    *model = NULL;
    if (norm) memset(norm, 0, sizeof *norm);
    if (has_norm) *has_norm = 0;
    hid_t file;
    FmStatus st = open_checked(path, &file, err);
    if (st) return st;
    FmModelConfig cfg;
    FmModel *m = NULL;
    const int stored = fm_h5_exists(file, "norm");
    if (!(st = read_config(file, path, &cfg, err)) && !(st = fm_model_create(&m, &cfg, with_optimizer, err)) &&
        !(st = read_params(file, path, m, err)) && norm && stored &&
        !(st = fm_norm_read_h5(file, path, "norm", norm, err)))
        st = check_norm(m, norm, path, err);
    H5Fclose(file);
    if (st) {
        if (norm) fm_norm_free(norm);
        fm_model_free(m);
        return st;
    }
    *model = m;
    if (has_norm) *has_norm = stored;
    return FM_OK;
}

FmStatus fm_model_file_load_params(const char *path, FmModel *model, FmError *err) {
    hid_t file;
    FmStatus st = open_checked(path, &file, err);
    if (st) return st;
    st = read_params(file, path, model, err);
    H5Fclose(file);
    return st;
}
