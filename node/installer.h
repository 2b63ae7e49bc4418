/* SPDX-License-Identifier: MIT */
/* Installs one bundle in a child process while Node Manager's event loop
 * keeps running (and pinging systemd's watchdog, and answering the API).
 * The child runs kos_bundle_install() (or, for a pull from the update
 * source, executes kos-node-pull, which runs kos_oci_pull()) and reports progress and its result
 * over a pipe; the parent hears them from an io event source. A child that
 * dies (a crash, the OOM killer) is a failed install that was not the
 * bundle's fault: what it wrote is as after a power cut, which the install
 * protocol is built for (docs/format.md, "Update bundles"). */
#pragma once

#include <stdint.h>
#include <systemd/sd-event.h>

#include "bundle-install.h"
#include "gc.h"

struct installer_callbacks {
        void (*progress)(uint64_t done_bytes, uint64_t total_bytes, void *userdata);
        /* r as from kos_bundle_install(), or -ECHILD when the child died
         * without a result; the installer is freed after this. */
        void (*done)(int r, const struct kos_bundle_result *result, void *userdata);
        void *userdata;
};

/* Starts installing the bundle read from bundle_fd (taken: closed here).
 * running_id is the manifest this system booted: never retired by the
 * install (kos_bundle_options.running_id). One installer at a time is the
 * caller's rule. */
int installer_start(sd_event *event, const struct kos_imagefs *img, const struct kos_keyring *ring,
                    const uint8_t running_id[static KOS_SHA256_LEN], int bundle_fd,
                    const struct installer_callbacks *callbacks);

/* The program a pull runs in (node/kos-node-pull.c, in the runtime layer). */
#define KOS_NODE_PULL_PROGRAM "/usr/lib/kos/kos-node-pull"

/* How long a pull may run before it is killed: base_usec, plus the signed
 * size of its manifest's components (the total of its progress records) at
 * bytes_per_second. kos-node-pull bounds each of its requests itself
 * (lib/registry/oci-registry.h); this is the bound on the whole, for a child that
 * hangs anyway. */
struct installer_deadline {
        uint64_t base_usec;
        uint64_t bytes_per_second;
};
#define INSTALLER_PULL_DEADLINE_BASE_USEC (15 * 60 * 1000000ULL)
#define INSTALLER_PULL_DEADLINE_RATE (16u << 10)

/* Starts one pull from the update source (/etc/kos/update.conf) into the
 * ImageFS mounted at imagefs, in a child that executes
 * KOS_NODE_PULL_PROGRAM, under the default deadline. Callbacks as for
 * installer_start(); -ECHILD when the program could not run (missing, or
 * libcurl missing from the root); -ETIMEDOUT when the deadline passed (the
 * child was killed). */
int installer_start_pull(sd_event *event, const char *imagefs, const uint8_t running_id[static KOS_SHA256_LEN],
                         const struct installer_callbacks *callbacks);

/* What installer_start_pull() does, for any program: argv runs with the
 * pipe as its fd 3 (records as kos-node-pull writes them), and is killed
 * (SIGKILL) when deadline passes, done() then hearing -ETIMEDOUT. */
int installer_start_program(sd_event *event, char *const argv[], const struct installer_deadline *deadline,
                            const struct installer_callbacks *callbacks);
