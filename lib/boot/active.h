/* SPDX-License-Identifier: MIT */
/* The `active` file of the ImageFS: manifest names in boot order, one per
 * line, replaced only atomically. See docs/format.md, "ImageFS". */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "layout.h"
#include "util.h"

#define KOS_ACTIVE_MAX 64
#define KOS_ACTIVE_FILE_MAX 65536

struct kos_imagefs;

struct kos_active_entry {
        char name[KOS_NAME_MAX + 4]; /* as written; a longer line is cut and marked "..." */
        bool name_valid;
};

struct kos_active_list {
        size_t n;
        struct kos_active_entry entries[KOS_ACTIVE_MAX];
        size_t n_ignored; /* lines beyond KOS_ACTIVE_MAX */
};

/* Reads `active`. A missing file is an empty list (-ENOENT is returned so
 * the caller can say so), empty lines are ignored, and a line that is not
 * a valid name is kept as an entry with name_valid false, so selection can
 * report it instead of silently skipping it. */
_kos_must_check_ int kos_active_read(const struct kos_imagefs *img, struct kos_active_list *ret);
/* Replaces `active` atomically with the names of the list. */
_kos_must_check_ int kos_active_write(const struct kos_imagefs *img, const struct kos_active_list *list);
/* The index of name in the list, or -1. */
_kos_must_check_ int kos_active_find(const struct kos_active_list *list, const char *name);
/* Puts name first or last, removing it from where it was; -EINVAL for an
 * invalid name, -E2BIG when the list is full. */
_kos_must_check_ int kos_active_insert(struct kos_active_list *list, const char *name, bool first);
/* Removes every entry of that name. */
void kos_active_remove(struct kos_active_list *list, const char *name);
