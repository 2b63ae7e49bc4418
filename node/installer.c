/* SPDX-License-Identifier: MIT */
#include "installer.h"

#include <errno.h>
#include <fcntl.h>
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
        in->callbacks.done(r, result ? result : &empty, in->callbacks.userdata);
        free(in);
}

static int on_report(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        struct installer *in = userdata;
        struct record rec;

        ssize_t n = read(fd, &rec, sizeof rec);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n == (ssize_t)sizeof rec && !rec.final) {
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
 * parent hears its records on an io event source. */
static int start_child(sd_event *event, const struct installer_callbacks *callbacks,
                       void (*child)(void *arg, int report_fd), void *arg) {
        struct installer *in = calloc(1, sizeof *in);

        if (!in)
                return -ENOMEM;
        in->callbacks = *callbacks;
        int r = child_process_start(event, &in->child, child, arg, on_report, in);
        if (r < 0)
                free(in);
        return r;
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

        return start_child(event, callbacks, bundle_child, &b);
}

struct pull_child {
        const char *imagefs, *running_hex;
};

/* The pull runs in kos-node-pull (the only program that links libcurl),
 * with the pipe as its fd 3. */
static void pull_child(void *arg, int report_fd) {
        struct pull_child *p = arg;
        char *const argv[] = {(char *)KOS_NODE_PULL_PROGRAM, (char *)"--config", (char *)UPDATE_CONFIG_FILE,
                              (char *)"--keyring", (char *)KOS_KEYRING_DIR, (char *)"--imagefs", (char *)p->imagefs,
                              (char *)"--running", (char *)p->running_hex, NULL};

        if (report_fd == INSTALLER_REPORT_FD)
                (void)fcntl(report_fd, F_SETFD, 0); /* dup2 onto itself would keep O_CLOEXEC */
        else if (dup2(report_fd, INSTALLER_REPORT_FD) < 0)
                _exit(1);
        execv(KOS_NODE_PULL_PROGRAM, argv);
        _exit(1); /* not installed, or libcurl missing: the pipe closes without a result */
}

int installer_start_pull(sd_event *event, const char *imagefs, const uint8_t running_id[static KOS_SHA256_LEN],
                         const struct installer_callbacks *callbacks) {
        char hex[KOS_SHA256_HEX_LEN + 1];
        struct pull_child p = {.imagefs = imagefs, .running_hex = hex};

        kos_hex_encode(running_id, KOS_SHA256_LEN, hex);
        return start_child(event, callbacks, pull_child, &p);
}
