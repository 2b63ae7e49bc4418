/* SPDX-License-Identifier: MIT */
/* Node Manager's deadline on its pull child (node/installer.c), on a real
 * sd-event loop with real child processes: /bin/sleep stands in for a
 * kos-node-pull that a registry holds forever, /bin/sh for one that reports
 * (its records written beforehand by the test, as kos-node-pull writes them). */
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "installer-record.h"
#include "installer.h"
#include "test.h"
#include "util.h"

struct outcome {
        bool done;
        int r;
        char name[KOS_NAME_MAX + 1];
        uint64_t total;
};

static void on_progress(uint64_t done, uint64_t total, void *userdata) {
        struct outcome *o = userdata;
        o->total = total;
}

static void on_done(int r, const struct kos_bundle_result *result, void *userdata) {
        struct outcome *o = userdata;
        o->done = true;
        o->r = r;
        snprintf(o->name, sizeof o->name, "%s", result->name);
}

/* Runs the loop until the job is done or limit_ms pass (the test's own
 * bound: a job that never ends fails the test instead of hanging it).
 * Returns how long it took, in ms. */
static uint64_t run_until_done(sd_event *e, struct outcome *o, uint64_t limit_ms) {
        uint64_t start = kos_now_ns();

        while (!o->done && kos_now_ns() - start < limit_ms * 1000000ULL)
                (void)sd_event_run(e, 100000);
        return (kos_now_ns() - start) / 1000000ULL;
}

/* Writes one record to path, as kos-node-pull writes them to fd 3. */
static int write_record(const char *path, const struct installer_record *rec) {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        int r = kos_write_all(fd, rec, sizeof *rec);
        close(fd);
        return r;
}

static int start(sd_event *e, struct outcome *o, char *const argv[], const struct installer_deadline *d) {
        struct installer_callbacks callbacks = {.progress = on_progress, .done = on_done, .userdata = o};
        *o = (struct outcome){0};
        return installer_start_program(e, argv, d, &callbacks);
}

TEST(installer_kills_a_pull_child_past_its_deadline_and_takes_the_next_job) {
        __attribute__((cleanup(sd_event_unrefp))) sd_event *e = NULL;
        struct outcome o;
        char final[300], script[700];
        struct installer_deadline d = {.base_usec = 300000, .bytes_per_second = 1u << 20};

        CHECK(sd_event_new(&e) >= 0);
        /* A child that would hang for ten minutes: killed at 0.3 s. */
        char *const hang[] = {(char *)"/bin/sleep", (char *)"600", NULL};
        CHECK(start(e, &o, hang, &d) == 0);
        uint64_t ms = run_until_done(e, &o, 10000);
        fprintf(stderr, "  the hung child was killed after %llu ms\n", (unsigned long long)ms);
        CHECK(o.done && o.r == -ETIMEDOUT);
        CHECK(ms >= 250 && ms < 5000);
        /* The next job is taken, and ends with its own result. */
        struct installer_record rec = {.final = 1, .r = 0};
        snprintf(rec.result.name, sizeof rec.result.name, "next");
        snprintf(final, sizeof final, "%s/final", test_tmpdir());
        CHECK(write_record(final, &rec) == 0);
        snprintf(script, sizeof script, "cat '%s' >&3", final);
        char *const next[] = {(char *)"/bin/sh", (char *)"-c", script, NULL};
        struct installer_deadline ample = {.base_usec = 20000000, .bytes_per_second = 1u << 20};
        CHECK(start(e, &o, next, &ample) == 0);
        run_until_done(e, &o, 10000);
        CHECK(o.done && o.r == 0 && strcmp(o.name, "next") == 0);
}

TEST(installer_pull_deadline_grows_with_the_signed_size_the_child_reports) {
        __attribute__((cleanup(sd_event_unrefp))) sd_event *e = NULL;
        struct outcome o;
        char progress[300], final[300], script[800];
        /* 1.5 s, plus 1 s per MiB: a child reporting 4 MiB to fetch has 5.5 s. */
        struct installer_deadline d = {.base_usec = 1500000, .bytes_per_second = 1u << 20};

        CHECK(sd_event_new(&e) >= 0);
        snprintf(progress, sizeof progress, "%s/progress", test_tmpdir());
        snprintf(final, sizeof final, "%s/final", test_tmpdir());
        CHECK(write_record(progress, &(struct installer_record){.done = 0, .total = 4u << 20}) == 0);
        struct installer_record rec = {.final = 1, .r = 0};
        snprintf(rec.result.name, sizeof rec.result.name, "big");
        CHECK(write_record(final, &rec) == 0);
        /* Reports 4 MiB, works for 3 s (past the 1.5 s base), then ends. */
        snprintf(script, sizeof script, "cat '%s' >&3; sleep 3; cat '%s' >&3", progress, final);
        char *const slow[] = {(char *)"/bin/sh", (char *)"-c", script, NULL};
        CHECK(start(e, &o, slow, &d) == 0);
        run_until_done(e, &o, 10000);
        CHECK(o.done && o.r == 0 && strcmp(o.name, "big") == 0 && o.total == 4u << 20);
        /* Without the report the same work is past the deadline. */
        snprintf(script, sizeof script, "sleep 3; cat '%s' >&3", final);
        CHECK(start(e, &o, slow, &d) == 0);
        run_until_done(e, &o, 10000);
        CHECK(o.done && o.r == -ETIMEDOUT);
}
