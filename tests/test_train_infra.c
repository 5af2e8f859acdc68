/* Training infrastructure: learning-rate schedules, interruption, checkpoints. */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/checkpoint.h"
#include "src/h5io.h"
#include "src/interrupt.h"
#include "src/job_pool.h"
#include "src/lr_schedule.h"
#include "tests/support/testutil.h"

START_TEST(test_lr_constant_with_warmup) {
    FmLrSchedule s = {.kind = FM_SCHEDULE_CONSTANT, .base_lr = 1e-3f, .total_steps = 100, .warmup_steps = 4};
    ck_assert_float_eq_tol(fm_lr_at(&s, 0), 0.25e-3f, 1e-9);
    ck_assert_float_eq_tol(fm_lr_at(&s, 3), 1e-3f, 1e-9);
    ck_assert_float_eq_tol(fm_lr_at(&s, 50), 1e-3f, 1e-9);
    ck_assert_float_eq_tol(fm_lr_at(&s, 500), 1e-3f, 1e-9);
}
END_TEST

START_TEST(test_lr_cosine) {
    /* W = 10, S = 111: the cosine runs over steps 10..110 (101 steps), midpoint at step 60. */
    FmLrSchedule s = {.kind = FM_SCHEDULE_COSINE, .base_lr = 2.0f, .total_steps = 111, .warmup_steps = 10,
                      .final_fraction = 0.1f};
    ck_assert_float_eq_tol(fm_lr_at(&s, 4), 1.0f, 1e-6);
    ck_assert_float_eq_tol(fm_lr_at(&s, 10), 2.0f, 1e-6);
    ck_assert_float_eq_tol(fm_lr_at(&s, 60), 2.0f * (0.1f + 0.9f * 0.5f), 1e-5);
    ck_assert_float_eq_tol(fm_lr_at(&s, 110), 0.2f, 1e-6);
    ck_assert_float_eq_tol(fm_lr_at(&s, 1000), 0.2f, 1e-6);
    for (long t = 11; t < 111; t++) ck_assert(fm_lr_at(&s, t) <= fm_lr_at(&s, t - 1)); /* monotone */
}
END_TEST

START_TEST(test_interrupt_flag) {
    fm_interrupt_install();
    ck_assert_int_eq(fm_interrupt_requested(), 0);
    raise(SIGTERM);
    ck_assert_int_eq(fm_interrupt_requested(), SIGTERM);
    fm_interrupt_clear();
    ck_assert_int_eq(fm_interrupt_requested(), 0);
    raise(SIGINT);
    ck_assert_int_eq(fm_interrupt_requested(), SIGINT);
    fm_interrupt_clear();
}
END_TEST

static void make_params(FmParams *p, int rows) {
    fm_params_init(p);
    ck_assert_int_eq(fm_params_declare(p, "enc.w", 2, (int[]){rows, 5}, 1, NULL, NULL), FM_OK);
    ck_assert_int_eq(fm_params_declare(p, "enc.b", 1, (int[]){5}, 0, NULL, NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(p, 1, NULL), FM_OK);
}

START_TEST(test_checkpoint_roundtrip) {
    char dir[256], path[512];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/ckpt.h5", dir);
    FmParams p;
    make_params(&p, 3);
    FmRng r;
    fm_rng_seed(&r, 11);
    fm_fill_uniform(&r, p.data, p.total, -1, 1);
    fm_fill_uniform(&r, p.adam_m, p.total, -1, 1);
    fm_fill_uniform(&r, p.adam_v, p.total, 0, 1);
    FmTrainProgress tp = {.epochs_done = 3, .steps_done = 120, .best_metric = 0.51, .best_epoch = 2,
                          .bad_epochs = 1, .config_text = "[train]\nseed = 1\n", .log_text = "epoch,loss\n1,0.5\n"};
    FmError err;
    ck_assert_int_eq(fm_checkpoint_save(path, &p, &tp, &err), FM_OK);

    FmParams q;
    make_params(&q, 3);
    FmTrainProgress back;
    ck_assert_int_eq(fm_checkpoint_load(path, &q, &back, &err), FM_OK);
    for (int t = 0; t < p.n_tensors; t++) { /* padding between tensors is not stored */
        size_t off = p.tensors[t].offset, n = p.tensors[t].count * sizeof(float);
        ck_assert_mem_eq(q.data + off, p.data + off, n);
        ck_assert_mem_eq(q.adam_m + off, p.adam_m + off, n);
        ck_assert_mem_eq(q.adam_v + off, p.adam_v + off, n);
    }
    ck_assert_int_eq(back.epochs_done, 3);
    ck_assert_int_eq(back.steps_done, 120);
    ck_assert_double_eq(back.best_metric, 0.51);
    ck_assert_int_eq(back.best_epoch, 2);
    ck_assert_int_eq(back.bad_epochs, 1);
    ck_assert_str_eq(back.config_text, tp.config_text);
    ck_assert_str_eq(back.log_text, tp.log_text);
    fm_train_progress_free(&back);
    fm_params_free(&q);

    /* Another configuration's shapes are refused, naming the tensor. */
    make_params(&q, 4);
    ck_assert_int_eq(fm_checkpoint_load(path, &q, &back, &err), FM_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(err.message, "enc.w: expected shape (4, 5), got (3, 5)"));
    ck_assert_ptr_null(back.config_text);
    fm_params_free(&q);
    fm_params_free(&p);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_checkpoint_rejects_other_files) {
    char dir[256], path[512];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/other.h5", dir);
    FmError err;
    hid_t f;
    ck_assert_int_eq(fm_h5_create(path, &f, &err), FM_OK);
    ck_assert_int_eq(fm_h5_attr_write_str(f, "format", "fusemoe-model", &err), FM_OK);
    H5Fclose(f);
    FmParams p;
    make_params(&p, 3);
    FmTrainProgress tp;
    ck_assert_int_eq(fm_checkpoint_load(path, &p, &tp, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "not a fusemoe checkpoint (format 'fusemoe-model')");

    ck_assert_int_eq(fm_h5_create(path, &f, &err), FM_OK);
    ck_assert_int_eq(fm_h5_attr_write_str(f, "format", "fusemoe-checkpoint", &err), FM_OK);
    ck_assert_int_eq(fm_h5_attr_write_i64(f, "format_version", 99, &err), FM_OK);
    H5Fclose(f);
    ck_assert_int_eq(fm_checkpoint_load(path, &p, &tp, &err), FM_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err.message, "version 99"));

    /* A failed save leaves no file behind. */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/missing-dir/ckpt.h5", dir);
    FmTrainProgress zero = {0};
    ck_assert_int_eq(fm_checkpoint_save(bad, &p, &zero, &err), FM_ERR_IO);
    fm_params_free(&p);
    fm_test_rmtree(dir);
}
END_TEST


typedef struct {
    int status[8];
    int order[8];
    int n_done;
} JobResults;

static void record_job(void *ctx, int index, int exit_status) {
    JobResults *r = ctx;
    r->status[index] = exit_status;
    r->order[r->n_done++] = index;
}

/* Six shell jobs, two at a time: each writes its index to its log; exit codes and a signal
 * death are reported per job. */
START_TEST(test_job_pool_runs_all) {
    char dir[256];
    fm_test_tmpdir(dir, sizeof dir);
    static char *const ok0[] = {"/bin/sh", "-c", "echo job0", NULL};
    static char *const ok1[] = {"/bin/sh", "-c", "sleep 0.2; echo job1", NULL};
    static char *const fail2[] = {"/bin/sh", "-c", "echo job2 >&2; exit 3", NULL};
    static char *const ok3[] = {"/bin/sh", "-c", "echo job3", NULL};
    static char *const killed4[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
    static char *const missing5[] = {"/no/such/program", NULL};
    char *const *argvs[6] = {ok0, ok1, fail2, ok3, killed4, missing5};
    char logs[6][300];
    FmJob jobs[6];
    for (int i = 0; i < 6; i++) {
        snprintf(logs[i], sizeof logs[i], "%s/job%d.log", dir, i);
        jobs[i].argv = argvs[i];
        jobs[i].log_path = logs[i];
    }
    JobResults r = {0};
    FmError err;
    ck_assert_int_eq(fm_job_pool_run(jobs, 6, 2, record_job, &r, &err), FM_OK);
    ck_assert_int_eq(r.n_done, 6);
    ck_assert_int_eq(r.status[0], 0);
    ck_assert_int_eq(r.status[1], 0);
    ck_assert_int_eq(r.status[2], 3);
    ck_assert_int_eq(r.status[3], 0);
    ck_assert_int_eq(r.status[4], 128 + 9);
    ck_assert_int_eq(r.status[5], 127);
    char line[64] = {0};
    FILE *f = fopen(logs[2], "r");
    ck_assert_ptr_nonnull(fgets(line, sizeof line, f));
    fclose(f);
    ck_assert_str_eq(line, "job2\n");
    fm_test_rmtree(dir);
}
END_TEST

static Suite *train_infra_suite(void) {
    Suite *s = suite_create("train_infra");
    TCase *tc = tcase_create("train_infra");
    tcase_add_test(tc, test_lr_constant_with_warmup);
    tcase_add_test(tc, test_lr_cosine);
    tcase_add_test(tc, test_interrupt_flag);
    tcase_add_test(tc, test_checkpoint_roundtrip);
    tcase_add_test(tc, test_checkpoint_rejects_other_files);
    tcase_add_test(tc, test_job_pool_runs_all);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return fm_test_run_suite(train_infra_suite());
}
