/* Reading predictions back, and the report, plot and bootstrap commands over results and
 * predictions files written by the test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "src/alloc.h"
#include "src/predictions_read.h"
#include "tests/support/testutil.h"

static char g_dir[512];

static void write_file(const char *name, const char *text, char *path, size_t cap) {
    snprintf(path, cap, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* Runs a shell command line; returns its exit status; its stdout+stderr go to `out`. */
static int run(const char *cmdline, char *out, size_t cap) {
    char full[4096], log[700];
    snprintf(log, sizeof log, "%s/cmd.log", g_dir);
    snprintf(full, sizeof full, "%s > '%s' 2>&1", cmdline, log);
    int rc = system(full);
    FILE *f = fopen(log, "r");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    if (f) fclose(f);
    out[n] = '\0';
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

START_TEST(test_read_predictions_pooled) {
    char a[700], b[700];
    write_file("a.csv", "stay_id,task,y_true,y_score\n1,mortality,0,0.1\n1,los_gt_7d,1,0.7\n2,mortality,1,0.8\n", a,
               sizeof a);
    write_file("b.csv", "stay_id,task,y_true,y_score\n3,mortality,1,0.6\n", b, sizeof b);
    const char *paths[] = {a, b};
    float *score, *label;
    size_t n;
    FmError err;
    ck_assert_int_eq(fm_predictions_read(paths, 2, "mortality", &score, &label, &n, &err), FM_OK);
    ck_assert_uint_eq(n, 3);
    const float want_s[] = {0.1f, 0.8f, 0.6f}, want_y[] = {0, 1, 1};
    fm_assert_close(score, want_s, 3, 0, 0, "score");
    fm_assert_close(label, want_y, 3, 0, 0, "label");
    fm_free(score);
    fm_free(label);
    ck_assert_int_eq(fm_predictions_read(paths, 2, "phe_shock", &score, &label, &n, &err), FM_ERR_ARG);
    char bad[700];
    write_file("bad.csv", "stay_id,task,y_true,y_score\n1,mortality,0,0.1\n2,mortality,1,high\n", bad, sizeof bad);
    const char *bads[] = {bad};
    ck_assert_int_eq(fm_predictions_read(bads, 1, "mortality", &score, &label, &n, &err), FM_ERR_FORMAT);
    char where[800];
    snprintf(where, sizeof where, "%s:3", bad);
    ck_assert_str_eq(err.where, where);
    ck_assert_str_eq(err.message, "column y_score: expected a number, got \"high\"");
}
END_TEST

/* An ablation's results (axis columns) and hand-written baseline results in one table, with a
 * renamed configuration as the baseline of the paired comparison. */
START_TEST(test_report_merges_and_compares) {
    char a[700], b[700], out[800], cmd[3000], text[8192];
    write_file("ablation.csv",
               "config,model.gate,split,seed,mortality.auroc,mortality.auprc\n"
               "laplace,laplace,0,1,0.86,0.52\nlaplace,laplace,1,1,0.87,0.53\nlaplace,laplace,2,1,0.85,0.50\n"
               "softmax,softmax,0,1,0.85,0.50\nsoftmax,softmax,1,1,0.86,0.52\nsoftmax,softmax,2,1,0.83,0.49\n",
               a, sizeof a);
    write_file("baselines.csv",
               "config,split,seed,mortality.auroc,mortality.auprc\nlogreg,0,1,0.84,0.49\nlogreg,1,1,0.85,0.50\n"
               "logreg,2,1,0.84,0.48\n",
               b, sizeof b);
    snprintf(out, sizeof out, "%s/table.md", g_dir);
    snprintf(cmd, sizeof cmd,
             "%s report --results %s,%s --metrics mortality.auroc,mortality.auprc "
             "--rename laplace=FuseMoE --order logreg,softmax,FuseMoE --baseline FuseMoE --title '## Mortality' "
             "--out %s", fm_test_cli(),
             a, b, out);
    ck_assert_int_eq(run(cmd, text, sizeof text), 0);
    ck_assert_ptr_nonnull(strstr(text, "## Mortality"));
    ck_assert_ptr_nonnull(strstr(text, "| AUROC (%) |"));
    /* FuseMoE's AUROC: 86.0 +- 1.0 over 3 runs; logreg 84.3. */
    ck_assert_ptr_nonnull(strstr(text, "| FuseMoE | 3 | 86.0 +- 1.0"));
    ck_assert_ptr_nonnull(strstr(text, "| logreg | 3 | 84.3 +- 0.6"));
    const char *lo = strstr(text, "| logreg"), *so = strstr(text, "| softmax"), *fu = strstr(text, "| FuseMoE");
    ck_assert(lo && so && fu && lo < so && so < fu); /* --order */
    char *file = NULL;
    FILE *f = fopen(out, "r");
    ck_assert_ptr_nonnull(f);
    file = calloc(1, 8192);
    ck_assert(fread(file, 1, 8191, f) > 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, file)); /* the file holds what was printed */
    free(file);
    /* Usage errors and an unknown baseline. */
    snprintf(cmd, sizeof cmd, "%s report --results %s", fm_test_cli(), a);
    ck_assert_int_eq(run(cmd, text, sizeof text), 2);
    snprintf(cmd, sizeof cmd, "%s report --results %s --metrics mortality.auroc --baseline nope", fm_test_cli(), a);
    ck_assert_int_eq(run(cmd, text, sizeof text), 1);
    ck_assert_ptr_nonnull(strstr(text, "nope"));
}
END_TEST

START_TEST(test_plot_roc_and_calibration) {
    char a[700], out[800], cmd[3000], text[4096];
    write_file("p.csv",
               "stay_id,task,y_true,y_score\n1,mortality,0,0.1\n2,mortality,1,0.8\n3,mortality,0,0.3\n"
               "4,mortality,1,0.4\n5,mortality,0,0.2\n",
               a, sizeof a);
    const char *kinds[] = {"roc", "calibration"};
    for (int k = 0; k < 2; k++) {
        snprintf(out, sizeof out, "%s/%s.png", g_dir, kinds[k]);
        snprintf(cmd, sizeof cmd, "%s plot %s --predictions %s+%s,%s --labels both,one --task mortality --out %s", fm_test_cli(),
                 kinds[k], a, a, a, out);
        ck_assert_int_eq(run(cmd, text, sizeof text), 0);
        FILE *f = fopen(out, "rb");
        ck_assert_ptr_nonnull(f);
        unsigned char sig[8];
        ck_assert_uint_eq(fread(sig, 1, 8, f), 8);
        fclose(f);
        ck_assert_mem_eq(sig, "\x89PNG\r\n\x1a\n", 8);
    }
    snprintf(cmd, sizeof cmd, "%s plot roc --predictions %s,%s --labels one --task mortality --out %s", fm_test_cli(), a, a,
             out);
    ck_assert_int_eq(run(cmd, text, sizeof text), 2); /* two curves, one label */
    snprintf(cmd, sizeof cmd, "%s plot roc --predictions %s --labels one --task los --out %s", fm_test_cli(), a, out);
    ck_assert_int_eq(run(cmd, text, sizeof text), 1);
    ck_assert_ptr_nonnull(strstr(text, "no predictions of task los"));
}
END_TEST

/* Metrics averaged over runs with bootstrap intervals: AUROC 1 and 0.5 by hand. */
START_TEST(test_bootstrap_command) {
    char p[700], q[700], out[800], cmd[3000], text[4096];
    write_file("bp.csv",
               "stay_id,task,y_true,y_score\n1,mortality,0,0.1\n2,mortality,1,0.8\n3,mortality,0,0.3\n"
               "4,mortality,1,0.4\n5,mortality,0,0.2\n",
               p, sizeof p);
    write_file("bq.csv",
               "stay_id,task,y_true,y_score\n1,mortality,1,0.3\n2,mortality,0,0.4\n3,mortality,0,0.5\n"
               "4,mortality,1,0.6\n",
               q, sizeof q);
    snprintf(out, sizeof out, "%s/ci.md", g_dir);
    snprintf(cmd, sizeof cmd,
             "%s bootstrap --predictions %s+%s,%s --labels both,one --task mortality --metrics auroc "
             "--replicates 200 --out %s",
             fm_test_cli(), p, q, p, out);
    ck_assert_int_eq(run(cmd, text, sizeof text), 0);
    /* the mean of 100% and 50%; a perfect ranking stays perfect in every stratified replicate */
    ck_assert_msg(strstr(text, "| both | 2 | 9 | 75.0 [") != NULL, "%s", text);
    ck_assert_msg(strstr(text, "| one | 1 | 5 | 100.0 [100.0, 100.0] |") != NULL, "%s", text);
    FILE *f = fopen(out, "r");
    ck_assert_ptr_nonnull(f);
    char written[4096];
    size_t n = fread(written, 1, sizeof written - 1, f);
    fclose(f);
    written[n] = '\0';
    ck_assert_str_eq(written, text);
    snprintf(cmd, sizeof cmd, "%s bootstrap --predictions %s --labels one --task mortality --metrics f1", fm_test_cli(),
             p);
    ck_assert_int_eq(run(cmd, text, sizeof text), 2);
    ck_assert_ptr_nonnull(strstr(text, "threshold"));
    snprintf(cmd, sizeof cmd, "%s bootstrap --predictions %s/missing.csv --labels one --task mortality", fm_test_cli(),
             g_dir);
    ck_assert_int_eq(run(cmd, text, sizeof text), 1);
    ck_assert_ptr_nonnull(strstr(text, "missing.csv"));
}
END_TEST

static Suite *report_suite(void) {
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("report");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_read_predictions_pooled);
    tcase_add_test(tc, test_report_merges_and_compares);
    tcase_add_test(tc, test_plot_roc_and_calibration);
    tcase_add_test(tc, test_bootstrap_command);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "%s/fusemoe-report-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = fm_test_run_suite(report_suite());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) rc = 1;
    return rc;
}
