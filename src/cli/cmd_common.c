/* Helpers shared by the study commands (src/cli/cmd_common.h). */
#include "src/cli/cmd_common.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"

void fm_cli_report(const char *cmd, const FmError *err) {
    fprintf(stderr, "fusemoe %s: ", cmd);
    fm_error_print(err, stderr);
}

int fm_cli_exit_status(FmStatus st) { return st == FM_ERR_INTERRUPTED ? FM_EXIT_INTERRUPTED : 1; }

int fm_cli_parse_long(const char *cmd, const char *opt, const char *s, long min, long max, long *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (end == s || *end || errno || v < min || v > max) {
        fprintf(stderr, "fusemoe %s: %s: expected an integer from %ld to %ld, got \"%s\"\n", cmd, opt, min, max, s);
        return 0;
    }
    *out = v;
    return 1;
}

int fm_cli_parse_double(const char *cmd, const char *opt, const char *s, double min, double max, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= min && v <= max)) {
        fprintf(stderr, "fusemoe %s: %s: expected a number from %g to %g, got \"%s\"\n", cmd, opt, min, max, s);
        return 0;
    }
    *out = v;
    return 1;
}

static char *read_text(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = n >= 0 ? fm_malloc((size_t)n + 1) : NULL;
    if (text && fread(text, 1, (size_t)n, f) != (size_t)n) {
        fm_free(text);
        text = NULL;
    }
    if (text) text[n] = '\0';
    fclose(f);
    return text;
}

/* "0.842 [0.811, 0.870]" of a metric object, or "n/a". */
static void print_metric(FILE *out, const cJSON *task, const char *name, const char *label) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(task, name);
    if (!m) return;
    const cJSON *v = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "value") : m;
    const cJSON *lo = cJSON_GetObjectItemCaseSensitive(m, "ci_low"), *hi = cJSON_GetObjectItemCaseSensitive(m, "ci_high");
    fprintf(out, "  %s ", label);
    if (cJSON_IsNumber(v))
        fprintf(out, "%.4f", v->valuedouble);
    else
        fprintf(out, "n/a");
    if (cJSON_IsNumber(lo) && cJSON_IsNumber(hi)) fprintf(out, " [%.4f, %.4f]", lo->valuedouble, hi->valuedouble);
}

void fm_cli_print_metrics(FILE *out, const char *path) {
    char *text = read_text(path);
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    fm_free(text);
    const cJSON *tasks = cJSON_GetObjectItemCaseSensitive(root, "tasks"), *task;
    cJSON_ArrayForEach(task, tasks) {
        const cJSON *kind = cJSON_GetObjectItemCaseSensitive(task, "kind"), *n = cJSON_GetObjectItemCaseSensitive(task, "n");
        fprintf(out, "%-16s n %-6d", task->string, cJSON_IsNumber(n) ? n->valueint : 0);
        if (cJSON_IsString(kind) && strcmp(kind->valuestring, "binary") == 0) {
            print_metric(out, task, "auroc", "AUROC");
            print_metric(out, task, "auprc", "AUPRC");
            print_metric(out, task, "f1", "F1");
        } else if (cJSON_IsString(kind) && strcmp(kind->valuestring, "regression") == 0) {
            print_metric(out, task, "mae", "MAE");
            print_metric(out, task, "mae_days", "MAE (days)");
            print_metric(out, task, "r2", "R2");
        } else {
            print_metric(out, task, "macro_auroc", "macro AUROC");
            print_metric(out, task, "micro_auroc", "micro AUROC");
            print_metric(out, task, "macro_f1", "macro F1");
        }
        fputc('\n', out);
    }
    cJSON_Delete(root);
}

int fm_cli_split(char *s, const char *sep, char **items, int max) {
    int n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, sep, &save); tok; tok = strtok_r(NULL, sep, &save)) {
        if (n == max) return -1;
        items[n++] = tok;
    }
    return n;
}
