/* Graceful interruption: SIGINT and SIGTERM set a flag that long-running loops poll, so a run
 * can save a resumable checkpoint and exit cleanly. A second signal of either kind restores
 * the default action, so pressing Ctrl-C twice still stops a stuck process at once. */
#ifndef FM_INTERRUPT_H
#define FM_INTERRUPT_H

/* Installs the handlers (idempotent). */
void fm_interrupt_install(void);

/* The signal number received (SIGINT or SIGTERM), or 0 if none since the last clear. */
int fm_interrupt_requested(void);

/* Forgets a received signal and re-arms the handlers. */
void fm_interrupt_clear(void);

#endif
