/* fusemoe: multimodal ICU prediction with Laplace-gated mixture-of-experts fusion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/blas_kernel.h"
#include "src/plot.h"
#include "src/cli/cli_mpi.h"
#include "src/cli/commands.h"
#include "src/version.h"

static const FmCommand COMMANDS[] = {
    {"version", "print the version and the OpenBLAS kernel in use", fm_cmd_version},
    {"prepare", "read raw clinical data and write a prepared cohort file", fm_cmd_prepare},
    {"synth", "write a synthetic multimodal cohort (CSV, HDF5, PNG) and print its prepare command", fm_cmd_synth},
    {"train", "train a study's model, select the best epoch, evaluate it on the test part", fm_cmd_train},
    {"eval", "evaluate a trained model on a cohort: predictions.csv and metrics.json", fm_cmd_eval},
    {"predict", "score the stays of a cohort with a trained model: predictions.csv", fm_cmd_predict},
    {"ablate", "run a grid of configurations x splits x seeds and tabulate the results", fm_cmd_ablate},
    {"inspect", "a model file's configuration, parameter counts and expert utilisation", fm_cmd_inspect},
    {"report", "one paper-style table from several results.csv files", fm_cmd_report},
    {"plot", "ROC curves and reliability diagrams from predictions.csv files", fm_cmd_plot},
    {"bootstrap", "metrics averaged over runs' predictions, with bootstrap 95% intervals", fm_cmd_bootstrap},
};
static const int N_COMMANDS = (int)(sizeof COMMANDS / sizeof *COMMANDS);

static void usage(FILE *out) {
    fprintf(out, "usage: fusemoe <command> [options]   (fusemoe <command> --help for details)\n\ncommands:\n");
    for (int i = 0; i < N_COMMANDS; i++) fprintf(out, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
}

int fm_cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("fusemoe %s (OpenBLAS kernel: %s)\n", FM_VERSION, fm_blas_kernel_name());
    return 0;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    atexit(fm_plot_release); /* plots leave font caches behind; leak checkers should see none */
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0) name = "version";
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++) {
        if (strcmp(name, COMMANDS[i].name) != 0) continue;
        /* Under mpirun: train and ablate share the work among the ranks; the rest run alone. */
        if (fm_cli_mpi_begin(&argc, &argv) != 0) return 1;
        int status;
        if (fm_cli_dist() && strcmp(name, "train") != 0 && strcmp(name, "ablate") != 0) {
            if (fm_cli_is_rank0())
                fprintf(stderr, "fusemoe %s: runs as one process; start it without mpirun (or with -np 1)\n", name);
            status = 2;
        } else {
            status = COMMANDS[i].run(argc - 1, argv + 1);
        }
        fm_cli_mpi_end();
        return status;
    }
    fprintf(stderr, "fusemoe: unknown command '%s'\n", name);
    usage(stderr);
    return 2;
}
