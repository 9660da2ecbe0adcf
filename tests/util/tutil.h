/*
 * tests/util — helpers shared by the unit tests (cmocka).
 */
#ifndef DM_TESTS_TUTIL_H
#define DM_TESTS_TUTIL_H

#include <stddef.h>
#include <stdint.h>

/* Path of ../shared/golden (or $DORMANT_GOLDEN) if it exists, else NULL.
 * Tests that need golden data call skip() when this is NULL. */
const char *tu_golden_dir(void);

/* A fresh private temporary directory, removed (with its files) at exit. */
const char *tu_tmpdir(void);
/* tu_tmpdir() + "/" + name, in a static rotating buffer. */
const char *tu_tmp_path(const char *name);

/* Reads a whole file (malloc'ed, NUL-terminated beyond n); NULL on error. */
void *tu_read_file(const char *path, size_t *n);
/* Writes n bytes to path; 0 on success. */
int tu_write_file(const char *path, const void *data, size_t n);

/* A copy of data[0..n) placed so that its last byte is immediately followed
 * by a PROT_NONE page: any read past the end faults.  Free with
 * tu_guard_free(). */
void *tu_guard_copy(const void *data, size_t n);
void tu_guard_free(void *p, size_t n);

/* Path of the dormant binary of the build under test: $BUILD/dormant
 * (tests/run.sh exports BUILD; default "build"). */
const char *tu_dormant(void);

/* Runs a shell command and returns its exit status (-1 if it could not run). */
int tu_system(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Runs a command capturing stdout (malloc'ed) and the exit status. */
char *tu_capture(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts `dormant serve --port 0 ARGS...` (argv NULL-terminated) as a
 * child process, reads the port it listens on from its stderr banner, and
 * returns 0 with *pid and *port set.  Its later stderr goes to log_path
 * (NULL: discarded).  tu_serve_stop sends SIGTERM and returns the exit
 * status (-1 if it did not exit cleanly). */
int tu_serve_start(const char *const *argv, const char *log_path, int *pid, int *port);
int tu_serve_stop(int pid);

/* SHA-256 of data, as 64 lower-case hex digits + NUL. */
void tu_sha256_hex(const void *data, size_t n, char out[65]);

#endif
