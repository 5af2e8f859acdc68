/* The results of an ablation (src/ablate_results.h). */
#include "src/ablate_results.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/results_table.h"
#include "src/strbuf.h"
#include "src/train_folder.h"

/* The value of metric "<task>.<metric>": tasks.<task>.<metric> of metrics.json (its "value"
 * when it is an object), or experts.<metric> for task "experts"; NaN when absent. */
static double member_value(const cJSON *root, const cJSON *tasks, const char *name) {
    const char *dot = strchr(name, '.');
    char task[96];
    snprintf(task, sizeof task, "%.*s", (int)(dot - name), name);
    const cJSON *t = strcmp(task, "experts") == 0 ? cJSON_GetObjectItemCaseSensitive(root, "experts")
                                                  : cJSON_GetObjectItemCaseSensitive(tasks, task);
    const cJSON *m = t ? cJSON_GetObjectItemCaseSensitive(t, dot + 1) : NULL;
    if (cJSON_IsObject(m)) m = cJSON_GetObjectItemCaseSensitive(m, "value");
    return cJSON_IsNumber(m) ? m->valuedouble : NAN;
}

FmStatus fm_ablate_results_read_metrics(const FmAblateGrid *g, const char *path, double *values,
                                        FmError *err) {
    char *text;
    FmStatus st = fm_train_folder_read(path, &text, err);
    if (st != FM_OK) return st;
    cJSON *root = cJSON_Parse(text);
    fm_free(text);
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(root, "tasks");
    if (!cJSON_IsObject(tasks)) {
        cJSON_Delete(root);
        return FM_FAIL(err, FM_ERR_FORMAT, path, "not a metrics file (no \"tasks\" object)");
    }
    for (int m = 0; m < g->n_metrics; m++)
        values[m] = member_value(root, tasks, g->metrics[m]);
    cJSON_Delete(root);
    return FM_OK;
}

double fm_ablate_results_read_seconds(const char *path) {
    char *text;
    if (fm_train_folder_read(path, &text, NULL) != FM_OK) return NAN;
    cJSON *root = cJSON_Parse(text);
    fm_free(text);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "train_seconds");
    double v = cJSON_IsNumber(s) ? s->valuedouble : NAN;
    cJSON_Delete(root);
    return v;
}

/* A CSV field, quoted when it holds a comma, a quote, a line break or outer spaces. */
static void csv_field(FmStrBuf *b, const char *s) {
    size_t n = strlen(s);
    int quote = strpbrk(s, ",\"\r\n") != NULL || (n && (s[0] == ' ' || s[n - 1] == ' '));
    if (!quote) {
        fm_strbuf_append(b, s);
        return;
    }
    fm_strbuf_append(b, "\"");
    for (; *s; s++)
        fm_strbuf_append_n(b, *s == '"' ? "\"\"" : s, *s == '"' ? 2 : 1);
    fm_strbuf_append(b, "\"");
}

static void csv_number(FmStrBuf *b, double x) {
    fm_strbuf_append(b, ",");
    if (!isnan(x)) fm_strbuf_append_double(b, x);
}

static char *results_csv(const FmAblateGrid *g, const FmAblateRow *rows, int n) {
    FmStrBuf b;
    fm_strbuf_init(&b);
    fm_strbuf_append(&b, "config");
    for (int a = 0; a < g->n_axes; a++) {
        fm_strbuf_append(&b, ",");
        csv_field(&b, g->axes[a].key);
    }
    fm_strbuf_append(&b, ",split,seed");
    for (int m = 0; m < g->n_metrics; m++) {
        fm_strbuf_append(&b, ",");
        csv_field(&b, g->metrics[m]);
    }
    fm_strbuf_append(&b, ",train_seconds\n");
    for (int i = 0; i < n; i++) {
        const FmAblateRow *r = &rows[i];
        csv_field(&b, g->config_name[r->config]);
        for (int a = 0; a < g->n_axes; a++) {
            fm_strbuf_append(&b, ",");
            csv_field(&b, g->axes[a].label[g->choice[(size_t)r->config * g->n_axes + a]]);
        }
        fm_strbuf_appendf(&b, ",%ld,%ld", r->split, r->seed);
        for (int m = 0; m < g->n_metrics; m++)
            csv_number(&b, r->complete ? r->values[m] : NAN);
        csv_number(&b, r->train_seconds);
        fm_strbuf_append(&b, "\n");
    }
    return fm_strbuf_take(&b);
}

/* Appends the table of task `task` (the grid's metrics that start with "task."). */
static FmStatus task_table(const FmAblateGrid *g, const FmAblateRow *rows, int n, const char *task,
                           FmStrBuf *md, FmError *err) {
    FmResults res;
    fm_results_init(&res);
    const char *names[64];
    int idx[64], k = 0;
    size_t tl = strlen(task);
    for (int m = 0; m < g->n_metrics && k < 64; m++)
        if (strncmp(g->metrics[m], task, tl) == 0 && g->metrics[m][tl] == '.')
            names[k] = g->metrics[m], idx[k++] = m;
    FmStatus st = FM_OK;
    int has_baseline = 0;
    for (int i = 0; i < n && st == FM_OK; i++) {
        if (!rows[i].complete) continue;
        double v[64];
        for (int j = 0; j < k; j++)
            v[j] = rows[i].values[idx[j]];
        st = fm_results_add(&res, g->config_name[rows[i].config], rows[i].split, rows[i].seed, names, v, k,
                            err);
        has_baseline |= strcmp(g->config_name[rows[i].config], g->baseline) == 0;
    }
    FmTableColumn cols[64];
    char labels[64][48];
    for (int j = 0; j < k; j++)
        fm_results_column_style(names[j], &cols[j], labels[j], sizeof labels[j]);
    char *table = NULL;
    if (st == FM_OK && res.n_rows > 0) {
        FmTableSpec spec = {.columns = cols, .n_columns = k, .baseline = has_baseline ? g->baseline : NULL};
        st = fm_results_table_markdown(&res, &spec, &table, err);
    }
    if (st == FM_OK) {
        fm_strbuf_appendf(md, "\n## %s\n\n", task);
        fm_strbuf_append(md, table ? table : "No complete run.\n");
    }
    fm_free(table);
    fm_results_free(&res);
    return st;
}

static char *results_markdown(const FmAblateGrid *g, const FmAblateRow *rows, int n, FmError *err,
                              FmStatus *st) {
    FmStrBuf md;
    fm_strbuf_init(&md);
    int complete = 0;
    for (int i = 0; i < n; i++)
        complete += rows[i].complete;
    fm_strbuf_appendf(&md, "# Ablation: %s\n\n", g->path);
    fm_strbuf_appendf(&md, "Base study `%s`; %d configuration%s", g->study, g->n_configs,
                      g->n_configs == 1 ? "" : "s");
    for (int a = 0; a < g->n_axes; a++) {
        fm_strbuf_appendf(&md, "%s`%s` = ", a ? ", " : " (", g->axes[a].key);
        for (int v = 0; v < g->axes[a].n; v++)
            fm_strbuf_appendf(&md, "%s%s", v ? " | " : "", g->axes[a].label[v]);
        if (g->axes[a].eval_only) fm_strbuf_append(&md, " (evaluation only)");
    }
    fm_strbuf_append(&md, g->n_axes ? ")" : "");
    fm_strbuf_append(&md, "; splits");
    for (int s = 0; s < g->n_splits; s++)
        fm_strbuf_appendf(&md, "%s %ld", s ? "," : "", g->splits[s]);
    fm_strbuf_append(&md, "; seeds");
    for (int s = 0; s < g->n_seeds; s++)
        fm_strbuf_appendf(&md, "%s %ld", s ? "," : "", g->seeds[s]);
    fm_strbuf_appendf(&md, "; %d of %d runs complete.\n\n", complete, n);
    fm_strbuf_appendf(
        &md,
        "Test-part metrics of each run's best epoch. Per configuration: mean +- sample std over its "
        "runs [95%% t interval of the mean]. Against the baseline (%s): mean paired difference over "
        "the (split, seed) pairs both have [95%% t interval], paired t-test p-value.\n",
        g->baseline);
    /* One table per task, in the order the metrics name them. */
    *st = FM_OK;
    for (int m = 0; m < g->n_metrics && *st == FM_OK; m++) {
        const char *dot = strchr(g->metrics[m], '.');
        int seen = 0;
        for (int u = 0; u < m; u++)
            seen |= strncmp(g->metrics[u], g->metrics[m], (size_t)(dot - g->metrics[m] + 1)) == 0;
        if (seen) continue;
        char task[96];
        snprintf(task, sizeof task, "%.*s", (int)(dot - g->metrics[m]), g->metrics[m]);
        *st = task_table(g, rows, n, task, &md, err);
    }
    if (*st != FM_OK) {
        fm_strbuf_free(&md);
        return NULL;
    }
    char *text = fm_strbuf_take(&md);
    if (!text) *st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    return text;
}

FmStatus fm_ablate_results_write(const FmAblateGrid *g, const FmAblateRow *rows, int n, const char *dir,
                                 char **markdown, FmError *err) {
    *markdown = NULL;
    char path[FM_PATH_MAX];
    char *csv = results_csv(g, rows, n);
    if (!csv) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    snprintf(path, sizeof path, "%s/results.csv", dir);
    FmStatus st = fm_atomic_write_all(path, csv, strlen(csv), err);
    fm_free(csv);
    if (st != FM_OK) return st;
    char *md = results_markdown(g, rows, n, err, &st);
    if (!md) return st;
    snprintf(path, sizeof path, "%s/results.md", dir);
    st = fm_atomic_write_all(path, md, strlen(md), err);
    if (st != FM_OK) {
        fm_free(md);
        return st;
    }
    *markdown = md;
    return FM_OK;
}
