/* SPDX-License-Identifier: MIT */
/* What an installer child tells Node Manager over its pipe: progress, then
 * one final record. Shared by installer.c (bundles, in the forked child)
 * and kos-node-pull.c (pulls, in the program that child executes). */
#pragma once

#include <stdint.h>

#include "bundle-install.h"

/* One record per write; smaller than PIPE_BUF, so each write is atomic and
 * each read of sizeof(struct installer_record) gets exactly one. */
struct installer_record {
        int final; /* 1: r and result are set, nothing follows */
        int r;
        uint64_t done, total;
        struct kos_bundle_result result;
};
_Static_assert(sizeof(struct installer_record) <= 4096, "a record must fit in PIPE_BUF");

/* The fd on which kos-node-pull writes its records. */
#define INSTALLER_REPORT_FD 3
