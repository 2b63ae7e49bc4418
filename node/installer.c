/* SPDX-License-Identifier: MIT */
#include "installer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "child-process.h"
#include "installer-record.h"
#include "layout.h"
#include "update-config.h"
#include "util.h"

#define PROGRESS_INTERVAL_NS (250 * 1000000ULL)

#define record installer_record

struct installer {
        struct child_process child;
        struct installer_callbacks callbacks;
        /* pulls only */
        sd_event_source *timer;
        struct installer_deadline deadline;
        uint64_t start_usec, deadline_usec;
};

struct child {
        int fd;
        uint64_t last_ns;
};

static void child_progress(uint64_t done, uint64_t total, void *userdata) {
        struct child *c = userdata;
        uint64_t now = kos_now_ns();

        if (now - c->last_ns < PROGRESS_INTERVAL_NS && done < total)
                return;
        c->last_ns = now;
        struct record rec = {.done = done, .total = total};
        if (kos_write_all(c->fd, &rec, sizeof rec) < 0)
                return; /* the parent is gone; PR_SET_PDEATHSIG ends this process */
}

static _Noreturn void child_main(const struct kos_imagefs *img, const struct kos_keyring *ring,
                                 const uint8_t running_id[static KOS_SHA256_LEN], int bundle_fd, int report_fd) {
        struct child c = {.fd = report_fd};
        struct kos_bundle_options options = {.progress = child_progress, .userdata = &c, .running_id = running_id};
        struct record rec = {.final = 1};

        rec.r = kos_bundle_install(img, ring, bundle_fd, &options, &rec.result);
        /* Nobody to tell when the parent is gone: the install is done anyway. */
        _exit(kos_write_all(report_fd, &rec, sizeof rec) < 0); /* no atexit handlers, no stdio flush: they belong to the parent */
}

/* After the final record, or the pipe closed without one. */
static void installer_finish(struct installer *in, int r, const struct kos_bundle_result *result) {
        struct kos_bundle_result empty = {0};

        child_process_reap(&in->child);
        in->timer = sd_event_source_disable_unref(in->timer);
        in->callbacks.done(r, result ? result : &empty, in->callbacks.userdata);
        free(in);
}

/* base + total bytes at the deadline's rate, from the start; saturating. */
static uint64_t deadline_for(const struct installer *in, uint64_t total_bytes) {
        uint64_t rate = in->deadline.bytes_per_second ? in->deadline.bytes_per_second : 1;
        uint64_t seconds = total_bytes / rate, usec = seconds > UINT64_MAX / 1000000ULL ? UINT64_MAX : seconds * 1000000ULL;
        uint64_t d = in->start_usec + in->deadline.base_usec;

        return d < in->start_usec || usec > UINT64_MAX - d ? UINT64_MAX : d + usec;
}

/* A progress record says how much the pull has to fetch: the deadline moves to fit it. */
static void extend_deadline(struct installer *in, uint64_t total_bytes) {
        uint64_t d = deadline_for(in, total_bytes);

        if (!in->timer || d <= in->deadline_usec)
                return;
        in->deadline_usec = d;
        (void)sd_event_source_set_time(in->timer, d);
}

/* The deadline passed: the child is killed, whatever it was doing, and the
 * job ends as failed, so that Node Manager takes the next one. What it left
 * in the ImageFS is removed by the next pull (kos_manifest_install()). */
static int on_deadline(sd_event_source *s, uint64_t usec, void *userdata) {
        struct installer *in = userdata;

        (void)kill(in->child.pid, SIGKILL);
        installer_finish(in, -ETIMEDOUT, NULL);
        return 0;
}

static int on_report(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct installer *in = userdata;
        struct record rec;

        ssize_t n = read(fd, &rec, sizeof rec);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n == (ssize_t)sizeof rec && !rec.final) {
                extend_deadline(in, rec.total);
                in->callbacks.progress(rec.done, rec.total, in->callbacks.userdata);
                return 0;
        }
        if (n == (ssize_t)sizeof rec)
                installer_finish(in, rec.r, &rec.result);
        else
                installer_finish(in, -ECHILD, NULL); /* see installer.h */
        return 0;
}

/* Forks a child that runs child(arg, report_fd) and never returns; the
 * parent hears its records on an io event source. With a deadline, the
 * child is killed when it passes. */
static int start_child(sd_event *event, const struct installer_callbacks *callbacks, const struct installer_deadline *deadline,
                       void (*child)(void *arg, int report_fd), void *arg) {
        struct installer *in = calloc(1, sizeof *in);
        int r;

        if (!in)
                return -ENOMEM;
        in->callbacks = *callbacks;
        if (deadline) {
                in->deadline = *deadline;
                if ((r = sd_event_now(event, CLOCK_MONOTONIC, &in->start_usec)) < 0) {
                        free(in);
                        return r;
                }
                in->deadline_usec = deadline_for(in, 0);
        }
        if ((r = child_process_start(event, &in->child, child, arg, on_report, in)) < 0) {
                free(in);
                return r;
        }
        if (deadline && (r = sd_event_add_time(event, &in->timer, CLOCK_MONOTONIC, in->deadline_usec, 0, on_deadline, in)) < 0) {
                (void)kill(in->child.pid, SIGKILL);
                child_process_reap(&in->child);
                free(in);
                return r;
        }
        return 0;
}

struct bundle_child {
        const struct kos_imagefs *img;
        const struct kos_keyring *ring;
        const uint8_t *running_id;
        int bundle_fd;
};

static void bundle_child(void *arg, int report_fd) {
        struct bundle_child *b = arg;
        child_main(b->img, b->ring, b->running_id, b->bundle_fd, report_fd);
}

int installer_start(sd_event *event, const struct kos_imagefs *img, const struct kos_keyring *ring,
                    const uint8_t running_id[static KOS_SHA256_LEN], int bundle_fd,
                    const struct installer_callbacks *callbacks) {
        _cleanup_close_ int bundle = bundle_fd;
        struct bundle_child b = {.img = img, .ring = ring, .running_id = running_id, .bundle_fd = bundle};

        return start_child(event, callbacks, NULL, bundle_child, &b);
}

struct program_child {
        char *const *argv;
};

/* A pull runs in kos-node-pull (the only program that links libcurl), with
 * the pipe as its fd 3. */
static void program_child(void *arg, int report_fd) {
        struct program_child *p = arg;

        if (report_fd == INSTALLER_REPORT_FD)
                (void)fcntl(report_fd, F_SETFD, 0); /* dup2 onto itself would keep O_CLOEXEC */
        else if (dup2(report_fd, INSTALLER_REPORT_FD) < 0)
                _exit(1);
        execv(p->argv[0], p->argv);
        _exit(1); /* not installed, or libcurl missing: the pipe closes without a result */
}

int installer_start_program(sd_event *event, char *const argv[], const struct installer_deadline *deadline,
                            const struct installer_callbacks *callbacks) {
        struct program_child p = {.argv = argv};

        return start_child(event, callbacks, deadline, program_child, &p);
}

int installer_start_pull(sd_event *event, const char *imagefs, const uint8_t running_id[static KOS_SHA256_LEN],
                         const struct installer_callbacks *callbacks) {
        static const struct installer_deadline deadline = {.base_usec = INSTALLER_PULL_DEADLINE_BASE_USEC,
                                                           .bytes_per_second = INSTALLER_PULL_DEADLINE_RATE};
        char hex[KOS_SHA256_HEX_LEN + 1];
        char *const argv[] = {(char *)KOS_NODE_PULL_PROGRAM, (char *)"--config", (char *)UPDATE_CONFIG_FILE,
                              (char *)"--keyring", (char *)KOS_KEYRING_DIR, (char *)"--imagefs", (char *)imagefs,
                              (char *)"--running", hex, NULL};

        kos_hex_encode(running_id, KOS_SHA256_LEN, hex);
        return installer_start_program(event, argv, &deadline, callbacks);
}
