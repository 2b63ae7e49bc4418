/* SPDX-License-Identifier: MIT */
/* The DataFS's LUKS2 header and key slots erased: see datafs-erase.h. The
 * layout is the LUKS2 on-disk format (cryptsetup's docs/on-disk-format-luks2.pdf):
 * a 4096-byte binary header (magic, version, hdr_size, label) then the JSON
 * area, twice, then the key slot area; the JSON names the data segments. */
#include "datafs-erase.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "datafs-generation.h"
#include "layout.h"

#define LUKS2_BINARY_HEADER 4096u
#define LUKS2_LABEL_OFFSET 24u
#define LUKS2_LABEL_LEN 48u

static uint64_t get_be(const uint8_t *p, size_t n) {
        uint64_t v = 0;
        for (size_t i = 0; i < n; i++)
                v = v << 8 | p[i];
        return v;
}

/* A decimal string of the JSON (LUKS2 writes 64-bit numbers as strings). */
static int json_u64(json_t *v, uint64_t *ret) {
        const char *s = json_string_value(v);
        char *end;

        if (!s || !*s || *s == '-')
                return -EBADMSG;
        errno = 0;
        unsigned long long n = strtoull(s, &end, 10);
        if (errno || *end)
                return -EBADMSG;
        *ret = n;
        return 0;
}

/* From the JSON area: the end of the key slot area and the first data
 * segment's offset; the larger is what an erase covers. */
static int extent_from_json(const char *untrusted_json, uint64_t hdr_size, uint64_t *ret,
                            struct kos_error *ret_error) {
        json_error_t jerr;
        json_t *o = json_loads(untrusted_json, 0, &jerr), *segment;
        uint64_t keyslots_size = 0, offset, first = UINT64_MAX;
        const char *key;
        int r = -EBADMSG;

        if (!o || json_u64(json_object_get(json_object_get(o, "config"), "keyslots_size"), &keyslots_size) < 0) {
                kos_error_set(ret_error, r, "its LUKS2 JSON area has no config.keyslots_size");
                goto out;
        }
        json_object_foreach(json_object_get(o, "segments"), key, segment) {
                if (json_u64(json_object_get(segment, "offset"), &offset) < 0) {
                        kos_error_set(ret_error, r, "segment %s has no offset", key);
                        goto out;
                }
                if (offset < first)
                        first = offset;
        }
        uint64_t end = 2 * hdr_size + keyslots_size;
        if (keyslots_size > KOS_LUKS2_ERASE_MAX || (first != UINT64_MAX && first > KOS_LUKS2_ERASE_MAX)) {
                kos_error_set(ret_error, r, "its header and key slots would reach past %u MiB",
                              KOS_LUKS2_ERASE_MAX >> 20);
                goto out;
        }
        *ret = first != UINT64_MAX && first > end ? first : end;
        r = 0;
out:
        json_decref(o);
        return r;
}

int kos_luks2_read_json(int fd, const char *label, char **ret_json, uint64_t *ret_hdr_size,
                        struct kos_error *ret_error) {
        uint8_t bin[LUKS2_BINARY_HEADER];
        char have_label[LUKS2_LABEL_LEN + 1];

        if (pread(fd, bin, sizeof bin, 0) != (ssize_t)sizeof bin)
                return kos_error_set(ret_error, -EMEDIUMTYPE, "cannot read its first %u bytes", LUKS2_BINARY_HEADER);
        if (memcmp(bin, "LUKS\xba\xbe", 6) != 0 || get_be(bin + 6, 2) != 2)
                return kos_error_set(ret_error, -EMEDIUMTYPE, "it holds no LUKS2 header");
        uint64_t hdr_size = get_be(bin + 8, 8);
        if (hdr_size < KOS_LUKS2_HDR_MIN || hdr_size > KOS_LUKS2_HDR_MAX || (hdr_size & (hdr_size - 1)) != 0)
                return kos_error_set(ret_error, -EMEDIUMTYPE, "its LUKS2 header size %llu is not one the format allows",
                                     (unsigned long long)hdr_size);
        memcpy(have_label, bin + LUKS2_LABEL_OFFSET, LUKS2_LABEL_LEN);
        have_label[LUKS2_LABEL_LEN] = '\0';
        if (label && strcmp(have_label, label) != 0)
                return kos_error_set(ret_error, -EMEDIUMTYPE, "its LUKS2 label is \"%s\", not \"%s\"", have_label,
                                     label);
        size_t json_len = hdr_size - LUKS2_BINARY_HEADER;
        char *json = malloc(json_len + 1);
        if (!json)
                return -ENOMEM;
        if (pread(fd, json, json_len, LUKS2_BINARY_HEADER) != (ssize_t)json_len) {
                free(json);
                return kos_error_set(ret_error, -EIO, "cannot read its LUKS2 JSON area");
        }
        json[json_len] = '\0'; /* the area is NUL-padded after the JSON */
        *ret_json = json;
        *ret_hdr_size = hdr_size;
        return 0;
}

int kos_datafs_erase_extent(int fd, uint64_t device_size, const char *label, uint64_t *ret_length,
                            struct kos_error *ret_error) {
        _cleanup_free_ char *json = NULL;
        uint64_t hdr_size, length;
        int r = kos_luks2_read_json(fd, label, &json, &hdr_size, ret_error);

        if (r < 0)
                return r;
        if ((r = extent_from_json(json, hdr_size, &length, ret_error)) < 0)
                return r;
        if (length > device_size)
                return kos_error_set(ret_error, -EBADMSG,
                                     "its header and key slots (%llu bytes) are larger than the device",
                                     (unsigned long long)length);
        *ret_length = length;
        return 0;
}

int kos_datafs_erase(int fd, uint64_t device_size, const char *label, uint64_t *ret_erased,
                     struct kos_error *ret_error) {
        static const uint8_t zeros[1 << 16];
        uint64_t length, done = 0;
        int r = kos_datafs_erase_extent(fd, device_size, label, &length, ret_error);

        if (r < 0)
                return r;
        while (done < length) {
                size_t n = length - done < sizeof zeros ? (size_t)(length - done) : sizeof zeros;
                ssize_t w = pwrite(fd, zeros, n, (off_t)done);
                if (w <= 0) {
                        r = w < 0 ? -errno : -EIO;
                        return kos_error_set(ret_error, r, "writing zeros at byte %llu: %s", (unsigned long long)done,
                                             strerror(-r));
                }
                done += (uint64_t)w;
        }
        if (fsync(fd) < 0)
                return kos_error_set(ret_error, -errno, "fsync: %s", strerror(errno));
        *ret_erased = done;
        return 0;
}

static int raise_generation(struct kos_datafs_reset *ret) {
        struct kos_tpm t;
        int r = kos_tpm_open(&t);

        if (r < 0) {
                snprintf(ret->tpm_error, sizeof ret->tpm_error, "no TPM (%s)", strerror(-r));
                return r;
        }
        r = kos_datafs_generation_raise(&t, &ret->generation);
        /* A reset erases on purpose: a header-being-written marker (a cut
         * during an encryption in place's first header write, which locks
         * an empty-looking partition) no longer keeps the next boot from
         * formatting it, whatever the counter did. */
        int m = kos_datafs_marker_remove(&t, KOS_DATAFS_WRITING_INDEX);
        if (m < 0)
                snprintf(ret->marker_error, sizeof ret->marker_error,
                         "the header-being-written marker (TPM NV 0x%08x) is still there (%s): the next boot locks the "
                         "DataFS instead of formatting it", KOS_DATAFS_WRITING_INDEX,
                         m == -EPERM ? "an index there is not KOS's" : strerror(-m));
        kos_tpm_close(&t);
        if (r < 0)
                snprintf(ret->tpm_error, sizeof ret->tpm_error, "cannot raise the DataFS generation (TPM NV 0x%08x): %s",
                         KOS_DATAFS_GENERATION_INDEX, r == -ENOENT ? "it is not there" : strerror(-r));
        return r;
}

static int erase_partition(const char *device, struct kos_datafs_reset *ret) {
        struct stat st;
        uint64_t bytes = 0;

        if (strncmp(device, "/dev/", 5) != 0 || strstr(device, "..")) {
                snprintf(ret->erase_error, sizeof ret->erase_error, "\"%s\" is not a device under /dev/", device);
                return -ENODEV;
        }
        _cleanup_close_ int fd = open(device, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISBLK(st.st_mode) || ioctl(fd, BLKGETSIZE64, &bytes) < 0) {
                snprintf(ret->erase_error, sizeof ret->erase_error, "%s is not a block device that opens for writing (%m)",
                         device);
                return -ENODEV;
        }
        struct kos_error error = KOS_ERROR_NULL;
        int r = kos_datafs_erase(fd, bytes, KOS_LABEL_DATA, &ret->erased_bytes, &error);
        if (r < 0) /* struct kos_datafs_reset keeps its messages in buffers of its own; %.299s: its size less 1 */
                snprintf(ret->erase_error, sizeof ret->erase_error, "%.299s", error.msg);
        return r;
}

int kos_datafs_factory_reset(const char *device, struct kos_datafs_reset *ret) {
        memset(ret, 0, sizeof *ret);
        ret->tpm_result = raise_generation(ret);
        ret->erase_result = erase_partition(device, ret);
        return ret->tpm_result < 0 ? ret->tpm_result : ret->erase_result;
}
