/* The one allocation wrapper. Every heap allocation in the project goes through these calls so
 * that tests can make the Nth allocation fail and check that each constructor cleans up. */
#ifndef FM_ALLOC_H
#define FM_ALLOC_H

#include <stddef.h>

/* malloc/calloc/realloc twins. They return NULL on failure (or on an injected failure); they
 * never abort. A size of 0 allocates 1 byte so that NULL always means failure.
 * fm_malloc_array checks count * size for overflow. */
void *fm_malloc(size_t size);
void *fm_malloc_array(size_t count, size_t size);
void *fm_calloc(size_t count, size_t size);
void *fm_realloc(void *ptr, size_t size);
/* Releases memory from the calls above; NULL is accepted. */
void fm_free(void *ptr);
/* A heap copy of `s` (NULL on failure); the caller frees it with fm_free. */
char *fm_strdup(const char *s);

/* Test hook: the nth allocation call from now (1-based) and every one after it fails, until
 * fm_alloc_fail_reset(). n = 0 disables injection. Thread-safe. */
void fm_alloc_fail_after(long n);
void fm_alloc_fail_reset(void);
/* Number of allocation calls since the last fm_alloc_fail_after/fm_alloc_fail_reset. Tests use
 * it to find how many allocations a constructor makes and then fail each one in turn. */
long fm_alloc_calls(void);

#endif
