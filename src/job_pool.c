#include "src/job_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "src/alloc.h"
#include "src/interrupt.h"

pid_t fm_job_start(const FmJob *job) {
    int fd = open(job->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    pid_t pid = fork();
    if (pid == 0) {
        /* A process group of its own: Ctrl-C on the terminal reaches only the pool's process,
         * which stops the jobs with one SIGTERM each (a job that got the terminal's SIGINT too
         * would take the second signal as "stop now" and lose its checkpoint). */
        setpgid(0, 0);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
        /* The child's own handlers take over in its main(); restore defaults until then. */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(job->argv[0], job->argv);
        dprintf(STDERR_FILENO, "cannot run %s: %s\n", job->argv[0], strerror(errno));
        _exit(127);
    }
    int saved = errno;
    close(fd);
    errno = saved;
    return pid;
}

int fm_job_exit_code(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return 255;
}

FmStatus fm_job_pool_run(const FmJob *jobs, int n, int max_parallel, FmJobDone on_done, void *ctx,
                         FmError *err) {
    FM_ASSERT(max_parallel >= 1);
    pid_t *running = fm_calloc((size_t)max_parallel, sizeof *running);
    int *slot_job = fm_calloc((size_t)max_parallel, sizeof *slot_job);
    if (!running || !slot_job) {
        fm_free(running);
        fm_free(slot_job);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory starting jobs");
    }
    FmStatus st = FM_OK;
    int next = 0, active = 0;
    while (next < n || active > 0) {
        /* Fill free slots unless we are stopping. */
        while (st == FM_OK && next < n && active < max_parallel && !fm_interrupt_requested()) {
            int slot = 0;
            while (running[slot]) slot++;
            pid_t pid = fm_job_start(&jobs[next]);
            if (pid < 0) {
                st = FM_FAIL(err, FM_ERR_IO, jobs[next].log_path, "cannot start job: %s", strerror(errno));
                break;
            }
            running[slot] = pid;
            slot_job[slot] = next++;
            active++;
        }
        if (active == 0) break;
        if (fm_interrupt_requested() && st == FM_OK) {
            st = FM_FAIL(err, FM_ERR_INTERRUPTED, NULL, "interrupted: stopping %d running job(s)", active);
            for (int s = 0; s < max_parallel; s++)
                if (running[s]) kill(running[s], SIGTERM);
        }
        int status;
        pid_t done = waitpid(-1, &status, 0);
        if (done < 0) {
            if (errno == EINTR) continue; /* a signal: loop to notice it */
            break;                        /* no children left (should not happen) */
        }
        for (int s = 0; s < max_parallel; s++) {
            if (running[s] != done) continue;
            running[s] = 0;
            active--;
            if (on_done) on_done(ctx, slot_job[s], fm_job_exit_code(status));
            break;
        }
    }
    fm_free(running);
    fm_free(slot_job);
    return st;
}
