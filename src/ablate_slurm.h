/* The Slurm job-array script of an ablation (src/ablate.h, `slurm_script`): one array task per
 * distinct training run, each running `fusemoe ablate --grid G --out DIR --array-task
 * $SLURM_ARRAY_TASK_ID --quiet` in the directory the script was made in (relative paths of
 * the grid and its studies keep their meaning). Header lines ask for one task of
 * train.threads cores and put each task's output in
 * DIR/slurm/<job>_<task>.out; users add their site's partition, account and time limit.
 * The script's comments give the commands that submit it and, once every task has ended,
 * collect the results (`fusemoe ablate --grid G --out DIR --collect`). */
#ifndef FM_ABLATE_SLURM_H
#define FM_ABLATE_SLURM_H

#include "src/ablate.h"
#include "src/error.h"

/* Writes the script for `n_tasks` training runs of `threads` OpenBLAS threads each (the most
 * any run of the grid uses) at o->slurm_script (atomically; creates
 * o->out_dir/slurm for the task logs). FM_ERR_IO naming the file; FM_ERR_ARG when a path
 * cannot be made absolute. */
FmStatus fm_ablate_slurm_write(const FmAblateOptions *o, int n_tasks, int threads, FmError *err);

#endif
