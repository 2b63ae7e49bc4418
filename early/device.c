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
                if (blkid_probe_lookup_value(pr, "PART_ENTRY_UUID", &v, NULL) == 0)
                        snprintf(ret->partuuid, sizeof ret->partuuid, "%s", v);
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

int early_match_devices(const struct early_device *devices, size_t n, const char *spec, size_t *ret_index,
                        size_t *ret_n_matches) {
        size_t matches = 0;

        for (size_t i = 0; i < n; i++)
                if (device_matches(&devices[i], spec)) {
                        if (matches == 0)
                                *ret_index = i;
                        matches++;
                }
        *ret_n_matches = matches;
        return matches == 0 ? -ENOENT : matches == 1 ? 0 : -ENOTUNIQ;
}

/* The real device list: every entry of /sys/class/block (disks and
 * partitions, in name order), probed with libblkid. */
static int list_block_devices(struct early_device *devices, size_t max, size_t *ret_n) {
        struct dirent **names = NULL;
        int n = scandir("/sys/class/block", &names, NULL, alphasort);
        size_t count = 0;

        if (n < 0)
                return -errno;
        for (int i = 0; i < n; i++) {
                char path[64];
                if (count < max && names[i]->d_name[0] != '.' &&
                    (size_t)snprintf(path, sizeof path, "/dev/%s", names[i]->d_name) < sizeof path)
                        probe_device(path, &devices[count++]);
                free(names[i]);
        }
        free(names);
        *ret_n = count;
        return 0;
}

int (*early_device_lister)(struct early_device *devices, size_t max, size_t *ret_n) = list_block_devices;

/* Names every device that matches spec: the person at the console decides. */
static void log_ambiguous(const struct early_device *devices, size_t n, const char *spec, size_t n_matches) {
        char names[1024] = "";
        size_t len = 0;

        for (size_t i = 0; i < n; i++)
                if (device_matches(&devices[i], spec) && len < sizeof names)
                        len += (size_t)snprintf(names + len, sizeof names - len, "%s%s (%s, UUID %s, PARTUUID %s)",
                                                len ? ", " : "", devices[i].path, devices[i].type[0] ? devices[i].type : "no filesystem",
                                                devices[i].uuid[0] ? devices[i].uuid : "none",
                                                devices[i].partuuid[0] ? devices[i].partuuid : "none");
        early_log("%zu devices match %s: %s; refusing to guess", n_matches, spec, names);
}

int early_find_device(const char *spec, unsigned timeout_ms, struct early_device *ret) {
        uint64_t deadline = kos_now_ns() + (uint64_t)timeout_ms * 1000000ull;
        _cleanup_free_ struct early_device *devices = calloc(EARLY_MAX_DEVICES, sizeof *devices);

        if (!devices)
                return -ENOMEM;
        for (;;) {
                size_t n = 0, index = 0, n_matches = 0;
                int r = early_device_lister(devices, EARLY_MAX_DEVICES, &n);
                if (r >= 0)
                        r = early_match_devices(devices, n, spec, &index, &n_matches);
                if (r == 0) {
                        *ret = devices[index];
                        return 0;
                }
                /* Two devices that both claim to be it: waiting cannot make
                 * either the right one. */
                if (r == -ENOTUNIQ) {
                        log_ambiguous(devices, n, spec, n_matches);
                        return r;
                }
                if (kos_now_ns() >= deadline)
                        return -ETIMEDOUT;
                struct timespec pause = {0, 50 * 1000000L};
                nanosleep(&pause, NULL);
        }
}

int early_find_identified_device(const char *uuid, const char *partuuid, unsigned timeout_ms, struct early_device *ret) {
        char spec[96];
        int r;

        if (!uuid[0] || (size_t)snprintf(spec, sizeof spec, "UUID=%s", uuid) >= sizeof spec || strchr(uuid, '|'))
                return -EINVAL;
        if ((r = early_find_device(spec, timeout_ms, ret)) < 0)
                return r;
        const char *have = ret->partuuid[0] ? ret->partuuid : EARLY_NO_PARTUUID;
        return strcasecmp(have, partuuid) == 0 ? 0 : -EXDEV;
}
