/* SPDX-License-Identifier: MIT */
#include "early.h"

#include <blkid/blkid.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
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

unsigned early_cmdline_seconds(const char *key, unsigned fallback) {
        const char *v = early_cmdline_get(key);
        char *end;

        if (!v || !*v)
                return fallback;
        errno = 0;
        unsigned long n = strtoul(v, &end, 10);
        if (errno || *end || !isdigit((unsigned char)v[0]) || n > 3600) {
                early_log("ignoring %s=%s: not a number of seconds up to 3600", key, v);
                return fallback;
        }
        return (unsigned)n;
}

const char *early_cmdline_get(const char *key) {
        const char *found = NULL;

        for (size_t i = 0; i < n_words; i++)
                if (strcmp(words[i].key, key) == 0)
                        found = words[i].value; /* the last one wins, as in the kernel */
        return found;
}

#define MAX_MODULES 256
#define MAX_MODULE_DEPS 32
#define MODULE_THREADS 4

struct module_load {
        const char *path;
        size_t n_deps;
        unsigned short deps[MAX_MODULE_DEPS]; /* indexes of earlier entries */
        enum { MODULE_WAITING, MODULE_LOADING, MODULE_DONE } state;
};

struct module_set {
        int dirfd;
        size_t n;
        struct module_load m[MAX_MODULES];
        unsigned loaded, failed;
        pthread_mutex_t lock;
        pthread_cond_t changed;
};

static int finit_module_at(int dirfd, const char *path) {
        int r = 0, fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

        if (fd < 0 || (syscall(SYS_finit_module, fd, "", 0) < 0 && errno != EEXIST))
                r = -errno;
        if (fd >= 0)
                close(fd);
        return r;
}

int (*early_module_loader)(int dirfd, const char *path) = finit_module_at;

static bool module_ready(const struct module_set *set, const struct module_load *m) {
        for (size_t i = 0; i < m->n_deps; i++)
                if (set->m[m->deps[i]].state != MODULE_DONE)
                        return false;
        return true;
}

/* Takes the first waiting module whose dependencies are done, loads it,
 * until none is left. Any number of these run at once. */
static void *module_worker(void *userdata) {
        struct module_set *set = userdata;

        pthread_mutex_lock(&set->lock);
        for (;;) {
                struct module_load *next = NULL;
                bool waiting = false;
                for (size_t i = 0; i < set->n && !next; i++) {
                        if (set->m[i].state != MODULE_WAITING)
                                continue;
                        waiting = true;
                        if (module_ready(set, &set->m[i]))
                                next = &set->m[i];
                }
                if (!waiting)
                        break;
                if (!next) {
                        pthread_cond_wait(&set->changed, &set->lock);
                        continue;
                }
                next->state = MODULE_LOADING;
                pthread_mutex_unlock(&set->lock);

                int r = early_module_loader(set->dirfd, next->path);
                if (r < 0)
                        early_log("module %s not loaded: %s", next->path, strerror(-r));

                pthread_mutex_lock(&set->lock);
                next->state = MODULE_DONE;
                if (r < 0)
                        set->failed++;
                else
                        set->loaded++;
                pthread_cond_broadcast(&set->changed);
        }
        pthread_mutex_unlock(&set->lock);
        return NULL;
}

/* "path: dep dep" -> an entry whose deps are the earlier entries named; a
 * line without ':' waits for every line before it. */
static int parse_module_line(struct module_set *set, char *line) {
        struct module_load *m = &set->m[set->n];
        char *colon = strchr(line, ':');

        memset(m, 0, sizeof *m);
        m->path = line;
        if (!colon) {
                for (size_t i = 0; i < set->n && m->n_deps < MAX_MODULE_DEPS; i++)
                        m->deps[m->n_deps++] = (unsigned short)i;
        } else {
                *colon = '\0';
                for (char *save = NULL, *dep = strtok_r(colon + 1, " ", &save); dep; dep = strtok_r(NULL, " ", &save))
                        for (size_t i = 0; i < set->n; i++)
                                if (strcmp(set->m[i].path, dep) == 0) {
                                        if (m->n_deps == MAX_MODULE_DEPS)
                                                return -E2BIG;
                                        m->deps[m->n_deps++] = (unsigned short)i;
                                        break;
                                }
                /* A dependency not listed earlier is not waited for: the list is
                 * in load order, so it can only be missing, and loading this
                 * module then fails by itself with unknown symbols. */
        }
        set->n++;
        return 0;
}

int early_load_modules(const char *dir, const char *list_file, unsigned *ret_loaded) {
        _cleanup_free_ char *list = NULL;
        _cleanup_free_ struct module_set *set = calloc(1, sizeof *set);
        pthread_t threads[MODULE_THREADS];
        size_t len, started = 0;
        int r;

        if (!set)
                return -ENOMEM;
        if ((r = kos_read_file_at(AT_FDCWD, list_file, 65536, &list, &len)) < 0)
                return r;
        set->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (set->dirfd < 0)
                return -errno;
        for (char *save = NULL, *line = strtok_r(list, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (set->n == MAX_MODULES || (r = parse_module_line(set, line)) < 0) {
                        close(set->dirfd);
                        return set->n == MAX_MODULES ? -E2BIG : r;
                }
        }
        pthread_mutex_init(&set->lock, NULL);
        pthread_cond_init(&set->changed, NULL);
        /* Loading is mostly CPU work (signature check, relocation, init):
         * independent modules load on several CPUs at once. A module that
         * does not load (say, aesni_intel on a CPU without AES-NI) is logged
         * and skipped: what actually needs it fails later, by name. */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        size_t wanted = cpus < 1 ? 1 : cpus > MODULE_THREADS ? MODULE_THREADS : (size_t)cpus;
        for (; started + 1 < wanted; started++)
                if (pthread_create(&threads[started], NULL, module_worker, set) != 0)
                        break;
        module_worker(set); /* this thread works too, so one worker always runs */
        for (size_t i = 0; i < started; i++)
                pthread_join(threads[i], NULL);
        close(set->dirfd);
        *ret_loaded = set->loaded;
        return set->failed ? -ENOEXEC : 0;
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
