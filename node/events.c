/* SPDX-License-Identifier: MIT */
/* Node Manager's event log: the console (the journal) and, when the DataFS
 * is there, /data/kos/events, so that a later boot can tell what happened. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "beneath.h"
#include "early.h"
#include "node.h"

int data_kos_fd = -1;

/* Appends a line to /data/kos/events. The file is opened beneath /data/kos
 * without following symlinks and must be a regular file: anything else there
 * (a symlink to /etc/ld.so.preload, a FIFO) was put by someone with the disk,
 * and is removed and replaced by a fresh log. */
static void append_event_line(const char *line) {
        struct stat st;

        if (data_kos_fd < 0)
                return;
        if (fstatat(data_kos_fd, "events", &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode)) {
                early_log("%s/events is %s, not a regular file: replacing it", DATA_KOS, file_kind(st.st_mode));
                (void)unlinkat(data_kos_fd, "events", 0);
        }
        /* Checked again as it is opened: it may have been swapped meanwhile. */
        int fd = open_regular_beneath(data_kos_fd, "events", O_WRONLY | O_APPEND | O_CREAT, 0644, NULL);
        if (fd < 0)
                return;
        if (kos_write_all(fd, line, strlen(line)) < 0 || fsync(fd) < 0)
                early_log("cannot append to %s/events: %m", DATA_KOS);
        close(fd);
}

void event(const char *format, ...) {
        char text[600], clean[700], line[760];
        va_list ap;

        va_start(ap, format);
        vsnprintf(text, sizeof text, format, ap);
        va_end(ap);
        escape_text(text, clean, sizeof clean);
        early_log("%s", clean);
        snprintf(line, sizeof line, "%lld %s\n", (long long)time(NULL), clean);
        append_event_line(line);
}

void open_data_kos(void) {
        _cleanup_close_ int data = open(KOS_DATA_MOUNT, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

        if (data < 0)
                return;
        data_kos_fd = open_beneath(data, "kos", O_RDONLY | O_DIRECTORY, 0);
        if (data_kos_fd < 0 && data_kos_fd != -ENOENT)
                early_log("%s cannot be used (%s): no inbox, no events log", DATA_KOS, strerror(-data_kos_fd));
}
