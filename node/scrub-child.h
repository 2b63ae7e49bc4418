/* SPDX-License-Identifier: MIT */
/* The scrub of the hash-tree components (lib/device/scrub.h) in a child process,
 * so that Node Manager's event loop (the watchdog, the Varlink API) never
 * waits on it: the child lowers itself to nice 19 and the idle I/O class
 * (ioprio_set(2), IOPRIO_CLASS_IDLE), so it never slows kos-app, reads
 * every device through its dm-verity mapping, and reports progress and its
 * result over a pipe. A child that dies is a failed scrub: the marker stays,
 * which costs only a full check at the next boot. */
#pragma once

#include <stddef.h>
#include <systemd/sd-event.h>

#include "scrub.h"

struct scrub_callbacks {
        void (*progress)(const struct kos_scrub_report *report, void *userdata);
        /* r as from kos_scrub_run(), or -ECHILD when the child died without
         * a result (report then says so); the scrub is freed after this. */
        void (*done)(int r, const struct kos_scrub_report *report, void *userdata);
        void *userdata;
};

/* Starts scrubbing devices[0..n) in a child. One scrub at a time is the
 * caller's rule. */
int scrub_start(sd_event *event, const struct kos_boot_info_hash_tree *devices, size_t n,
                const struct scrub_callbacks *callbacks);
