/* The fusemoe subcommands. Each takes the arguments after its name (argv[0] is the subcommand)
 * and returns the process exit status: 0 success, 1 a runtime failure (reported on stderr as
 * "fusemoe <cmd>: <where>: <message>"), 2 a usage error. */
#ifndef FM_CLI_COMMANDS_H
#define FM_CLI_COMMANDS_H

typedef struct {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv);
} FmCommand;

/* The version line with the OpenBLAS kernel in use, e.g. for `fusemoe --version`. */
int fm_cmd_version(int argc, char **argv);

/* Raw clinical data (PhysioNet 2012 folders or a long CSV, notes, images) to a cohort file. */
int fm_cmd_prepare(int argc, char **argv);
/* Writes a synthetic multimodal cohort in the real input formats (data/synth.h). */
int fm_cmd_synth(int argc, char **argv);
/* Trains one study run into a run folder (src/train.h). */
int fm_cmd_train(int argc, char **argv);
/* Evaluates a trained model on a cohort (src/evaluate_run.h). */
int fm_cmd_eval(int argc, char **argv);
/* Scores a cohort's stays with a trained model, no labels needed (src/evaluate_run.h). */
int fm_cmd_predict(int argc, char **argv);
/* Runs an ablation grid and writes its results tables (src/ablate.h). */
int fm_cmd_ablate(int argc, char **argv);
/* Prints a model file's configuration, parameter counts and expert utilisation (src/inspect.h). */
int fm_cmd_inspect(int argc, char **argv);

/* One paper-style table from several results.csv files. */
int fm_cmd_report(int argc, char **argv);

/* Metrics averaged over several runs' predictions, with bootstrap intervals of the average. */
int fm_cmd_bootstrap(int argc, char **argv);

/* ROC curves and reliability diagrams from predictions.csv files. */
int fm_cmd_plot(int argc, char **argv);

#endif
