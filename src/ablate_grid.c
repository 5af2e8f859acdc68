/* Ablation grids (src/ablate_grid.h). */
#include "src/ablate_grid.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/strbuf.h"

/* Metrics of metrics.json by task kind, for checking the grid's metrics line. */
static const char *const BINARY_METRICS[] = {"auroc", "auprc", "f1", "f1_at_0.5", "brier", "ece", NULL};
static const char *const MULTI_METRICS[] = {"macro_auroc", "micro_auroc", "macro_f1", "macro_f1_at_0.5",
                                            NULL};
static const char *const REGRESSION_METRICS[] = {"mae", "rmse", "r2", "mae_days", NULL};
/* Expert diagnostics of metrics.json ("experts", src/evaluate_experts.h) */
static const char *const EXPERT_METRICS[] = {"entropy", "dead", "similarity", "agreement", NULL};

static int in_list(const char *const *list, const char *s) {
    for (; *list; list++)
        if (strcmp(*list, s) == 0) return 1;
    return 0;
}

static const FmConfigKey *schema_key(const char *dotted) {
    int n;
    const FmConfigKey *keys = fm_config_schema(&n);
    const char *dot = strchr(dotted, '.');
    if (!dot) return NULL;
    for (int i = 0; i < n; i++)
        if (strlen(keys[i].section) == (size_t)(dot - dotted) &&
            strncmp(keys[i].section, dotted, (size_t)(dot - dotted)) == 0 &&
            strcmp(keys[i].key, dot + 1) == 0)
            return &keys[i];
    return NULL;
}

void fm_ablate_grid_free(FmAblateGrid *g) {
    if (!g) return;
    fm_free(g->path);
    fm_free(g->study);
    fm_config_free(&g->base);
    fm_free(g->seeds);
    fm_free(g->splits);
    fm_free(g->baseline);
    for (int i = 0; i < g->n_metrics; i++)
        fm_free(g->metrics[i]);
    fm_free(g->metrics);
    for (int i = 0; i < g->n_sets; i++)
        fm_free(g->sets[i].value);
    fm_free(g->sets);
    for (int a = 0; a < g->n_axes; a++) {
        for (int v = 0; v < g->axes[a].n; v++) {
            fm_free(g->axes[a].value[v]);
            fm_free(g->axes[a].label[v]);
        }
        fm_free(g->axes[a].value);
        fm_free(g->axes[a].label);
    }
    for (int c = 0; c < g->n_configs; c++) {
        fm_free(g->config_name[c]);
        fm_free(g->train_name[c]);
    }
    fm_free(g->config_name);
    fm_free(g->train_name);
    fm_free(g->choice);
    memset(g, 0, sizeof *g);
}

/* ---- parsing ---- */

typedef struct {
    FmAblateGrid *g;
    const char *name; /* the file, for messages */
    const char *pos;
    int line;
    char section[64];
    int section_ok;
    int seen_study, seen_baseline, seen_metrics;
    FmError first; /* the first error (by line) */
    int first_line;
} Parse;

static void record(Parse *ps, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void record(Parse *ps, int line, const char *fmt, ...) {
    if (ps->first.code != FM_OK && ps->first_line <= line) return;
    char msg[900], where[FM_PATH_MAX + 16];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(where, sizeof where, "%s:%d", ps->name, line);
    FM_FAIL(&ps->first, FM_ERR_CONFIG, where, "%s", msg);
    ps->first_line = line;
}

static char *read_line(char *str, int num, void *stream) {
    Parse *ps = stream;
    if (!*ps->pos) return NULL;
    ps->line++;
    const char *start = ps->pos, *nl = strchr(start, '\n');
    size_t len = nl ? (size_t)(nl - start) : strlen(start);
    ps->pos = nl ? nl + 1 : start + len;
    if (ps->line == 1 && len >= 3 && memcmp(start, "\xEF\xBB\xBF", 3) == 0) start += 3, len -= 3;
    while (len && (*start == ' ' || *start == '\t'))
        start++, len--;
    if (len && start[len - 1] == '\r') len--;
    if (len + 3 > (size_t)num) {
        record(ps, ps->line, "line longer than %d characters", num - 3);
        len = 0;
    }
    memcpy(str, start, len);
    str[len] = '\n';
    str[len + 1] = '\0';
    if (len && start[0] == '[') {
        const char *close = memchr(start, ']', len);
        if (close) {
            size_t n = (size_t)(close - start - 1);
            if (n >= sizeof ps->section) n = sizeof ps->section - 1;
            memcpy(ps->section, start + 1, n);
            ps->section[n] = '\0';
            ps->section_ok =
                !strcmp(ps->section, "grid") || !strcmp(ps->section, "set") || !strcmp(ps->section, "axes");
            if (!ps->section_ok)
                record(ps, ps->line, "[%s]: unknown section (sections: grid, set, axes)", ps->section);
        }
    }
    return str;
}

/* Copies s without its surrounding spaces into a new string. */
static char *trimmed(const char *s, size_t len) {
    while (len && isspace((unsigned char)*s))
        s++, len--;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    char *out = fm_malloc(len + 1);
    if (out) {
        memcpy(out, s, len);
        out[len] = '\0';
    }
    return out;
}

/* Parses "1, 2, 3" into a new array of longs in [0, max]. Returns the count, or -1 (message in
 * msg). */
static int parse_longs(const char *text, long max, long **out, char *msg, size_t cap) {
    int n = 1;
    for (const char *p = text; *p; p++)
        n += *p == ',';
    long *v = fm_malloc_array((size_t)n, sizeof *v);
    if (!v) {
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    const char *p = text;
    for (int i = 0; i < n; i++) {
        char *end;
        while (isspace((unsigned char)*p))
            p++;
        errno = 0;
        long x = strtol(p, &end, 10);
        while (isspace((unsigned char)*end))
            end++;
        if (end == p || errno || x < 0 || x > max || (*end != ',' && *end != '\0')) {
            snprintf(msg, cap, "item %d: expected an integer from 0 to %ld", i + 1, max);
            fm_free(v);
            return -1;
        }
        for (int k = 0; k < i; k++)
            if (v[k] == x) {
                snprintf(msg, cap, "%ld is listed twice", x);
                fm_free(v);
                return -1;
            }
        v[i] = x;
        p = *end ? end + 1 : end;
    }
    *out = v;
    return n;
}

/* Whether key `key` is set by [set] or an axis already. */
static int grid_sets(const FmAblateGrid *g, const char *key) {
    for (int i = 0; i < g->n_sets; i++)
        if (strcmp(g->sets[i].key, key) == 0) return 1;
    for (int a = 0; a < g->n_axes; a++)
        if (strcmp(g->axes[a].key, key) == 0) return 1;
    return 0;
}

/* Checks a configuration key named in [set] or [axes]; 0 when usable. */
static int check_key(Parse *ps, const char *key) {
    if (!schema_key(key)) {
        record(ps, ps->line, "[%s] %s: unknown configuration key (write section.key, e.g. model.gate)",
               ps->section, key);
        return -1;
    }
    if (strcmp(key, "data.split") == 0 || strcmp(key, "train.seed") == 0) {
        record(ps, ps->line, "[%s] %s: give splits and seeds in [grid] (splits = ..., seeds = ...)",
               ps->section, key);
        return -1;
    }
    if (strlen(key) >= FM_ABLATE_KEY_MAX || grid_sets(ps->g, key)) {
        record(ps, ps->line, "[%s] %s: set twice in the grid", ps->section, key);
        return -1;
    }
    return 0;
}

static int add_axis(Parse *ps, const char *key, const char *text) {
    FmAblateGrid *g = ps->g;
    if (g->n_axes == FM_ABLATE_MAX_AXES) {
        record(ps, ps->line, "[axes] %s: more than %d axes", key, FM_ABLATE_MAX_AXES);
        return 0;
    }
    const FmConfigKey *k = schema_key(key);
    int is_list = k->type == FM_CFG_LIST || k->type == FM_CFG_FLOAT_LIST;
    int n = 1;
    for (const char *p = text; *p; p++)
        n += *p == '|';
    FmAblateAxis *ax = &g->axes[g->n_axes++]; /* counted at once, so the grid frees it */
    memset(ax, 0, sizeof *ax);
    snprintf(ax->key, sizeof ax->key, "%s", key);
    ax->line = ps->line;
    ax->eval_only = strcmp(k->section, "eval") == 0;
    ax->value = fm_calloc((size_t)n, sizeof *ax->value);
    ax->label = fm_calloc((size_t)n, sizeof *ax->label);
    if (!ax->value || !ax->label) goto nomem;
    const char *p = text;
    for (int i = 0; i < n; i++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        char *v = trimmed(p, len);
        p = bar ? bar + 1 : p + len;
        if (!v) goto nomem;
        ax->n = i + 1;
        ax->value[i] = v;
        if (!v[0]) {
            record(ps, ps->line, "[axes] %s: value %d is empty", key, i + 1);
            return 0;
        }
        /* A list value: items separated by + or ",", written "a, b" in the configuration and
         * "a+b" in names. */
        FmStrBuf val, lab;
        fm_strbuf_init(&val);
        fm_strbuf_init(&lab);
        if (is_list) {
            const char *q = v;
            int first = 1;
            while (*q) {
                size_t m = strcspn(q, "+,");
                char *item = trimmed(q, m);
                if (!item) {
                    fm_strbuf_free(&val);
                    fm_strbuf_free(&lab);
                    goto nomem;
                }
                if (item[0]) {
                    fm_strbuf_appendf(&val, "%s%s", first ? "" : ", ", item);
                    fm_strbuf_appendf(&lab, "%s%s", first ? "" : "+", item);
                    first = 0;
                }
                fm_free(item);
                q += m;
                if (*q) q++;
            }
        } else {
            fm_strbuf_append(&val, v);
            fm_strbuf_append(&lab, v);
        }
        char *vs = fm_strbuf_take(&val), *ls = fm_strbuf_take(&lab);
        if (!vs || !ls) {
            fm_free(vs);
            fm_free(ls);
            goto nomem;
        }
        fm_free(ax->value[i]);
        ax->value[i] = vs;
        ax->label[i] = ls;
        if (strchr(ls, '/')) {
            record(ps, ps->line, "[axes] %s: value \"%s\" contains \"/\", which separates names", key, ls);
            return 0;
        }
        for (int u = 0; u < i; u++)
            if (strcmp(ax->label[u], ls) == 0) {
                record(ps, ps->line, "[axes] %s: value \"%s\" is listed twice", key, ls);
                return 0;
            }
    }
    return 0;
nomem:
    record(ps, ps->line, "out of memory");
    ps->first.code = FM_ERR_NOMEM;
    return 0;
}

static int on_pair(void *user, const char *section, const char *key, const char *value) {
    Parse *ps = user;
    FmAblateGrid *g = ps->g;
    if (!section[0]) {
        record(ps, ps->line, "key \"%s\" is outside any section ([grid], [set] or [axes])", key);
        return 1;
    }
    if (!ps->section_ok) return 1;
    char msg[256];
    if (strcmp(section, "grid") == 0) {
        if (strcmp(key, "study") == 0) {
            if (ps->seen_study++)
                record(ps, ps->line, "[grid] study: set twice");
            else if (!(g->study = fm_strdup(value)))
                record(ps, ps->line, "out of memory");
            else if (!value[0])
                record(ps, ps->line, "[grid] study: empty");
        } else if (strcmp(key, "seeds") == 0 || strcmp(key, "splits") == 0) {
            int seeds = key[1] == 'e';
            if (seeds ? g->seeds_line : g->splits_line) {
                record(ps, ps->line, "[grid] %s: set twice", key);
                return 1;
            }
            long *v;
            int n = parse_longs(value, seeds ? 2147483647L : 9999, &v, msg, sizeof msg);
            if (n < 0) {
                record(ps, ps->line, "[grid] %s: %s", key, msg);
                return 1;
            }
            if (seeds)
                g->seeds = v, g->n_seeds = n, g->seeds_line = ps->line;
            else
                g->splits = v, g->n_splits = n, g->splits_line = ps->line;
        } else if (strcmp(key, "baseline") == 0) {
            if (ps->seen_baseline++)
                record(ps, ps->line, "[grid] baseline: set twice");
            else if (!(g->baseline = fm_strdup(value)))
                record(ps, ps->line, "out of memory");
        } else if (strcmp(key, "metrics") == 0) {
            if (ps->seen_metrics++) {
                record(ps, ps->line, "[grid] metrics: set twice");
                return 1;
            }
            int n = 1;
            for (const char *p = value; *p; p++)
                n += *p == ',';
            if (!(g->metrics = fm_calloc((size_t)n, sizeof *g->metrics))) {
                record(ps, ps->line, "out of memory");
                return 1;
            }
            const char *p = value;
            for (int i = 0; i < n; i++) {
                size_t len = strcspn(p, ",");
                char *m = trimmed(p, len);
                p += len + (p[len] == ',');
                if (!m) {
                    record(ps, ps->line, "out of memory");
                    return 1;
                }
                g->metrics[g->n_metrics++] = m;
                const char *dot = strchr(m, '.');
                char task[64];
                snprintf(task, sizeof task, "%.*s", dot ? (int)(dot - m) : 0, m);
                const char *metric = dot ? dot + 1 : "";
                int ok = dot && ((!strcmp(task, "mortality") || !strcmp(task, "los_binary"))
                                     ? in_list(BINARY_METRICS, metric)
                                 : !strcmp(task, "phenotypes")     ? in_list(MULTI_METRICS, metric)
                                 : !strcmp(task, "los_regression") ? in_list(REGRESSION_METRICS, metric)
                                 : !strcmp(task, "experts")        ? in_list(EXPERT_METRICS, metric)
                                                                   : 0);
                if (!ok) {
                    record(
                        ps, ps->line,
                        "[grid] metrics: \"%s\" is not <task>.<metric> (tasks mortality, los_binary, "
                        "los_regression, phenotypes; metrics auroc, auprc, f1, f1_at_0.5, brier, ece / "
                        "macro_auroc, micro_auroc, macro_f1, macro_f1_at_0.5 / mae, rmse, r2, mae_days; or "
                        "experts.<entropy|dead|similarity|agreement>)",
                        m);
                    return 1;
                }
            }
        } else {
            record(ps, ps->line, "[grid] %s: unknown key (keys: study, seeds, splits, baseline, metrics)",
                   key);
        }
        return 1;
    }
    if (check_key(ps, key) != 0) return 1;
    if (strcmp(key, "train.threads") == 0) g->threads_set = 1;
    if (strcmp(section, "set") == 0) {
        FmAblateSet *s = fm_realloc(g->sets, (size_t)(g->n_sets + 1) * sizeof *s);
        if (!s) {
            record(ps, ps->line, "out of memory");
            return 1;
        }
        g->sets = s;
        s = &g->sets[g->n_sets];
        memset(s, 0, sizeof *s);
        if (!(s->value = fm_strdup(value))) {
            record(ps, ps->line, "out of memory");
            return 1;
        }
        snprintf(s->key, sizeof s->key, "%s", key);
        s->line = ps->line;
        g->n_sets++;
        return 1;
    }
    add_axis(ps, key, value);
    return 1;
}

/* ---- configurations ---- */

/* Applies `key` = `value` as if read at line `line` of file `name`, so that errors and
 * fm_config_where name that line. */
static FmStatus apply_at(FmConfig *cfg, const char *name, int line, const char *key, const char *value,
                         FmError *err) {
    const char *dot = strchr(key, '.');
    FM_ASSERT(dot && line >= 2);
    size_t len = (size_t)line + strlen(key) + strlen(value) + 16;
    char *text = fm_malloc(len);
    if (!text) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    size_t k = 0;
    for (int i = 0; i < line - 2; i++)
        text[k++] = '\n';
    snprintf(text + k, len - k, "[%.*s]\n%s = %s\n", (int)(dot - key), key, dot + 1, value);
    FmStatus st = fm_config_load_string(cfg, text, name, err);
    fm_free(text);
    return st;
}

FmStatus fm_ablate_grid_config(const FmAblateGrid *g, int config, long split, long seed, int with_eval_axes,
                               FmConfig *cfg, FmError *err) {
    FmStatus st = fm_config_copy(cfg, &g->base, err);
    if (st != FM_OK) return st;
    for (int a = 0; a < g->n_axes && st == FM_OK; a++) {
        const FmAblateAxis *ax = &g->axes[a];
        if (ax->eval_only && !with_eval_axes) continue;
        st = apply_at(cfg, g->path, ax->line, ax->key, ax->value[g->choice[(size_t)config * g->n_axes + a]],
                      err);
    }
    char num[32];
    if (st == FM_OK && g->splits_line) {
        snprintf(num, sizeof num, "%ld", split);
        st = apply_at(cfg, g->path, g->splits_line, "data.split", num, err);
    }
    if (st == FM_OK && g->seeds_line) {
        snprintf(num, sizeof num, "%ld", seed);
        st = apply_at(cfg, g->path, g->seeds_line, "train.seed", num, err);
    }
    if (st == FM_OK && !g->threads_set) st = fm_config_apply_set(cfg, "train.threads=1", err);
    if (st != FM_OK) fm_config_free(cfg);
    return st;
}

int fm_ablate_grid_find(const FmAblateGrid *g, const char *name) {
    for (int c = 0; c < g->n_configs; c++)
        if (strcmp(g->config_name[c], name) == 0) return c;
    return -1;
}

/* The names of every configuration and of its training configuration. */
static FmStatus expand(FmAblateGrid *g, FmError *err) {
    long n = 1;
    for (int a = 0; a < g->n_axes; a++) {
        n *= g->axes[a].n;
        if (n > FM_ABLATE_MAX_CONFIGS)
            return FM_FAIL(err, FM_ERR_CONFIG, g->path, "more than %d configurations", FM_ABLATE_MAX_CONFIGS);
    }
    g->config_name = fm_calloc((size_t)n, sizeof *g->config_name);
    g->train_name = fm_calloc((size_t)n, sizeof *g->train_name);
    g->choice = fm_calloc((size_t)n * (size_t)(g->n_axes ? g->n_axes : 1), sizeof *g->choice);
    if (!g->config_name || !g->train_name || !g->choice)
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    g->n_configs = (int)n;
    for (long c = 0; c < n; c++) {
        long rest = c;
        for (int a = g->n_axes - 1; a >= 0; a--) {
            g->choice[c * g->n_axes + a] = (int)(rest % g->axes[a].n);
            rest /= g->axes[a].n;
        }
        FmStrBuf name, train;
        fm_strbuf_init(&name);
        fm_strbuf_init(&train);
        for (int a = 0; a < g->n_axes; a++) {
            const char *label = g->axes[a].label[g->choice[c * g->n_axes + a]];
            fm_strbuf_appendf(&name, "%s%s", a ? "/" : "", label);
            if (!g->axes[a].eval_only) fm_strbuf_appendf(&train, "%s%s", train.len ? "/" : "", label);
        }
        if (!g->n_axes) fm_strbuf_append(&name, "base");
        if (!train.len) fm_strbuf_append(&train, "base");
        g->config_name[c] = fm_strbuf_take(&name);
        g->train_name[c] = fm_strbuf_take(&train);
        if (!g->config_name[c] || !g->train_name[c]) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    }
    return FM_OK;
}

/* The default metrics: per task of the base study its headline metrics. */
static FmStatus default_metrics(FmAblateGrid *g, FmError *err) {
    size_t n_tasks = fm_config_list_len(&g->base, "data.tasks");
    g->metrics = fm_calloc(2 * n_tasks + 1, sizeof *g->metrics);
    if (!g->metrics) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    for (size_t t = 0; t < n_tasks; t++) {
        const char *task = fm_config_list_item(&g->base, "data.tasks", t);
        const char *m1 = "auroc", *m2 = "auprc";
        if (strcmp(task, "phenotypes") == 0) m1 = "macro_auroc", m2 = "micro_auroc";
        if (strcmp(task, "los_regression") == 0) m1 = "mae_days", m2 = "r2";
        const char *ms[2] = {m1, m2};
        for (int k = 0; k < 2; k++) {
            char buf[96];
            snprintf(buf, sizeof buf, "%s.%s", task, ms[k]);
            if (!(g->metrics[g->n_metrics] = fm_strdup(buf)))
                return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
            g->n_metrics++;
        }
    }
    return FM_OK;
}

/* The base study's path: relative paths are relative to the grid file's folder. */
static char *study_path(const char *grid, const char *study) {
    const char *slash = strrchr(grid, '/');
    if (study[0] == '/' || !slash) return fm_strdup(study);
    size_t len = (size_t)(slash - grid) + 1 + strlen(study) + 1;
    char *p = fm_malloc(len);
    if (p) snprintf(p, len, "%.*s/%s", (int)(slash - grid), grid, study);
    return p;
}

static FmStatus load_text(const char *path, char **text, FmError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return FM_FAIL(err, FM_ERR_IO, path, "cannot open the grid file: %s", strerror(errno));
    enum { MAX_BYTES = 1 << 20 };
    char *buf = fm_malloc(MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MAX_BYTES + 1, f) : 0;
    fclose(f);
    if (!buf) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    if (n > MAX_BYTES || memchr(buf, '\0', n)) {
        fm_free(buf);
        return FM_FAIL(err, FM_ERR_CONFIG, path, "not a grid file (larger than 1 MB, or binary)");
    }
    buf[n] = '\0';
    *text = buf;
    return FM_OK;
}

FmStatus fm_ablate_grid_load(const char *path, FmAblateGrid *g, FmError *err) {
    memset(g, 0, sizeof *g);
    char *text = NULL;
    FmStatus st = load_text(path, &text, err);
    if (st != FM_OK) return st;
    if (!(g->path = fm_strdup(path))) {
        fm_free(text);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    }
    Parse ps;
    memset(&ps, 0, sizeof ps);
    ps.g = g;
    ps.name = path;
    ps.pos = text;
    int rc = ini_parse_stream(read_line, &ps, on_pair, &ps);
    if (rc > 0) record(&ps, rc, "syntax error: expected \"[section]\", \"key = value\" or a comment");
    fm_free(text);
    if (ps.first.code == FM_OK && !g->study)
        record(&ps, ps.line > 0 ? ps.line : 1, "[grid] study: missing (the base study file)");
    if (ps.first.code != FM_OK) {
        if (err) *err = ps.first;
        st = ps.first.code;
        goto fail;
    }
    /* The base study with the [set] overrides */
    char *sp = study_path(path, g->study);
    if (!sp) {
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
        goto fail;
    }
    fm_free(g->study);
    g->study = sp;
    if ((st = fm_config_init(&g->base, err)) != FM_OK ||
        (st = fm_config_load(&g->base, g->study, err)) != FM_OK)
        goto fail;
    for (int i = 0; i < g->n_sets && st == FM_OK; i++)
        st = apply_at(&g->base, path, g->sets[i].line, g->sets[i].key, g->sets[i].value, err);
    if (st != FM_OK) goto fail;
    if (!g->seeds_line) {
        if (!(g->seeds = fm_malloc(sizeof *g->seeds))) goto nomem;
        g->seeds[0] = fm_config_int(&g->base, "train.seed");
        g->n_seeds = 1;
    }
    if (!g->splits_line) {
        if (!(g->splits = fm_malloc(sizeof *g->splits))) goto nomem;
        g->splits[0] = fm_config_int(&g->base, "data.split");
        g->n_splits = 1;
    }
    if (!g->n_metrics && (st = default_metrics(g, err)) != FM_OK) goto fail;
    if ((st = expand(g, err)) != FM_OK) goto fail;
    if (!g->baseline && !(g->baseline = fm_strdup(g->config_name[0]))) goto nomem;
    if (fm_ablate_grid_find(g, g->baseline) < 0) {
        FmStrBuf b;
        fm_strbuf_init(&b);
        for (int c = 0; c < g->n_configs && c < 20; c++)
            fm_strbuf_appendf(&b, "%s%s", c ? ", " : "", g->config_name[c]);
        st = FM_FAIL(err, FM_ERR_CONFIG, path,
                     "[grid] baseline: \"%s\" is not a configuration of the grid (%s%s)", g->baseline,
                     b.data ? b.data : "", g->n_configs > 20 ? ", ..." : "");
        fm_strbuf_free(&b);
        goto fail;
    }
    /* Every configuration must pass the configuration rules before anything runs. */
    for (int c = 0; c < g->n_configs; c++) {
        FmConfig cfg;
        if ((st = fm_ablate_grid_config(g, c, g->splits[0], g->seeds[0], 1, &cfg, err)) == FM_OK) {
            st = fm_config_check(&cfg, err);
            fm_config_free(&cfg);
        }
        if (st != FM_OK) {
            fm_error_prefix(err, "configuration %s", g->config_name[c]);
            goto fail;
        }
    }
    return FM_OK;
nomem:
    st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
fail:
    fm_ablate_grid_free(g);
    return st;
}
