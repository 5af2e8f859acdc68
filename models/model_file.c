#include "models/model_file.h"

#include <hdf5.h>
#include <stdio.h>
#include <string.h>

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
        if (!(st = put_s(s, "name", mc->name, err)) && !(st = put_s(s, "kind", fm_model_kind_name(mc->kind), err)) &&
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

/* The channel names joined by newlines, in a new buffer (NULL when out of memory). */
static char *join_channels(const FmNormStats *s) {
    size_t len = 1;
    for (int c = 0; c < s->C; c++) len += strlen(s->channel[c]) + 1;
    char *out = fm_malloc(len), *p = out;
    if (!out) return NULL;
    *p = '\0';
    for (int c = 0; c < s->C; c++) p += sprintf(p, c ? "\n%s" : "%s", s->channel[c]);
    return out;
}

static FmStatus check_stats(const FmModel *model, const FmNormStats *stats, int n_stats, const char *path,
                            FmError *err) {
    for (int i = 0; i < n_stats; i++) {
        const FmNormStats *s = &stats[i];
        int found = 0;
        for (int m = 0; m < model->cfg.M; m++) found |= strcmp(model->cfg.mod[m].name, s->name) == 0;
        if (!found)
            return FM_FAIL(err, FM_ERR_ARG, path, "normalisation statistics for \"%s\", which is not a modality of the model",
                           s->name);
        if (s->C < 0 || (s->C > 0 && (!s->channel || !s->mean || !s->std)))
            return FM_FAIL(err, FM_ERR_ARG, path, "normalisation statistics of %s: %d channels without arrays", s->name,
                           s->C);
        for (int u = 0; u < i; u++)
            if (strcmp(stats[u].name, s->name) == 0)
                return FM_FAIL(err, FM_ERR_ARG, path, "normalisation statistics of %s given twice", s->name);
        for (int c = 0; c < s->C; c++)
            if (!s->channel[c] || strchr(s->channel[c], '\n'))
                return FM_FAIL(err, FM_ERR_ARG, path, "normalisation statistics of %s: channel %d: name missing or with a "
                               "newline", s->name, c);
    }
    return FM_OK;
}

static FmStatus write_stats(hid_t file, const FmNormStats *stats, int n_stats, FmError *err) {
    hid_t g;
    FmStatus st = fm_h5_group_create(file, "normalization", &g, err);
    if (st) return st;
    for (int i = 0; i < n_stats && !st; i++) {
        const FmNormStats *s = &stats[i];
        hid_t r;
        if ((st = fm_h5_group_create(g, s->name, &r, err))) break;
        char *joined = join_channels(s);
        if (!joined) {
            st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory writing normalisation statistics");
        } else if (!(st = put_s(r, "name", s->name, err)) && !(st = put_s(r, "kind", fm_model_kind_name(s->kind), err)) &&
                   !(st = put_i(r, "C", s->C, err)) && !(st = put_s(r, "channels", joined, err)) &&
                   !(st = fm_h5_attr_write_f64_array(r, "mean", s->mean, (size_t)s->C, err))) {
            st = fm_h5_attr_write_f64_array(r, "std", s->std, (size_t)s->C, err);
        }
        fm_free(joined);
        H5Gclose(r);
    }
    H5Gclose(g);
    return st;
}

FmStatus fm_model_file_save(const char *path, const FmModel *model, const FmNormStats *stats, int n_stats,
                            FmError *err) {
    FmStatus st = check_stats(model, stats, n_stats, path, err);
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
        !(st = write_stats(file, stats, n_stats, err)) && !(st = fm_h5_group_create(file, "params", &pg, err)))
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
static int parse_kind(const char *s, void *o) { return fm_model_kind_parse(s, o); }
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

void fm_model_file_stats_free(FmNormStats *stats, int n_stats) {
    if (!stats) return;
    for (int i = 0; i < n_stats; i++) {
        if (stats[i].channel)
            for (int c = 0; c < stats[i].C; c++) fm_free(stats[i].channel[c]);
        fm_free(stats[i].channel);
        fm_free(stats[i].mean);
        fm_free(stats[i].std);
    }
    fm_free(stats);
}

/* Splits `joined` at newlines into C new strings. */
static FmStatus split_channels(FmNormStats *s, const char *joined, const char *where, FmError *err) {
    s->channel = fm_calloc((size_t)(s->C > 0 ? s->C : 1), sizeof *s->channel);
    if (!s->channel) return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading channel names");
    const char *p = joined;
    for (int c = 0; c < s->C; c++) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if ((!end && c < s->C - 1) || (end && c == s->C - 1))
            return FM_FAIL(err, FM_ERR_FORMAT, where, "attribute 'channels': expected %d names", s->C);
        s->channel[c] = fm_malloc(len + 1);
        if (!s->channel[c]) return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading channel names");
        memcpy(s->channel[c], p, len);
        s->channel[c][len] = '\0';
        p = end ? end + 1 : p + len;
    }
    return FM_OK;
}

/* Collects the names of the groups under /normalization. */
typedef struct {
    char names[FM_MODEL_MAX_MODALITIES][FM_MODALITY_NAME_MAX];
    int n, overflow;
} NameList;

static herr_t collect_name(hid_t g, const char *name, const H5L_info_t *info, void *data) {
    (void)g;
    (void)info;
    NameList *l = data;
    if (l->n >= FM_MODEL_MAX_MODALITIES || strlen(name) >= FM_MODALITY_NAME_MAX) {
        l->overflow = 1;
        return 1;
    }
    snprintf(l->names[l->n++], FM_MODALITY_NAME_MAX, "%s", name);
    return 0;
}

static FmStatus read_stats(hid_t file, const char *path, FmNormStats **out, int *n_out, FmError *err) {
    *out = NULL;
    *n_out = 0;
    char where[FM_PATH_MAX + 64];
    hid_t g;
    FmStatus st = open_group(file, path, "normalization", &g, where, sizeof where, err);
    if (st) return st;
    NameList list = {.n = 0};
    if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, collect_name, &list) < 0) {
        H5Gclose(g);
        return FM_FAIL(err, FM_ERR_FORMAT, where, "cannot list the normalisation statistics");
    }
    if (list.overflow) {
        H5Gclose(g);
        return FM_FAIL(err, FM_ERR_FORMAT, where, "too many or overlong normalisation records");
    }
    FmNormStats *stats = fm_calloc((size_t)(list.n ? list.n : 1), sizeof *stats);
    if (!stats) {
        H5Gclose(g);
        return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading normalisation statistics");
    }
    int n = 0;
    for (int i = 0; i < list.n && !st; i++) {
        char sub[FM_PATH_MAX + 96];
        Reader r = {.where = sub, .err = err};
        if ((st = open_group(g, where, list.names[i], &r.g, sub, sizeof sub, err))) break;
        snprintf(sub, sizeof sub, "%s:/normalization/%s", path, list.names[i]);
        FmNormStats *s = &stats[n++];
        get_name(&r, "name", s->name, sizeof s->name);
        get_enum(&r, "kind", parse_kind, &s->kind);
        s->C = get_i(&r, "C");
        if (!r.st && s->C < 0) r.st = FM_FAIL(err, FM_ERR_FORMAT, sub, "%d channels", s->C);
        char *joined = NULL;
        if (!r.st) r.st = fm_h5_attr_read_str(r.g, sub, "channels", &joined, err);
        if (!r.st) r.st = split_channels(s, joined, sub, err);
        fm_free(joined);
        size_t nm = 0, ns = 0;
        if (!r.st) r.st = fm_h5_attr_read_f64_array(r.g, sub, "mean", &s->mean, &nm, err);
        if (!r.st) r.st = fm_h5_attr_read_f64_array(r.g, sub, "std", &s->std, &ns, err);
        if (!r.st && (nm != (size_t)s->C || ns != (size_t)s->C))
            r.st = FM_FAIL(err, FM_ERR_FORMAT, sub, "%zu means and %zu deviations for %d channels", nm, ns, s->C);
        st = r.st;
        H5Gclose(r.g);
    }
    H5Gclose(g);
    if (st) {
        fm_model_file_stats_free(stats, n);
        return st;
    }
    *out = stats;
    *n_out = n;
    return FM_OK;
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

FmStatus fm_model_file_load(const char *path, FmModel **model, int with_optimizer, FmNormStats **stats,
                            int *n_stats, FmError *err) {
    *model = NULL;
    if (stats) *stats = NULL;
    if (n_stats) *n_stats = 0;
    hid_t file;
    FmStatus st = open_checked(path, &file, err);
    if (st) return st;
    FmModelConfig cfg;
    FmModel *m = NULL;
    FmNormStats *s = NULL;
    int ns = 0;
    if (!(st = read_config(file, path, &cfg, err)) && !(st = fm_model_create(&m, &cfg, with_optimizer, err)) &&
        !(st = read_params(file, path, m, err)) && stats)
        st = read_stats(file, path, &s, &ns, err);
    H5Fclose(file);
    if (st) {
        fm_model_free(m);
        return st;
    }
    *model = m;
    if (stats) {
        *stats = s;
        *n_stats = ns;
    }
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
