/* The job-array script of an ablation (src/ablate_slurm.h). */
#include "src/ablate_slurm.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/atomic_file.h"
#include "src/strbuf.h"
#include "src/train_folder.h"

/* `s` as one shell word: in single quotes, each ' written as '\'' */
static void quoted(FmStrBuf *b, const char *s) {
    fm_strbuf_append(b, "'");
    for (const char *p = s; *p; p++) {
        if (*p == '\'') fm_strbuf_append(b, "'\\''");
        else fm_strbuf_appendf(b, "%c", *p);
    }
    fm_strbuf_append(b, "'");
}

/* An absolute form of `path` (which may not exist yet: then its folder must). */
static FmStatus absolute(const char *path, char *out, size_t cap, FmError *err) {
    if (path[0] == '/') {
        if (snprintf(out, cap, "%s", path) >= (int)cap) return FM_FAIL(err, FM_ERR_ARG, path, "path too long");
        return FM_OK;
    }
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof cwd)) return FM_FAIL(err, FM_ERR_ARG, path, "cannot tell the working directory");
    if (snprintf(out, cap, "%s/%s", cwd, path) >= (int)cap) return FM_FAIL(err, FM_ERR_ARG, path, "path too long");
    return FM_OK;
}

FmStatus fm_ablate_slurm_write(const FmAblateOptions *o, int n_tasks, int threads, FmError *err) {
    char exe[PATH_MAX + 1], grid[PATH_MAX + 1], out[PATH_MAX + 1], cwd[PATH_MAX], logs[PATH_MAX + 8];
    FmStatus st = FM_OK;
    if ((st = absolute(o->exe, exe, sizeof exe, err)) || (st = absolute(o->grid_path, grid, sizeof grid, err)) ||
        (st = absolute(o->out_dir, out, sizeof out, err)))
        return st;
    if (!getcwd(cwd, sizeof cwd)) return FM_FAIL(err, FM_ERR_ARG, o->slurm_script, "cannot tell the working directory");
    snprintf(logs, sizeof logs, "%s/slurm", out);
    if ((st = fm_train_folder_create(logs, err)) != FM_OK) return st;
    FmStrBuf b, cmd;
    fm_strbuf_init(&b);
    fm_strbuf_init(&cmd);
    /* fusemoe ablate --grid G --out DIR */
    quoted(&cmd, exe);
    fm_strbuf_append(&cmd, " ablate --grid ");
    quoted(&cmd, grid);
    fm_strbuf_append(&cmd, " --out ");
    quoted(&cmd, out);
    fm_strbuf_append(&b, "#!/bin/bash\n");
    fm_strbuf_append(&b, "# FuseMoE-C ablation as a Slurm job array: one task per training run of the grid\n");
    fm_strbuf_appendf(&b, "# (%d training runs; their evaluation-only settings run in the same task).\n", n_tasks);
    fm_strbuf_append(&b, "# Add your site's --partition, --account and --time. Submit, then collect once every\n");
    fm_strbuf_append(&b, "# task has ended:\n");
    fm_strbuf_append(&b, "#   jid=$(sbatch --parsable ");
    quoted(&b, o->slurm_script);
    fm_strbuf_append(&b, ")\n#   sbatch --dependency=afterany:$jid --wrap \"cd ");
    quoted(&b, cwd);
    fm_strbuf_appendf(&b, " && %s --collect\"\n", cmd.data ? cmd.data : "");
    fm_strbuf_append(&b, "# Any task can be run again (a complete run is skipped, an interrupted one resumes).\n");
    fm_strbuf_append(&b, "#SBATCH --job-name=fusemoe-ablate\n");
    fm_strbuf_appendf(&b, "#SBATCH --array=0-%d\n", n_tasks - 1);
    fm_strbuf_append(&b, "#SBATCH --ntasks=1\n");
    fm_strbuf_appendf(&b, "#SBATCH --cpus-per-task=%d\n", threads);
    fm_strbuf_appendf(&b, "#SBATCH --output=%s/%%A_%%a.out\n", logs);
    fm_strbuf_append(&b, "set -euo pipefail\ncd ");
    quoted(&b, cwd);
    fm_strbuf_appendf(&b, "\nexec %s --array-task \"$SLURM_ARRAY_TASK_ID\" --quiet\n", cmd.data ? cmd.data : "");
    if (b.failed || cmd.failed) st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    if (st == FM_OK) st = fm_atomic_write_all(o->slurm_script, b.data, b.len, err);
    if (st == FM_OK) chmod(o->slurm_script, 0755);
    fm_strbuf_free(&b);
    fm_strbuf_free(&cmd);
    return st;
}
