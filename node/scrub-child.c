/* SPDX-License-Identifier: MIT */
#include "scrub-child.h"

#include <errno.h>
#include <linux/ioprio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "child-process.h"

#define PROGRESS_INTERVAL_NS (250 * 1000000ULL)

/* One record per write, smaller than PIPE_BUF: each write is atomic and
 * each read of sizeof(struct scrub_record) gets exactly one. */
struct scrub_record {
        int final; /* 1: r is set, nothing follows */
        int r;
        struct kos_scrub_report report;
};
_Static_assert(sizeof(struct scrub_record) <= 4096, "a record must fit in PIPE_BUF");

struct scrub {
        struct child_process child;
        const struct kos_boot_info_hash_tree *devices; /* for the child */
        size_t n;
        struct scrub_callbacks callbacks;
        struct kos_scrub_report last; /* the last progress heard */
};

struct child {
        int fd;
        uint64_t last_ns;
};

static void child_progress(const struct kos_scrub_report *report, void *userdata) {
        struct child *c = userdata;
        uint64_t now = kos_now_ns();

        if (now - c->last_ns < PROGRESS_INTERVAL_NS)
                return;
        c->last_ns = now;
        struct scrub_record rec = {.report = *report};
        (void)!kos_write_all(c->fd, &rec, sizeof rec); /* the parent is gone: PR_SET_PDEATHSIG ends this */
}

/* Lowest CPU and I/O priority, so the app never waits for the scrub. Best
 * effort: a kernel or scheduler that ignores the I/O class still gets a
 * correct scrub, only a less polite one. */
static void lower_priority(void) {
        (void)setpriority(PRIO_PROCESS, 0, 19);
        (void)syscall(SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_PRIO_VALUE(IOPRIO_CLASS_IDLE, 0));
}

static void child_main(void *arg, int report_fd) {
        const struct scrub *s = arg;
        struct child c = {.fd = report_fd};
        struct kos_scrub_ops ops = {.open = kos_scrub_open_device, .progress = child_progress, .userdata = &c};
        struct scrub_record rec = {.final = 1};

        lower_priority();
        rec.r = kos_scrub_run(s->devices, s->n, &ops, &rec.report);
        _exit(kos_write_all(report_fd, &rec, sizeof rec) < 0); /* no atexit handlers: they belong to the parent */
}

static void scrub_finish(struct scrub *s, int r, const struct kos_scrub_report *report) {
        child_process_reap(&s->child);
        s->callbacks.done(r, report, s->callbacks.userdata);
        free(s);
}

static int on_record(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        struct scrub *s = userdata;
        struct scrub_record rec;

        ssize_t n = read(fd, &rec, sizeof rec);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
                return 0;
        if (n == (ssize_t)sizeof rec && !rec.final) {
                s->last = rec.report;
                s->callbacks.progress(&rec.report, s->callbacks.userdata);
                return 0;
        }
        if (n == (ssize_t)sizeof rec) {
                scrub_finish(s, rec.r, &rec.report);
                return 0;
        }
        s->last.result = KOS_SCRUB_READ_ERROR;
        kos_error_set(&s->last.error, -ECHILD, "the scrub process died");
        scrub_finish(s, -ECHILD, &s->last);
        return 0;
}

int scrub_start(sd_event *event, const struct kos_boot_info_hash_tree *devices, size_t n,
                const struct scrub_callbacks *callbacks) {
        struct scrub *s = calloc(1, sizeof *s);

        if (!s)
                return -ENOMEM;
        *s = (struct scrub){.devices = devices, .n = n, .callbacks = *callbacks};
        int r = child_process_start(event, &s->child, child_main, s, on_record, s);
        if (r < 0)
                free(s);
        return r;
}
