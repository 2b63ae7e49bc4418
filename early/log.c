/* SPDX-License-Identifier: MIT */
/* The console log of the PID 1 programs, and the API filesystems (/proc,
 * /sys, /dev with /dev/console) that it and every other helper need. */
#include "early.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char *log_prefix = "kos";

void early_log_init(const char *prefix) {
        log_prefix = prefix;
}

double early_uptime(void) {
        struct timespec ts;

        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t early_cycles(void) {
#if defined(__x86_64__) || defined(__i386__)
        return __builtin_ia32_rdtsc();
#else
        return 0;
#endif
}

void early_log(const char *format, ...) {
        char line[1024];
        va_list ap;
        int n;

        n = snprintf(line, sizeof line, "%s [%12.6f] ", log_prefix, early_uptime());
        va_start(ap, format);
        vsnprintf(line + n, sizeof line - (size_t)n - 1, format, ap);
        va_end(ap);
        strcat(line, "\n");
        /* One write per line, so lines from the kernel do not split it. */
        (void)!write(STDOUT_FILENO, line, strlen(line));
}

static int mount_one(const char *source, const char *target, const char *type, unsigned long flags) {
        if (mkdir(target, 0755) < 0 && errno != EEXIST)
                return -errno;
        if (mount(source, target, type, flags, NULL) < 0 && errno != EBUSY)
                return -errno;
        return 0;
}

int early_mount_api_filesystems(void) {
        int r;

        if ((r = mount_one("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)) < 0 ||
            (r = mount_one("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC)) < 0 ||
            (r = mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID)) < 0)
                return r;
        /* The initramfs has no /dev/console node, so the kernel could not give
         * init a console: take it from devtmpfs now. */
        int fd = open("/dev/console", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (int i = 0; i < 3; i++)
                dup2(fd, i);
        if (fd > 2)
                close(fd);
        return 0;
}
