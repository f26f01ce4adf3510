/* LD_PRELOAD shim for the end-to-end tests: makes fsync/fdatasync fail with EIO for files
 * whose path contains $WEIR_FAIL_FSYNC_MATCH, once the file $WEIR_FAIL_FSYNC_TRIGGER exists.
 * The broker binary is unchanged; only the disk (as libc reports it) misbehaves. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int should_fail(int fd) {
    const char *match = getenv("WEIR_FAIL_FSYNC_MATCH");
    const char *trigger = getenv("WEIR_FAIL_FSYNC_TRIGGER");
    if (!match || !trigger || access(trigger, F_OK) != 0) return 0;
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0) return 0;
    path[n] = 0;
    return strstr(path, match) != NULL;
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = dlsym(RTLD_NEXT, "fdatasync");
    if (should_fail(fd)) { errno = EIO; return -1; }
    return real(fd);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = dlsym(RTLD_NEXT, "fsync");
    if (should_fail(fd)) { errno = EIO; return -1; }
    return real(fd);
}
