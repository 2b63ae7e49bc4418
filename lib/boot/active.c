/* SPDX-License-Identifier: MIT */
#include "active.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "imagefs.h"

static void add_active_line(struct kos_active_list *list, const char *line, size_t len) {
        if (len == 0)
                return;
        if (list->n >= KOS_ACTIVE_MAX) {
                list->n_ignored++;
                return;
        }
        struct kos_active_entry *e = &list->entries[list->n++];
        if (len > KOS_NAME_MAX) {
                memcpy(e->name, line, KOS_NAME_MAX);
                memcpy(e->name + KOS_NAME_MAX, "...", 4);
                e->name_valid = false;
                return;
        }
        memcpy(e->name, line, len);
        e->name[len] = '\0';
        e->name_valid = strlen(e->name) == len && kos_name_is_valid(e->name);
}

int kos_active_read(const struct kos_imagefs *img, struct kos_active_list *ret) {
        _cleanup_free_ char *data = NULL;
        size_t len;

        memset(ret, 0, sizeof *ret);
        int r = kos_read_file_at(img->root_fd, KOS_ACTIVE_FILE, KOS_ACTIVE_FILE_MAX, &data, &len);
        if (r < 0)
                return r;
        for (size_t pos = 0; pos < len;) {
                const char *nl = memchr(data + pos, '\n', len - pos);
                size_t line_len = nl ? (size_t)(nl - (data + pos)) : len - pos;
                add_active_line(ret, data + pos, line_len);
                pos += line_len + 1;
        }
        return 0;
}

int kos_active_write(const struct kos_imagefs *img, const struct kos_active_list *list) {
        char buf[KOS_ACTIVE_MAX * (KOS_NAME_MAX + 1) + 1];
        size_t len = 0;

        for (size_t i = 0; i < list->n; i++) {
                if (!list->entries[i].name_valid)
                        continue; /* rewriting the list drops what could never boot */
                size_t n = strlen(list->entries[i].name);
                memcpy(buf + len, list->entries[i].name, n);
                buf[len + n] = '\n';
                len += n + 1;
        }
        return kos_write_file_atomic_at(img->root_fd, KOS_ACTIVE_FILE, buf, len, 0644);
}

int kos_active_find(const struct kos_active_list *list, const char *name) {
        for (size_t i = 0; i < list->n; i++)
                if (list->entries[i].name_valid && strcmp(list->entries[i].name, name) == 0)
                        return (int)i;
        return -1;
}

void kos_active_remove(struct kos_active_list *list, const char *name) {
        int i;

        while ((i = kos_active_find(list, name)) >= 0) {
                memmove(&list->entries[i], &list->entries[i + 1], (list->n - (size_t)i - 1) * sizeof list->entries[0]);
                list->n--;
        }
}

int kos_active_insert(struct kos_active_list *list, const char *name, bool first) {
        if (!kos_name_is_valid(name))
                return -EINVAL;
        kos_active_remove(list, name);
        if (list->n >= KOS_ACTIVE_MAX)
                return -E2BIG;
        size_t at = first ? 0 : list->n;
        memmove(&list->entries[at + 1], &list->entries[at], (list->n - at) * sizeof list->entries[0]);
        snprintf(list->entries[at].name, sizeof list->entries[at].name, "%s", name);
        list->entries[at].name_valid = true;
        list->n++;
        return 0;
}
