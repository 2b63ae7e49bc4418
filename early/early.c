/* SPDX-License-Identifier: MIT */
#include "early.h"

#include <blkid/blkid.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static const char *log_prefix = "kos";
static char cmdline[8192];

void early_log_init(const char *prefix) {
        log_prefix = prefix;
}

double early_uptime(void) {
        struct timespec ts;

        clock_gettime(CLOCK_BOOTTIME, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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

/* The command line split in place into words: "key=value" becomes key and
 * value strings that stay valid for the life of the process. */
static struct {
        const char *key, *value;
} words[256];
static size_t n_words;

static void split_cmdline(char *p) {
        while (*p && n_words < ELEMENTSOF(words)) {
                while (*p == ' ' || *p == '\n')
                        p++;
                if (!*p)
                        break;
                char *start = p, *eq = NULL;
                bool quoted = false;
                for (; *p && (quoted || (*p != ' ' && *p != '\n')); p++) {
                        if (*p == '"')
                                quoted = !quoted;
                        else if (*p == '=' && !eq)
                                eq = p;
                }
                if (*p)
                        *p++ = '\0';
                if (eq)
                        *eq = '\0';
                words[n_words].key = start;
                words[n_words++].value = eq ? eq + 1 : "";
        }
}

int early_cmdline_load(void) {
        _cleanup_close_ int fd = open("/proc/cmdline", O_RDONLY | O_CLOEXEC);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = read(fd, cmdline, sizeof cmdline - 1);
        if (n < 0)
                return -errno;
        cmdline[n] = '\0';
        n_words = 0;
        split_cmdline(cmdline);
        return 0;
}

void early_cmdline_set(const char *text) {
        snprintf(cmdline, sizeof cmdline, "%s", text);
        n_words = 0;
        split_cmdline(cmdline);
}

const char *early_cmdline_get(const char *key) {
        const char *found = NULL;

        for (size_t i = 0; i < n_words; i++)
                if (strcmp(words[i].key, key) == 0)
                        found = words[i].value; /* the last one wins, as in the kernel */
        return found;
}

int early_load_modules(const char *dir, const char *list_file, unsigned *ret_loaded) {
        _cleanup_free_ char *list = NULL;
        size_t len;
        unsigned loaded = 0, failed = 0;
        int r = kos_read_file_at(AT_FDCWD, list_file, 65536, &list, &len);

        if (r < 0)
                return r;
        _cleanup_close_ int dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0)
                return -errno;
        /* A module that does not load (say, aesni_intel on a CPU without AES-NI)
         * is logged and skipped: what actually needs it fails later, by name. */
        for (char *line = strtok(list, "\n"); line; line = strtok(NULL, "\n")) {
                _cleanup_close_ int fd = openat(dirfd, line, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST)) {
                        early_log("module %s not loaded: %s", line, strerror(errno));
                        failed++;
                        continue;
                }
                loaded++;
        }
        *ret_loaded = loaded;
        return failed ? -ENOEXEC : 0;
}

static void probe_device(const char *path, struct early_device *ret) {
        const char *v;

        memset(ret, 0, sizeof *ret);
        snprintf(ret->path, sizeof ret->path, "%s", path);
        blkid_probe pr = blkid_new_probe_from_filename(path);
        if (!pr)
                return;
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL);
        blkid_probe_enable_partitions(pr, 1);
        blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
        if (blkid_do_safeprobe(pr) >= 0) {
                if (blkid_probe_lookup_value(pr, "PART_ENTRY_NAME", &v, NULL) == 0)
                        snprintf(ret->partlabel, sizeof ret->partlabel, "%s", v);
                if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0)
                        snprintf(ret->type, sizeof ret->type, "%s", v);
                if (blkid_probe_lookup_value(pr, "UUID", &v, NULL) == 0)
                        snprintf(ret->uuid, sizeof ret->uuid, "%s", v);
                if (blkid_probe_lookup_value(pr, "LABEL", &v, NULL) == 0)
                        snprintf(ret->label, sizeof ret->label, "%s", v);
        }
        blkid_free_probe(pr);
}

static bool device_matches_one(const struct early_device *d, const char *spec) {
        if (strncmp(spec, "PARTLABEL=", 10) == 0)
                return strcmp(d->partlabel, spec + 10) == 0; /* may hold no filesystem yet */
        if (strncmp(spec, "LABEL=", 6) == 0)
                return d->type[0] && strcmp(d->label, spec + 6) == 0;
        if (strncmp(spec, "UUID=", 5) == 0)
                return d->type[0] && strcasecmp(d->uuid, spec + 5) == 0;
        return strcmp(d->path, spec) == 0 && d->type[0];
}

/* "A|B": either. */
static bool device_matches(const struct early_device *d, const char *spec) {
        char buf[256];

        snprintf(buf, sizeof buf, "%s", spec);
        for (char *save = NULL, *one = strtok_r(buf, "|", &save); one; one = strtok_r(NULL, "|", &save))
                if (device_matches_one(d, one))
                        return true;
        return false;
}

static int scan_once(const char *spec, struct early_device *ret) {
        struct dirent **names = NULL;
        int n = scandir("/sys/class/block", &names, NULL, alphasort), r = -ENOENT;

        for (int i = 0; i < n; i++) {
                struct early_device d;
                char path[64];
                if (r < 0 && names[i]->d_name[0] != '.' &&
                    (size_t)snprintf(path, sizeof path, "/dev/%s", names[i]->d_name) < sizeof path) {
                        probe_device(path, &d);
                        if (device_matches(&d, spec)) {
                                *ret = d;
                                r = 0;
                        }
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int early_find_device(const char *spec, unsigned timeout_ms, struct early_device *ret) {
        uint64_t deadline = kos_now_ns() + (uint64_t)timeout_ms * 1000000ull;

        for (;;) {
                if (scan_once(spec, ret) == 0)
                        return 0;
                if (kos_now_ns() >= deadline)
                        return -ETIMEDOUT;
                struct timespec pause = {0, 50 * 1000000L};
                nanosleep(&pause, NULL);
        }
}
