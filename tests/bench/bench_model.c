/* Training and inference throughput and peak memory of the whole model, ours against PyTorch's
 * on the same inputs, in the same run.
 *
 * Two configurations: "default" (the brief's: D 128, Q 48, H 8, DT 64, 3 layers, 8 attention
 * heads, E 16, K 4, hidden 512, Laplace gate, per-modality routers, noisy top-k, dropout 0.1,
 * batch 32) and "small" (D 64, Q 24, H 4, DT 32, 2 layers, 4 heads, E 4, K 2, hidden 128,
 * batch 32). Modalities like PhysioNet 2012: vitals (17 channels, 55 to 85 observation times per
 * stay, half the channels observed at each), labs (20 channels, 8 to 22 times, 30% observed,
 * absent for 10% of stays) and static (5 descriptors). Tasks: mortality (binary) and log length
 * of stay (regression).
 *
 * A training step is zero_grad, forward (training), backward and an Adam step; inference is the
 * evaluation forward. Times are medians over the steps (the machine is shared: a mean would
 * count other processes' bursts). Each configuration runs in a child process so that its peak RSS is its own.
 * The batch is written to a temporary directory (raw float32/int32 arrays and a manifest) and
 * tests/bench/bench_model_torch.py runs the same model in PyTorch on it (OPENBLAS_CORETYPE set,
 * torch.set_num_threads(2)); both use the machine's 2 cores (OpenBLAS threads here).
 *
 *   build/bench/bench_model [--steps N] [--case default|small] [--no-torch] [--keep-inputs DIR]
 * --keep-inputs writes the inputs under DIR/<config> and keeps them (to run the script by hand).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "models/model.h"
#include "preprocessing/modality.h"
#include "src/blas_kernel.h"

typedef struct {
    const char *name;
    FmModelConfig cfg;
    int B;
    int L_lo[3], L_hi[3];
    double p_obs[3], p_absent[3];
} BenchCase;

typedef struct {
    double train_sps, infer_sps, train_ms, infer_ms;
    long rss_kb;
} BenchResult;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of t[0..n) (sorts t): robust to other processes taking the CPU for a moment. */
static double median(double *t, int n) {
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(const FmError *err) {
    fm_error_print(err, stderr);
    exit(1);
}

static BenchCase make_case(int small) {
    BenchCase bc;
    memset(&bc, 0, sizeof bc);
    bc.name = small ? "small" : "default";
    FmModelConfig *c = &bc.cfg;
    *c = fm_model_config_default();
    FmError err;
    if (fm_model_config_add_modality(c, "vitals", FM_MODALITY_SERIES, 17, NULL, &err) ||
        fm_model_config_add_modality(c, "labs", FM_MODALITY_SERIES, 20, NULL, &err) ||
        fm_model_config_add_modality(c, "static", FM_MODALITY_STATIC, 5, NULL, &err))
        die(&err);
    c->n_labels = 2;
    if (fm_model_config_add_task(c, "mortality", FM_TASK_BINARY, 0, 1, NULL, &err) ||
        fm_model_config_add_task(c, "los", FM_TASK_REGRESSION, 1, 1, NULL, &err))
        die(&err);
    if (small) {
        c->D = 64;
        c->Q = 24;
        c->H = 4;
        c->DT = 32;
        c->layers = 2;
        c->attn_heads = 4;
        c->E = 4;
        c->K = 2;
        c->hidden = 128;
        c->head_hidden = 64;
    }
    bc.B = 32;
    const int lo[3] = {55, 8, 1}, hi[3] = {85, 22, 1};
    const double p[3] = {0.5, 0.3, 0.9}, absent[3] = {0.0, 0.1, 0.0};
    memcpy(bc.L_lo, lo, sizeof lo);
    memcpy(bc.L_hi, hi, sizeof hi);
    memcpy(bc.p_obs, p, sizeof p);
    memcpy(bc.p_absent, absent, sizeof absent);
    return bc;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* The batch, seeded, in malloc'ed memory. */
static void make_batch(const BenchCase *bc, FmBatch *batch, FmBatchModality *mods) {
    FmRng rng;
    fm_rng_seed(&rng, 2012);
    const int B = bc->B;
    batch->B = B;
    batch->M = 3;
    batch->mod = mods;
    for (int m = 0; m < 3; m++) {
        FmBatchModality *bm = &mods[m];
        const FmModalityConfig *mc = &bc->cfg.mod[m];
        bm->kind = mc->kind;
        bm->C = mc->C;
        bm->max_L = bc->L_hi[m];
        const size_t BL = (size_t)B * bm->max_L;
        bm->time = calloc(BL, sizeof(float));
        bm->value = calloc(BL * bm->C, sizeof(float));
        bm->mask = calloc(BL * bm->C, 1);
        bm->count = calloc((size_t)B, sizeof(int));
        bm->present = calloc((size_t)B, 1);
        if (!bm->time || !bm->value || !bm->mask || !bm->count || !bm->present) exit(1);
        for (int b = 0; b < B; b++) {
            bm->present[b] = fm_rng_uniform(&rng) >= bc->p_absent[m];
            int n = bc->L_lo[m] + (int)fm_rng_below(&rng, (uint64_t)(bc->L_hi[m] - bc->L_lo[m] + 1));
            if (!bm->present[b]) n = 0;
            bm->count[b] = n;
            float *t = bm->time + (size_t)b * bm->max_L;
            for (int l = 0; l < n; l++) t[l] = (float)fm_rng_uniform(&rng);
            qsort(t, (size_t)n, sizeof *t, cmp_float);
            for (int l = 0; l < n; l++)
                for (int c = 0; c < bm->C; c++) {
                    size_t at = ((size_t)b * bm->max_L + l) * bm->C + c;
                    bm->mask[at] = fm_rng_uniform(&rng) < bc->p_obs[m];
                    bm->value[at] = bm->mask[at] ? (float)fm_rng_normal(&rng) : 0.0f;
                }
        }
    }
    batch->n_labels = 2;
    batch->label = calloc((size_t)B * 2, sizeof(float));
    batch->label_mask = calloc((size_t)B * 2, 1);
    batch->stay_id = calloc((size_t)B, sizeof(int64_t));
    if (!batch->label || !batch->label_mask || !batch->stay_id) exit(1);
    for (int b = 0; b < B; b++) {
        batch->label[b * 2] = fm_rng_uniform(&rng) < 0.14;
        batch->label[b * 2 + 1] = (float)(1.5 + 0.8 * fm_rng_normal(&rng));
        batch->label_mask[b * 2] = batch->label_mask[b * 2 + 1] = 1;
    }
}

static void write_array(const char *dir, const char *name, const void *data, size_t bytes) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, bytes, f) != bytes || fclose(f) != 0) {
        fprintf(stderr, "bench_model: cannot write %s\n", path);
        exit(1);
    }
}

/* The batch and configuration for the PyTorch side: raw arrays (float32, int32, uint8 as
 * uint8) and manifest.json. */
static void write_inputs(const char *dir, const BenchCase *bc, const FmBatch *batch) {
    const FmModelConfig *c = &bc->cfg;
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) exit(1);
    fprintf(f, "{\"B\": %d, \"D\": %d, \"Q\": %d, \"H\": %d, \"DT\": %d, \"layers\": %d, \"attn_heads\": %d, "
               "\"E\": %d, \"K\": %d, \"hidden\": %d, \"gate\": \"%s\", \"router\": \"%s\", \"noisy\": %d, "
               "\"dropout\": %g, \"balance_coef\": %g, \"entropy_coef\": %g, \"static_tokens\": %d, "
               "\"pooling\": \"%s\", \"head_hidden\": %d, \"n_labels\": %d, \"modalities\": [",
            batch->B, c->D, c->Q, c->H, c->DT, c->layers, c->attn_heads, c->E, c->K, c->hidden,
            fm_model_gate_name(c->gate), fm_model_router_name(c->router), c->noisy, (double)c->dropout,
            (double)c->balance_coef, (double)c->entropy_coef, c->static_tokens, fm_model_pooling_name(c->pooling),
            c->head_hidden, c->n_labels);
    for (int m = 0; m < c->M; m++) {
        const FmBatchModality *bm = &batch->mod[m];
        fprintf(f, "%s{\"name\": \"%s\", \"kind\": \"%s\", \"C\": %d, \"L\": %d}", m ? ", " : "", c->mod[m].name,
                fm_modality_kind_name(c->mod[m].kind), bm->C, bm->max_L);
        const size_t BL = (size_t)batch->B * bm->max_L;
        char name[128];
        snprintf(name, sizeof name, "%s.time", c->mod[m].name);
        write_array(dir, name, bm->time, BL * sizeof(float));
        snprintf(name, sizeof name, "%s.value", c->mod[m].name);
        write_array(dir, name, bm->value, BL * bm->C * sizeof(float));
        snprintf(name, sizeof name, "%s.mask", c->mod[m].name);
        write_array(dir, name, bm->mask, BL * bm->C);
        snprintf(name, sizeof name, "%s.count", c->mod[m].name);
        write_array(dir, name, bm->count, (size_t)batch->B * sizeof(int));
        snprintf(name, sizeof name, "%s.present", c->mod[m].name);
        write_array(dir, name, bm->present, (size_t)batch->B);
    }
    fprintf(f, "], \"tasks\": [");
    for (int t = 0; t < c->n_tasks; t++)
        fprintf(f, "%s{\"name\": \"%s\", \"kind\": \"%s\", \"label0\": %d, \"n\": %d}", t ? ", " : "", c->task[t].name,
                fm_model_task_kind_name(c->task[t].kind), c->task[t].label0, c->task[t].n);
    fprintf(f, "]}\n");
    fclose(f);
    write_array(dir, "label", batch->label, (size_t)batch->B * 2 * sizeof(float));
    write_array(dir, "label_mask", batch->label_mask, (size_t)batch->B * 2);
}

/* Runs in a child: our model on the batch. */
static BenchResult run_ours(const BenchCase *bc, const FmBatch *batch, int steps) {
    FmModel *model = NULL;
    FmModelWorkspace *ws = NULL;
    FmError err;
    if (fm_model_create(&model, &bc->cfg, 1, &err)) die(&err);
    fm_model_init(model, 1);
    FmModelShape shape = {.B = batch->B};
    for (int m = 0; m < batch->M; m++) shape.max_L[m] = batch->mod[m].max_L;
    if (fm_model_workspace_create(&ws, model, &shape, &err)) die(&err);
    FmAdamConfig adam = fm_adam_default();
    FmRng root;
    fm_rng_seed(&root, 7);
    BenchResult r = {0};
    double *t_train = calloc((size_t)steps, sizeof(double)), *t_infer = calloc((size_t)(2 * steps), sizeof(double));
    if (!t_train || !t_infer) exit(1);
    for (int s = -2; s < steps; s++) { /* two warm-up steps */
        FmRng rng = fm_rng_split(&root, (uint64_t)(s + 2));
        FmModelLoss loss;
        double t0 = now();
        fm_params_zero_grad(&model->params);
        if (fm_model_forward(model, ws, batch, 1, &rng, &loss, &err)) die(&err);
        fm_model_backward(model, ws);
        fm_adam_step(&model->params, &adam, s + 3);
        if (s >= 0) t_train[s] = now() - t0;
    }
    const int infer_steps = 2 * steps;
    for (int s = -1; s < infer_steps; s++) {
        double t0 = now();
        if (fm_model_forward(model, ws, batch, 0, NULL, NULL, &err)) die(&err);
        if (s >= 0) t_infer[s] = now() - t0;
    }
    const double mt = median(t_train, steps), mi = median(t_infer, infer_steps);
    r.train_ms = 1e3 * mt;
    r.infer_ms = 1e3 * mi;
    r.train_sps = batch->B / mt;
    r.infer_sps = batch->B / mi;
    free(t_train);
    free(t_infer);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r.rss_kb = ru.ru_maxrss;
    fm_model_workspace_free(ws);
    fm_model_free(model);
    return r;
}

static int child_result(const BenchCase *bc, const FmBatch *batch, int steps, BenchResult *out) {
    int fd[2];
    if (pipe(fd) != 0) return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        close(fd[0]);
        BenchResult r = run_ours(bc, batch, steps);
        ssize_t w = write(fd[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], out, sizeof *out);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return got == (ssize_t)sizeof *out && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* PyTorch's side: the script prints one line "train_sps infer_sps train_ms infer_ms rss_kb". */
static int torch_result(const char *dir, int steps, BenchResult *out) {
    char cmd[8192];
    snprintf(cmd, sizeof cmd,
             "OPENBLAS_CORETYPE=Cooperlake /usr/bin/python3 tests/bench/bench_model_torch.py '%s' %d 2>&1", dir, steps);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    char line[4096];
    int ok = -1;
    while (fgets(line, sizeof line, p)) {
        if (sscanf(line, "RESULT %lf %lf %lf %lf %ld", &out->train_sps, &out->infer_sps, &out->train_ms,
                   &out->infer_ms, &out->rss_kb) == 5)
            ok = 0;
        else
            fprintf(stderr, "  [torch] %s", line);
    }
    int status = pclose(p);
    return ok == 0 && status == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    int steps = 8, no_torch = 0;
    const char *only = NULL, *keep = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) steps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--case") == 0 && i + 1 < argc) only = argv[++i];
        else if (strcmp(argv[i], "--no-torch") == 0) no_torch = 1;
        else if (strcmp(argv[i], "--keep-inputs") == 0 && i + 1 < argc) keep = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--steps N] [--case default|small] [--no-torch] [--keep-inputs DIR]\n",
                    argv[0]);
            return 2;
        }
    }
    if (steps < 1) steps = 1;
    printf("OpenBLAS kernel %s; %d timed training steps per configuration after 2 warm-up steps\n",
           fm_blas_kernel_name(), steps);
    printf("%-8s %-8s %14s %14s %12s %12s %10s\n", "config", "impl", "train stays/s", "infer stays/s", "train ms",
           "infer ms", "peak RSS");
    for (int small = 0; small < 2; small++) {
        BenchCase bc = make_case(small);
        if (only && strcmp(only, bc.name) != 0) continue;
        FmBatch batch;
        FmBatchModality mods[3];
        memset(&batch, 0, sizeof batch);
        memset(mods, 0, sizeof mods);
        make_batch(&bc, &batch, mods);
        BenchResult ours, theirs;
        if (child_result(&bc, &batch, steps, &ours) != 0) {
            fprintf(stderr, "bench_model: our run failed\n");
            return 1;
        }
        printf("%-8s %-8s %14.1f %14.1f %12.1f %12.1f %7.0f MB\n", bc.name, "C", ours.train_sps, ours.infer_sps,
               ours.train_ms, ours.infer_ms, ours.rss_kb / 1024.0);
        fflush(stdout);
        if (!no_torch) {
            char dir[4096];
            if (keep) {
                snprintf(dir, sizeof dir, "%s/%s", keep, bc.name);
                mkdir(keep, 0755);
                mkdir(dir, 0755);
            } else {
                snprintf(dir, sizeof dir, "/tmp/fusemoe-bench-XXXXXX");
                if (!mkdtemp(dir)) return 1;
            }
            write_inputs(dir, &bc, &batch);
            int ok = torch_result(dir, steps, &theirs) == 0;
            if (!keep) {
                char cmd[4200];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
                if (system(cmd) != 0) fprintf(stderr, "bench_model: could not remove %s\n", dir);
            }
            if (ok) {
                printf("%-8s %-8s %14.1f %14.1f %12.1f %12.1f %7.0f MB\n", bc.name, "PyTorch", theirs.train_sps,
                       theirs.infer_sps, theirs.train_ms, theirs.infer_ms, theirs.rss_kb / 1024.0);
                printf("%-8s %-8s %13.2fx %13.2fx %12s %12s %9.2fx\n", bc.name, "C/torch", ours.train_sps / theirs.train_sps,
                       ours.infer_sps / theirs.infer_sps, "", "", (double)ours.rss_kb / (double)theirs.rss_kb);
            } else {
                printf("%-8s %-8s (PyTorch run failed or unavailable)\n", bc.name, "PyTorch");
            }
            fflush(stdout);
        }
        for (int m = 0; m < 3; m++) {
            free(mods[m].time);
            free(mods[m].value);
            free(mods[m].mask);
            free(mods[m].count);
            free(mods[m].present);
        }
        free(batch.label);
        free(batch.label_mask);
        free(batch.stay_id);
    }
    return 0;
}
