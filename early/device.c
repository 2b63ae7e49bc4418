/* SPDX-License-Identifier: MIT */
/* Finding a block device by label, UUID or path with libblkid. */
#include "early.h"

#include <blkid/blkid.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

static void probe_device(const char *path, struct early_device *ret) {
        const char *v;

        memset(ret, 0, sizeof *ret);
        snprintf(ret->path, sizeof ret->path, "%s", path);
        blkid_probe pr = blkid_new_probe_from_filename(path);
        if (!pr)
                return;
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID | BLKID_SUBLKS_LABEL);
        blkid_probe_enable_partitions(pr, 1);
        blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
        if (blkid_do_safeprobe(pr) >= 0) {
                if (blkid_probe_lookup_value(pr, "PART_ENTRY_NAME", &v, NULL) == 0)
                        snprintf(ret->partlabel, sizeof ret->partlabel, "%s", v);
                if (blkid_probe_lookup_value(pr, "TYPE", &v, NULL) == 0)
                        snprintf(ret->type, sizeof ret->type, "%s", v);
                if (blkid_probe_lookup_value(pr, "UUID", &v, NULL) == 0)
                        snprintf(ret->uuid, sizeof ret->uuid, "%s", v);
                if (blkid_probe_lookup_value(pr, "LABEL", &v, NULL) == 0)
                        snprintf(ret->label, sizeof ret->label, "%s", v);
        }
        blkid_free_probe(pr);
}

static bool device_matches_one(const struct early_device *d, const char *spec) {
        if (strncmp(spec, "PARTLABEL=", 10) == 0)
                return strcmp(d->partlabel, spec + 10) == 0; /* may hold no filesystem yet */
        if (strncmp(spec, "LABEL=", 6) == 0)
                return d->type[0] && strcmp(d->label, spec + 6) == 0;
        if (strncmp(spec, "UUID=", 5) == 0)
                return d->type[0] && strcasecmp(d->uuid, spec + 5) == 0;
        return strcmp(d->path, spec) == 0 && d->type[0];
}

/* "A|B": either. */
static bool device_matches(const struct early_device *d, const char *spec) {
        char buf[256];

        snprintf(buf, sizeof buf, "%s", spec);
        for (char *save = NULL, *one = strtok_r(buf, "|", &save); one; one = strtok_r(NULL, "|", &save))
                if (device_matches_one(d, one))
                        return true;
        return false;
}

static int scan_once(const char *spec, struct early_device *ret) {
        struct dirent **names = NULL;
        int n = scandir("/sys/class/block", &names, NULL, alphasort), r = -ENOENT;

        for (int i = 0; i < n; i++) {
                struct early_device d;
                char path[64];
                if (r < 0 && names[i]->d_name[0] != '.' &&
                    (size_t)snprintf(path, sizeof path, "/dev/%s", names[i]->d_name) < sizeof path) {
                        probe_device(path, &d);
                        if (device_matches(&d, spec)) {
                                *ret = d;
                                r = 0;
                        }
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int early_find_device(const char *spec, unsigned timeout_ms, struct early_device *ret) {
        uint64_t deadline = kos_now_ns() + (uint64_t)timeout_ms * 1000000ull;

        for (;;) {
                if (scan_once(spec, ret) == 0)
                        return 0;
                if (kos_now_ns() >= deadline)
                        return -ETIMEDOUT;
                struct timespec pause = {0, 50 * 1000000L};
                nanosleep(&pause, NULL);
        }
}
