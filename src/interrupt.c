#include "src/interrupt.h"

#include <signal.h>
#include <string.h>

static volatile sig_atomic_t g_signal;

static void on_signal(int sig) {
    g_signal = sig;
    /* The next signal gets the default action (terminate). */
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
}

void fm_interrupt_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int fm_interrupt_requested(void) { return (int)g_signal; }

void fm_interrupt_clear(void) {
    g_signal = 0;
    fm_interrupt_install();
}
