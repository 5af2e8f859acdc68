/* What scale-out rests on, checked without MPI: the epoch order with shards and its rank
 * assignment (src/train_order.h), the one-process behaviour of src/dist.h, reading part of a
 * cohort (fm_cohort_load_meta / fm_cohort_load_rows), training with shards, and the Slurm
 * job array of an ablation (script, every task, collect) against an ablation in one go. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "preprocessing/cohort.h"
#include "src/ablate.h"
#include "src/alloc.h"
#include "src/dist.h"
#include "src/train_order.h"
#include "tests/support/study_support.h"
#include "tests/support/testutil.h"

START_TEST(test_order_one_shard_is_one_shuffle) {
    FmTrainOrder o;
    FmError err;
    ck_assert_int_eq(fm_train_order_init(&o, 23, 5, 1, &err), FM_OK);
    ck_assert_int_eq(o.n_batches, 5);
    FmRng g, copy;
    fm_rng_seed(&g, 7);
    copy = g;
    fm_train_order_shuffle(&o, &g);
    /* the order the trainer has always used: a shuffle of 0..n-1, then batches of B */
    size_t want[23];
    for (size_t i = 0; i < 23; i++) want[i] = i;
    fm_rng_shuffle(&copy, want, 23);
    for (int i = 0; i < 23; i++) ck_assert_uint_eq(o.perm[i], want[i]);
    for (long j = 0; j < 5; j++) {
        ck_assert_int_eq(o.batch_start[j], 5 * j);
        ck_assert_int_eq(o.batch_size[j], j < 4 ? 5 : 3);
        ck_assert_int_eq(fm_train_order_owner(&o, j, 2), (int)(j % 2));
    }
    ck_assert(!fm_train_order_sharded(&o, 2));
    fm_train_order_free(&o);
}
END_TEST

START_TEST(test_order_shards_interleave) {
    FmTrainOrder o;
    FmError err;
    /* 10 stays, 3 shards of 4, 3, 3, batches of 2: rounds (0,0) (1,0) (2,0) (0,1) (1,1) (2,1) */
    ck_assert_int_eq(fm_train_order_init(&o, 10, 2, 3, &err), FM_OK);
    ck_assert_int_eq(o.n_batches, 6);
    const int shard[6] = {0, 1, 2, 0, 1, 2}, start[6] = {0, 4, 7, 2, 6, 9}, size[6] = {2, 2, 2, 2, 1, 1};
    for (int j = 0; j < 6; j++) {
        ck_assert_int_eq(o.batch_shard[j], shard[j]);
        ck_assert_int_eq(o.batch_start[j], start[j]);
        ck_assert_int_eq(o.batch_size[j], size[j]);
        ck_assert_int_eq(fm_train_order_owner(&o, j, 3), shard[j]); /* 3 divides 3 shards */
        ck_assert_int_eq(fm_train_order_owner(&o, j, 2), j % 2);    /* 2 does not */
    }
    FmRng g;
    fm_rng_seed(&g, 3);
    fm_train_order_shuffle(&o, &g);
    int seen[10] = {0};
    for (int k = 0; k < 3; k++)
        for (int64_t i = o.shard_lo[k]; i < o.shard_lo[k + 1]; i++) {
            ck_assert(o.perm[i] >= (size_t)o.shard_lo[k] && o.perm[i] < (size_t)o.shard_lo[k + 1]);
            seen[o.perm[i]]++;
        }
    for (int i = 0; i < 10; i++) ck_assert_int_eq(seen[i], 1);
    /* rank 1 of 3 reads shard 1 only; with 2 ranks every rank reads everything */
    uint8_t want[10] = {0};
    fm_train_order_mark(&o, 1, 3, want);
    for (int i = 0; i < 10; i++) ck_assert_int_eq(want[i], i >= 4 && i < 7);
    memset(want, 0, sizeof want);
    fm_train_order_mark(&o, 1, 2, want);
    for (int i = 0; i < 10; i++) ck_assert_int_eq(want[i], 1);
    fm_train_order_free(&o);
    /* each allocation failing in turn */
    for (int k = 1;; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = fm_train_order_init(&o, 10, 2, 3, &err);
        fm_alloc_fail_reset();
        fm_train_order_free(&o);
        if (st == FM_OK) break;
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert_int_lt(k, 20);
    }
}
END_TEST

START_TEST(test_dist_one_process) {
    FmError err;
    fm_error_clear(&err);
    ck_assert_int_eq(fm_dist_size(NULL), 1);
    ck_assert(fm_dist_is_writer(NULL));
    ck_assert_int_eq(fm_dist_agree(NULL, FM_ERR_IO, &err), FM_ERR_IO);
    float x[3] = {1, 2, 3};
    fm_dist_sum_floats(NULL, x, 3);
    ck_assert(x[0] == 1 && x[2] == 3);
    ck_assert_int_eq(fm_dist_max_int(NULL, 4), 4);
    /* blocks of whole batches: 25 items in batches of 4 (7 batches) over 3 ranks: 2, 2, 3 */
    int64_t lo, hi, expect[4] = {0, 8, 16, 25};
    for (int r = 0; r < 3; r++) {
        fm_dist_block_range(25, 4, r, 3, &lo, &hi);
        ck_assert_int_eq(lo, expect[r]);
        ck_assert_int_eq(hi, expect[r + 1]);
    }
    fm_dist_block_range(2, 4, 0, 3, &lo, &hi); /* fewer batches than ranks: some get none */
    ck_assert_int_eq(hi - lo, 0);
    fm_dist_block_range(2, 4, 2, 3, &lo, &hi);
    ck_assert_int_eq(hi - lo, 2);
}
END_TEST

/* Asserts two filled batches hold the same content. */
static void assert_same_batch(const FmBatch *a, const FmBatch *b) {
    ck_assert_int_eq(a->B, b->B);
    for (int m = 0; m < a->M; m++) {
        const FmBatchModality *x = &a->mod[m], *y = &b->mod[m];
        ck_assert_int_eq(x->max_L, y->max_L);
        size_t rows = (size_t)a->B * (size_t)x->max_L;
        int per_channel = x->kind == FM_MODALITY_SERIES || x->kind == FM_MODALITY_STATIC;
        ck_assert(memcmp(x->value, y->value, rows * (size_t)x->C * sizeof(float)) == 0);
        ck_assert(memcmp(x->mask, y->mask, per_channel ? rows * (size_t)x->C : rows) == 0);
        if (x->time) ck_assert(memcmp(x->time, y->time, rows * sizeof(float)) == 0);
        ck_assert(memcmp(x->count, y->count, (size_t)a->B * sizeof(int)) == 0);
        ck_assert(memcmp(x->present, y->present, (size_t)a->B) == 0);
    }
    ck_assert(memcmp(a->stay_id, b->stay_id, (size_t)a->B * sizeof(int64_t)) == 0);
}

START_TEST(test_cohort_subset_rows) {
    const char *path = fm_study_cohort("cohort.h5");
    FmCohort full, part;
    FmError err;
    ck_assert_int_eq(fm_cohort_load(path, &full, &err), FM_OK);
    ck_assert_int_eq(fm_cohort_load_meta(path, &part, &err), FM_OK);
    ck_assert_int_eq(part.N, full.N);
    uint8_t *want = fm_calloc((size_t)full.N, 1);
    for (int64_t i = 0; i < full.N; i++) want[i] = i % 3 == 1 || (i >= 40 && i < 60); /* runs and gaps */
    ck_assert_msg(fm_cohort_load_rows(&part, path, want, &err) == FM_OK, "%s", err.message);
    for (int m = 0; m < full.M; m++) {
        int64_t rows = 0;
        for (int64_t i = 0; i < full.N; i++) rows += want[i] ? full.mod[m].count[i] : 0;
        ck_assert_int_eq(part.mod[m].T, rows); /* only the wanted rows are in memory */
        ck_assert_int_eq(part.mod[m].max_L, full.mod[m].max_L);
    }
    FmBatch a, b;
    ck_assert_int_eq(fm_cohort_batch_alloc(&full, 8, &a, &err), FM_OK);
    ck_assert_int_eq(fm_cohort_batch_alloc(&part, 8, &b, &err), FM_OK);
    int64_t idx[8];
    int n = 0;
    for (int64_t i = full.N - 1; i >= 0 && n < 8; i--)
        if (want[i]) idx[n++] = i;
    ck_assert_int_eq(fm_cohort_make_batch(&full, 0, idx, n, &a, &err), FM_OK);
    ck_assert_int_eq(fm_cohort_make_batch(&part, 0, idx, n, &b, &err), FM_OK);
    assert_same_batch(&a, &b);
    idx[3] = 0; /* not loaded */
    ck_assert_int_eq(fm_cohort_make_batch(&part, 0, idx, n, &b, &err), FM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "its rows were not loaded"));
    fm_cohort_batch_free(&a);
    fm_cohort_batch_free(&b);
    fm_cohort_free(&part);
    /* every allocation of the row load failing in turn: an error, then a clean free */
    for (int k = 1;; k++) {
        ck_assert_int_eq(fm_cohort_load_meta(path, &part, &err), FM_OK);
        fm_alloc_fail_after(k);
        FmStatus st = fm_cohort_load_rows(&part, path, want, &err);
        fm_alloc_fail_reset();
        fm_cohort_free(&part);
        if (st == FM_OK) {
            ck_assert_int_gt(k, 5); /* at least the arrays of one modality failed first */
            break;
        }
        ck_assert_int_eq(st, FM_ERR_NOMEM);
    }
    fm_free(want);
    fm_cohort_free(&full);
}
END_TEST

START_TEST(test_train_shards) {
    char dir[512], study[600], out[600];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(study, sizeof study, "%s/study.ini", dir);
    fm_study_write(study, fm_study_cohort("cohort.h5"), "[train]\nshards = 3\naccumulation = 2\n");
    snprintf(out, sizeof out, "%s/run", dir);
    FmError err;
    ck_assert_msg(fm_study_train(study, NULL, 0, out, 0, NULL, NULL, &err) == FM_OK, "%s", err.message);
    const char *too_many[] = {"train.shards=500"};
    snprintf(out, sizeof out, "%s/run2", dir);
    ck_assert_int_eq(fm_study_train(study, too_many, 1, out, 0, NULL, NULL, &err), FM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err.message, "[train] shards: 500 shards of 96 training stays"));
    fm_test_rmtree(dir);
}
END_TEST

static int sh(const char *cmd) {
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

START_TEST(test_slurm_array_gives_the_same_table) {
    char dir[512], study[600], grid[600], one[600], arr[600], script[700], cmd[2400], a[800], b[800];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(study, sizeof study, "%s/study.ini", dir);
    fm_study_write(study, fm_study_cohort("cohort.h5"), NULL);
    snprintf(grid, sizeof grid, "%s/grid.ini", dir);
    FILE *f = fopen(grid, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[grid]\nstudy = study.ini\nseeds = 1, 2\nsplits = 0\nmetrics = mortality.auroc, mortality.auprc\n"
               "[set]\ntrain.epochs = 1\n[axes]\nmodel.gate = laplace | softmax\neval.missing_rate = 0 | 0.5\n");
    fclose(f);
    snprintf(one, sizeof one, "%s/one_go", dir);
    snprintf(arr, sizeof arr, "%s/array", dir);
    snprintf(script, sizeof script, "%s/ablate.sbatch", arr);
    FmError err;
    FmAblateResult res;
    FmAblateOptions o = {.grid_path = grid, .out_dir = one, .jobs = 2, .exe = fm_study_cli()};
    ck_assert_msg(fm_ablate_run(&o, &res, &err) == FM_OK, "%s", err.message);
    fm_free(res.markdown);
    /* the script: 4 training runs (the missing rates share theirs), nothing run yet */
    o = (FmAblateOptions){.grid_path = grid, .out_dir = arr, .jobs = 1, .exe = fm_study_cli(), .slurm_script = script};
    ck_assert_msg(fm_ablate_run(&o, &res, &err) == FM_OK, "%s", err.message);
    ck_assert_int_eq(res.n_training_runs, 4);
    ck_assert_ptr_null(res.markdown);
    char *text = fm_study_read(script, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_ptr_nonnull(strstr(text, "#SBATCH --array=0-3\n"));
    ck_assert_ptr_nonnull(strstr(text, "--array-task \"$SLURM_ARRAY_TASK_ID\""));
    ck_assert_ptr_nonnull(strstr(text, "--collect"));
    fm_free(text);
    snprintf(a, sizeof a, "%s/results.md", arr);
    ck_assert_ptr_null(fm_study_read(a, NULL)); /* no results before the tasks */
    /* every array task, as Slurm would run them (in reverse, to show order does not matter) */
    for (int t = 3; t >= 0; t--) {
        snprintf(cmd, sizeof cmd, "SLURM_ARRAY_TASK_ID=%d bash '%s' > '%s/task%d.log' 2>&1", t, script, dir, t);
        ck_assert_msg(sh(cmd) == 0, "array task %d failed", t);
    }
    snprintf(cmd, sizeof cmd, "SLURM_ARRAY_TASK_ID=4 bash '%s' > '%s/task4.log' 2>&1", script, dir);
    ck_assert_int_eq(sh(cmd), 1); /* beyond the last training run */
    o = (FmAblateOptions){.grid_path = grid, .out_dir = arr, .jobs = 1, .exe = fm_study_cli(), .collect = 1};
    ck_assert_msg(fm_ablate_run(&o, &res, &err) == FM_OK, "%s", err.message);
    ck_assert_int_eq(res.n_complete, 8);
    fm_free(res.markdown);
    snprintf(a, sizeof a, "%s/results.md", one);
    snprintf(b, sizeof b, "%s/results.md", arr);
    ck_assert_msg(fm_study_same_file(a, b), "results.md of the job array differs from the ablation in one go");
    fm_test_rmtree(dir);
}
END_TEST

static Suite *scaleout_suite(void) {
    Suite *s = suite_create("scaleout");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_order_one_shard_is_one_shuffle);
    tcase_add_test(tc, test_order_shards_interleave);
    tcase_add_test(tc, test_dist_one_process);
    tcase_add_test(tc, test_cohort_subset_rows);
    tcase_add_test(tc, test_train_shards);
    tcase_add_test(tc, test_slurm_array_gives_the_same_table);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    fm_study_setup();
    int rc = fm_test_run_suite(scaleout_suite());
    fm_study_teardown();
    return rc;
}
