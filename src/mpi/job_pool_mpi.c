/* Ablation jobs over MPI ranks (src/mpi/job_pool_mpi.h). */
#include "src/mpi/job_pool_mpi.h"

#include <errno.h>
#include <mpi.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "src/alloc.h"
#include "src/interrupt.h"

enum { TAG_READY = 81, TAG_JOB = 82, TAG_STOP = 83, TAG_CANCEL = 84 };

#define MAX_JOB_ARGS 64

/* What a rank tells rank 0 when it is ready: the job it ran (-1: none yet), its exit code and
 * whether the rank was interrupted. */
typedef struct {
    int job, exit_code, interrupted;
} Ready;

static void pause_ms(long ms) {
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* Has a message with `tag` from `source` arrived? */
static int arrived(int source, int tag, MPI_Status *status) {
    int flag = 0;
    MPI_Iprobe(source, tag, MPI_COMM_WORLD, &flag, status);
    return flag;
}

/* Packs job `index`: its index, then NUL-terminated strings: OPENBLAS_NUM_THREADS (or ""),
 * the log path, argv... */
static char *pack(const FmJob *job, int index, int *len) {
    const char *threads = getenv("OPENBLAS_NUM_THREADS");
    const char *parts[MAX_JOB_ARGS + 2];
    int n = 0;
    parts[n++] = threads ? threads : "";
    parts[n++] = job->log_path;
    for (int i = 0; job->argv[i]; i++) {
        FM_ASSERT(n < MAX_JOB_ARGS + 2);
        parts[n++] = job->argv[i];
    }
    size_t size = sizeof index;
    for (int i = 0; i < n; i++) size += strlen(parts[i]) + 1;
    char *buf = fm_malloc(size);
    FM_ASSERT(buf != NULL); /* a command line */
    memcpy(buf, &index, sizeof index);
    size_t at = sizeof index;
    for (int i = 0; i < n; i++) {
        size_t k = strlen(parts[i]) + 1;
        memcpy(buf + at, parts[i], k);
        at += k;
    }
    *len = (int)size;
    return buf;
}

/* ---- rank 0 ---- */

static int *g_idle; /* per rank: 1 = waiting for a job */

static void mark_ready(int source, const Ready *r) { (void)r; g_idle[source] = 1; }

FmStatus fm_job_pool_mpi_run(const FmJob *jobs, int n, int max_parallel, FmJobDone on_done, void *ctx,
                             FmError *err) {
    FM_ASSERT(max_parallel == 1);
    int P;
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    setenv("FUSEMOE_NO_MPI", "1", 1);
    if (!g_idle) {
        g_idle = fm_calloc((size_t)P, sizeof *g_idle);
        if (!g_idle) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    }
    int *busy = fm_malloc_array((size_t)P, sizeof *busy);
    if (!busy) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    for (int r = 0; r < P; r++) busy[r] = -1;
    FmStatus st = FM_OK;
    int next = 0, active = 0, stopping = 0;
    pid_t local = 0;
    while ((!stopping && next < n) || active > 0) {
        int progress = 0;
        if (!stopping && fm_interrupt_requested()) {
            stopping = 1;
            st = FM_FAIL(err, FM_ERR_INTERRUPTED, NULL, "interrupted: stopping %d running job(s)", active);
            if (local) kill(local, SIGTERM);
            for (int r = 1; r < P; r++)
                if (busy[r] >= 0) MPI_Send(NULL, 0, MPI_BYTE, r, TAG_CANCEL, MPI_COMM_WORLD);
        }
        /* Reports of ranks that are ready (with the job they ended, if any). */
        MPI_Status ms;
        while (arrived(MPI_ANY_SOURCE, TAG_READY, &ms)) {
            Ready rd;
            MPI_Recv(&rd, 3, MPI_INT, ms.MPI_SOURCE, TAG_READY, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            if (rd.job >= 0) {
                FM_ASSERT(busy[ms.MPI_SOURCE] == rd.job);
                busy[ms.MPI_SOURCE] = -1;
                active--;
                if (on_done) on_done(ctx, rd.job, rd.exit_code);
            }
            if (rd.interrupted && !stopping) {
                stopping = 1;
                st = FM_FAIL(err, FM_ERR_INTERRUPTED, NULL, "interrupted on rank %d: stopping the running jobs",
                             ms.MPI_SOURCE);
                if (local) kill(local, SIGTERM);
                for (int r = 1; r < P; r++)
                    if (busy[r] >= 0) MPI_Send(NULL, 0, MPI_BYTE, r, TAG_CANCEL, MPI_COMM_WORLD);
            }
            mark_ready(ms.MPI_SOURCE, &rd);
            progress = 1;
        }
        /* This rank's own job. */
        if (local) {
            int status;
            pid_t done = waitpid(local, &status, WNOHANG);
            if (done == local) {
                int job = busy[0];
                busy[0] = -1;
                local = 0;
                active--;
                if (on_done) on_done(ctx, job, fm_job_exit_code(status));
                progress = 1;
            }
        }
        /* Hand out jobs in index order: rank 0 first, then the ranks that are waiting. */
        for (int r = 0; r < P && !stopping && next < n; r++) {
            if (r == 0 ? local != 0 : !g_idle[r]) continue;
            if (r == 0) {
                pid_t pid = fm_job_start(&jobs[next]);
                if (pid < 0) {
                    st = FM_FAIL(err, FM_ERR_IO, jobs[next].log_path, "cannot start job: %s", strerror(errno));
                    stopping = 1;
                    break;
                }
                local = pid;
            } else {
                int len;
                char *buf = pack(&jobs[next], next, &len);
                MPI_Send(buf, len, MPI_BYTE, r, TAG_JOB, MPI_COMM_WORLD);
                fm_free(buf);
                g_idle[r] = 0;
            }
            busy[r] = next++;
            active++;
            progress = 1;
        }
        if (!progress) pause_ms(5);
    }
    fm_free(busy);
    return st;
}

void fm_job_pool_mpi_stop(void) {
    int P;
    MPI_Comm_size(MPI_COMM_WORLD, &P);
    /* Every other rank reports ready once before its first job; wait for the ones that have
     * not yet (an ablation that ended before handing out any job). */
    if (!g_idle) g_idle = fm_calloc((size_t)P, sizeof *g_idle);
    FM_ASSERT(g_idle != NULL);
    for (int r = 1; r < P; r++) {
        while (!g_idle[r]) {
            MPI_Status ms;
            if (arrived(r, TAG_READY, &ms)) {
                Ready rd;
                MPI_Recv(&rd, 3, MPI_INT, r, TAG_READY, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                g_idle[r] = 1;
            } else {
                pause_ms(5);
            }
        }
        MPI_Send(NULL, 0, MPI_BYTE, r, TAG_STOP, MPI_COMM_WORLD);
    }
    fm_free(g_idle);
    g_idle = NULL;
}

/* ---- ranks above 0 ---- */

/* Runs one packed job to its end; returns its exit code. */
static int run_packed(char *buf, int len, int *index, int *interrupted) {
    char *argv[MAX_JOB_ARGS + 1];
    memcpy(index, buf, sizeof *index);
    char *p = buf + sizeof *index, *end = buf + len;
    const char *threads = p;
    p += strlen(p) + 1;
    const char *log = p;
    p += strlen(p) + 1;
    int argc = 0;
    while (p < end && argc < MAX_JOB_ARGS) {
        argv[argc++] = p;
        p += strlen(p) + 1;
    }
    argv[argc] = NULL;
    if (threads[0]) setenv("OPENBLAS_NUM_THREADS", threads, 1);
    else unsetenv("OPENBLAS_NUM_THREADS");
    FmJob job = {.argv = argv, .log_path = log};
    pid_t pid = fm_job_start(&job);
    if (pid < 0) return 127;
    int sent = 0;
    for (;;) {
        int status;
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) return fm_job_exit_code(status);
        MPI_Status ms;
        int cancel = arrived(0, TAG_CANCEL, &ms);
        if (cancel) MPI_Recv(NULL, 0, MPI_BYTE, 0, TAG_CANCEL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        if (fm_interrupt_requested()) *interrupted = 1;
        if ((cancel || *interrupted) && !sent) {
            kill(pid, SIGTERM);
            sent = 1;
        }
        pause_ms(5);
    }
}

void fm_job_pool_mpi_serve(void) {
    setenv("FUSEMOE_NO_MPI", "1", 1);
    Ready rd = {-1, 0, 0};
    MPI_Send(&rd, 3, MPI_INT, 0, TAG_READY, MPI_COMM_WORLD);
    for (;;) {
        MPI_Status ms;
        if (arrived(0, TAG_STOP, &ms)) {
            MPI_Recv(NULL, 0, MPI_BYTE, 0, TAG_STOP, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            return;
        }
        if (arrived(0, TAG_CANCEL, &ms)) { /* for a job that already ended */
            MPI_Recv(NULL, 0, MPI_BYTE, 0, TAG_CANCEL, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            continue;
        }
        if (!arrived(0, TAG_JOB, &ms)) {
            pause_ms(5);
            continue;
        }
        int len;
        MPI_Get_count(&ms, MPI_BYTE, &len);
        char *buf = fm_malloc((size_t)len + 1);
        FM_ASSERT(buf != NULL); /* a command line */
        MPI_Recv(buf, len, MPI_BYTE, 0, TAG_JOB, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        buf[len] = '\0';
        int index, interrupted = 0;
        int code = run_packed(buf, len, &index, &interrupted);
        fm_free(buf);
        rd = (Ready){index, code, interrupted || fm_interrupt_requested() != 0};
        MPI_Send(&rd, 3, MPI_INT, 0, TAG_READY, MPI_COMM_WORLD);
    }
}
