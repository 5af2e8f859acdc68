/* fusemoe report: one paper-style table from the results.csv files of several ablations and
 * baseline runs (src/results_table.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/cli/cmd_common.h"
#include "src/cli/commands.h"
#include "src/results_table.h"

#define MAX_ITEMS 64

static void usage(FILE *out) {
    fprintf(out,
            "usage: fusemoe report --results A.csv[,B.csv...] --metrics TASK.METRIC[,...]\n"
            "                      [--rename OLD=NEW[,...]] [--order NAME[,...]] [--baseline NAME]\n"
            "                      [--wilcoxon] [--title TEXT] [--out TABLE.md]\n"
            "\n"
            "Merges results.csv files (of `fusemoe ablate`, or written by hand: config,split,seed,metrics)\n"
            "and prints one Markdown table: per configuration mean +- std [95%% t interval] of each metric\n"
            "over its runs and, against --baseline, the paired difference over the (split, seed) pairs\n"
            "both have [95%% t interval] with the paired t-test p-value (Wilcoxon signed-rank with\n"
            "--wilcoxon). Configurations are named as in the files, or as --rename says; --order and\n"
            "--baseline use the new names. --out also writes the table to a file (atomically).\n"
            "\n"
            "example:\n"
            "  fusemoe report --results runs/p12/baselines/results.csv,runs/p12/gates/results.csv \\\n"
            "      --metrics mortality.auroc,mortality.auprc --baseline laplace --out table.md\n");
}

/* Splits `s` (modified in place) at commas into at most MAX_ITEMS items; returns the count or -1. */
static int split_list(char *s, char **items) {
    int n = 0;
    for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
        if (n == MAX_ITEMS) return -1;
        while (*tok == ' ') tok++;
        items[n++] = tok;
    }
    return n;
}

/* Renames configurations OLD=NEW in r. */
static int rename_configs(FmResults *r, char **pairs, int n) {
    for (int i = 0; i < n; i++) {
        char *eq = strchr(pairs[i], '=');
        if (!eq || eq == pairs[i] || !eq[1]) {
            fprintf(stderr, "fusemoe report: --rename: expected OLD=NEW, got \"%s\"\n", pairs[i]);
            return 0;
        }
        *eq = '\0';
        for (size_t k = 0; k < r->n_rows; k++) {
            if (strcmp(r->rows[k].config, pairs[i]) != 0) continue;
            char *copy = fm_strdup(eq + 1);
            if (!copy) {
                fprintf(stderr, "fusemoe report: out of memory\n");
                return 0;
            }
            fm_free(r->rows[k].config);
            r->rows[k].config = copy;
        }
    }
    return 1;
}

int fm_cmd_report(int argc, char **argv) {
    char *results = NULL, *metrics = NULL, *renames = NULL, *order = NULL;
    const char *baseline = NULL, *out = NULL, *title = NULL;
    int wilcoxon = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(a, "--wilcoxon") == 0) {
            wilcoxon = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fusemoe report: %s: missing value (or unknown option)\n", a);
            usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--results") == 0) results = (char *)v;
        else if (strcmp(a, "--metrics") == 0) metrics = (char *)v;
        else if (strcmp(a, "--rename") == 0) renames = (char *)v;
        else if (strcmp(a, "--order") == 0) order = (char *)v;
        else if (strcmp(a, "--baseline") == 0) baseline = v;
        else if (strcmp(a, "--title") == 0) title = v;
        else if (strcmp(a, "--out") == 0) out = v;
        else {
            fprintf(stderr, "fusemoe report: unknown option %s\n", a);
            usage(stderr);
            return 2;
        }
    }
    if (!results || !metrics) {
        fprintf(stderr, "fusemoe report: --results and --metrics are required\n");
        usage(stderr);
        return 2;
    }
    char *files[MAX_ITEMS], *mets[MAX_ITEMS], *pairs[MAX_ITEMS], *names[MAX_ITEMS];
    int n_files = split_list(results, files), n_mets = split_list(metrics, mets);
    int n_pairs = renames ? split_list(renames, pairs) : 0, n_order = order ? split_list(order, names) : 0;
    if (n_files <= 0 || n_mets <= 0 || n_pairs < 0 || n_order < 0) {
        fprintf(stderr, "fusemoe report: empty list, or more than %d items in a list\n", MAX_ITEMS);
        return 2;
    }
    FmResults r;
    fm_results_init(&r);
    FmError err;
    FmStatus st = FM_OK;
    for (int f = 0; f < n_files && st == FM_OK; f++) st = fm_results_read_csv(&r, files[f], &err);
    if (st != FM_OK) {
        fm_cli_report("report", &err);
        fm_results_free(&r);
        return 1;
    }
    if (!rename_configs(&r, pairs, n_pairs)) {
        fm_results_free(&r);
        return 2;
    }
    FmTableColumn cols[MAX_ITEMS];
    char labels[MAX_ITEMS][48];
    for (int m = 0; m < n_mets; m++) fm_results_column_style(mets[m], &cols[m], labels[m], sizeof labels[m]);
    FmTableSpec spec = {.columns = cols,
                        .n_columns = n_mets,
                        .baseline = baseline,
                        .order = n_order ? (const char *const *)names : NULL,
                        .n_order = n_order,
                        .wilcoxon = wilcoxon};
    char *table = NULL;
    st = fm_results_table_markdown(&r, &spec, &table, &err);
    fm_results_free(&r);
    if (st != FM_OK) {
        fm_cli_report("report", &err);
        return 1;
    }
    FmAtomicFile af;
    if (out && (st = fm_atomic_open(&af, out, &err)) == FM_OK) {
        if (title) fprintf(af.f, "%s\n\n", title);
        fputs(table, af.f);
        st = fm_atomic_close(&af, &err);
    }
    if (title) printf("%s\n\n", title);
    fputs(table, stdout);
    fm_free(table);
    if (st != FM_OK) {
        fm_cli_report("report", &err);
        return 1;
    }
    return 0;
}
