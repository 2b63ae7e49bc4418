/* SPDX-License-Identifier: MIT */
/* The module loader: finit_module on up to 4 threads, in dependency order. */
#include "early.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

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
