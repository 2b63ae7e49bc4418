/* SPDX-License-Identifier: MIT */
/* Node Manager's update source: /etc/kos/update.conf, part of the signed
 * root (so trusted like the keyring beside it). Lines `key = value`, `#`
 * comments, blank lines; every key at most once:
 *   registry = [http[s]://]HOST[:PORT]/REPOSITORY:TAG   (required)
 *   interval = SECONDS          between polls (default 3600, 60 to 604800)
 *   jitter = SECONDS            0 to this many added to each wait (default interval/10)
 *   credentials-file = PATH     first line USER:PASSWORD (optional, absolute)
 *   ca-file = PATH              PEM CA bundle for https (optional, absolute)
 * See docs/node-manager.md, "Updates from a registry". */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kos-error.h"
#include "layout.h"

#define UPDATE_CONFIG_FILE KOS_UPDATE_CONFIG_FILE
#define UPDATE_CONFIG_MAX 4096
#define UPDATE_VALUE_MAX 512

struct update_config {
        char registry[UPDATE_VALUE_MAX];
        char credentials_file[UPDATE_VALUE_MAX]; /* "" when none */
        char ca_file[UPDATE_VALUE_MAX];          /* "" when none */
        uint32_t interval, jitter;               /* seconds */
};

/* Parses the file's text (len bytes, NUL-terminated). 0, or -EINVAL with
 * ret_error saying which line and why. */
int update_config_parse(const char *text, size_t len, struct update_config *ret, struct kos_error *ret_error);
