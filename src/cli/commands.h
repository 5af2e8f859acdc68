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

#endif
